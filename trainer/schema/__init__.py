"""Typed config schema and its validator (stdlib only: runs before any heavy import)."""
