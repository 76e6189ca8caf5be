"""The build id: a digest of the installed package files.

Client and daemon compare build ids in ``initialize``; an edited checkout (editable install)
counts as a new build, so a daemon started from older code is replaced. The digest covers the
path, size and modification time of every ``.py`` file of the three packages: reading stat
data of a few dozen files costs well under a millisecond, hashing their content would not.
"""

from __future__ import annotations

import os
from functools import cache

__all__ = ["build_id", "package_roots"]


def package_roots() -> list[str]:
    """Return the directories of ``burrowd.protocol``, ``.client`` and ``.daemon``."""
    parent = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return [os.path.join(parent, name) for name in ("protocol", "client", "daemon")]


try:
    # The builtin module, not ``hashlib``, whose import loads OpenSSL (5 ms of start-up).
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - every CPython has _blake2
    from hashlib import blake2b


def _walk(root: str, digest: blake2b) -> None:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                _walk(entry.path, digest)
        elif entry.name.endswith(".py"):
            st = entry.stat()
            digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


@cache
def build_id() -> str:
    """Return the build id of the code this process runs (16 hex digits)."""
    digest = blake2b(digest_size=8)
    for root in package_roots():
        _walk(root, digest)
    return digest.hexdigest()
