"""Residents, staff, authenticators, sign-in and identity assurance."""
