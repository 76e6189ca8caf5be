"""Builds: PEP 517 backends in isolated environments, git checkouts, built-wheel cache."""
