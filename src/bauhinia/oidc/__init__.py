"""The OpenID provider (planned: issue 3)."""
