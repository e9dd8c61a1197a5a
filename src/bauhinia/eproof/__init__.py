"""e-Proof verifiable credentials and the transparency log (planned: issue 5)."""
