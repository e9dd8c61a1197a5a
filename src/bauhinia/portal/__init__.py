"""Resident-facing pages that span domains: the start page, and later the catalogue and dashboard."""
