"""Fixtures of the example tests: the end-to-end ``env`` (private socket, cache and log)."""

from __future__ import annotations

from tests.e2e.conftest import env

__all__ = ["env"]
