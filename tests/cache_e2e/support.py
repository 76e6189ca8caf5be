"""Helpers of the cache end-to-end tests: request params, cache snapshots, big wheels."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import msgspec

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.protocol.messages import ClientEnv, IndexOptions, PrefetchParams, PythonOptions
from tests.daemon.cache.harness import random_members, write_wheel

__all__ = ["big_wheel", "prefetch_params", "snapshot"]


def prefetch_params(requirements: list[str], *, index_url: str, cwd: Path) -> dict[str, Any]:
    """Return the JSON params of a ``prefetch`` request, as the real client would send them."""
    params = PrefetchParams(
        env=ClientEnv(cwd=str(cwd), path=os.environ.get("PATH", "")),
        requirements=requirements,
        index=IndexOptions(index_url=index_url),
        python=PythonOptions(python=sys.executable),
    )
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(params))
    return decoded


def snapshot(cache: Cache, *buckets: Bucket) -> dict[str, bytes]:
    """Return every file of ``buckets`` (lock files aside) with its content."""
    out: dict[str, bytes] = {}
    for bucket in buckets:
        base = cache.bucket(bucket)
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(".lock"):
                out[str(path.relative_to(cache.root))] = path.read_bytes()
    return out


def big_wheel(dest: Path, name: str, *, files: int, size: int, seed: int = 0) -> Path:
    """Write a stored wheel of ``files`` members of ``size`` random bytes each."""
    members = random_members(files, size, seed=seed, package=name)
    return write_wheel(
        dest, name, "1.0", [*members, (f"{name}/__init__.py", b"")], compression=zipfile.ZIP_STORED
    )
