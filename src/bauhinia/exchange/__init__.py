"""The consented data exchange gateway (planned: issue 4)."""
