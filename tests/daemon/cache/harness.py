"""The cache and index services of burrowd, composed in-process for tests, and odd wheels.

:func:`open_stack` builds what ``daemon/services.py`` builds (a :class:`Cache` on a temp dir,
:class:`Limits`, an opened :class:`Http`, the :class:`IndexClient`, :class:`Interpreters` and
the :class:`CandidateCache`) without a socket, so tests drive the real objects directly.
The wheel writers make wheels the distribution factory does not: executable members, many
or large members of random (incompressible) bytes, stored or deflated.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import random
import sys
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from burrowd.daemon.cache.archive import MANIFEST, read_manifest
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.candidates import CandidateCache
from burrowd.daemon.config import Config
from burrowd.daemon.index.client import Freshness, IndexClient, IndexSettings
from burrowd.daemon.index.http import Http, RetryPolicy
from burrowd.daemon.interpreters import InterpreterInfo, Interpreters, Target
from burrowd.daemon.prefetch import Prefetcher, command_line_entries
from burrowd.daemon.requests import PackageRequest
from burrowd.daemon.scheduler import Limits
from burrowd.protocol.messages import PrefetchedWheel
from tests.support.backend.burrow_test_backend import (
    dist_info_dir,
    record_text,
    wheel_filename,
    wheel_members,
)

__all__ = [
    "ProgressLog",
    "Stack",
    "archive_problems",
    "cache_files",
    "host_interpreter",
    "open_stack",
    "random_members",
    "stack_on",
    "tmp_debris",
    "write_wheel",
]


# -- the services -----------------------------------------------------------------------------


@dataclass
class ProgressLog:
    """A progress callback that remembers every report."""

    calls: list[tuple[str, int, int | None, int]] = field(default_factory=list)

    def __call__(self, phase: str, current: int, total: int | None, nbytes: int) -> None:
        self.calls.append((phase, current, total, nbytes))


@dataclass(eq=False)
class Stack:
    """The daemon's cache and index services on one cache directory, in this process."""

    cache: Cache
    limits: Limits
    http: Http
    index: IndexClient
    interpreters: Interpreters
    candidates: CandidateCache
    info: InterpreterInfo

    def settings(
        self,
        *index_urls: str,
        find_links: Sequence[str] = (),
        no_index: bool = False,
    ) -> IndexSettings:
        """Return index settings as a request would build them (credentials moved out).

        ``index_urls`` are in search order: the last is the index URL, the others extra
        index URLs (which are searched first).
        """
        return IndexSettings.build(
            self.http,
            index_url=index_urls[-1] if index_urls else None,
            extra_index_urls=index_urls[:-1],
            find_links=find_links,
            no_index=no_index,
        )

    def target(
        self, *, python_version: str | None = None, python_platform: str | None = None
    ) -> Target:
        """Return the target of this interpreter, with optional overrides."""
        return self.interpreters.target(
            self.info, python_version=python_version, python_platform=python_platform
        )

    def prefetcher(
        self,
        settings: IndexSettings,
        *,
        fresh: Freshness | None = None,
        target: Target | None = None,
        progress: ProgressLog | None = None,
    ) -> Prefetcher:
        """Return a prefetcher for one request."""
        request = PackageRequest(
            settings, fresh or Freshness(), target or self.target(), self.cache.root
        )
        return Prefetcher(self.index, self.candidates, request, progress or ProgressLog())

    async def prefetch(
        self,
        pins: Sequence[str],
        settings: IndexSettings,
        *,
        fresh: Freshness | None = None,
        cwd: Path | None = None,
    ) -> list[PrefetchedWheel]:
        """Prefetch ``NAME==V`` pins (command-line syntax, ``--hash`` allowed)."""
        prefetcher = self.prefetcher(settings, fresh=fresh)
        entries = command_line_entries(list(pins), cwd or self.cache.root)
        return await prefetcher.run(entries)


@contextlib.asynccontextmanager
async def open_stack(
    root: Path, info: InterpreterInfo, *, ttl: float = 600.0
) -> AsyncIterator[Stack]:
    """Compose the services on the cache ``root`` (as ``Services`` does) and close them after."""
    cache = Cache(root, lock_timeout=10.0)
    limits = Limits()
    # Retries as the environment sets them (BURROW_RETRIES...), as the daemon's.
    http = Http(limits, RetryPolicy.from_config(Config.from_env()))
    await http.open()
    try:
        yield Stack(
            cache=cache,
            limits=limits,
            http=http,
            index=IndexClient(cache, http, limits, ttl=ttl),
            interpreters=Interpreters(cache),
            candidates=CandidateCache(),
            info=info,
        )
    finally:
        await http.close()


_HOST: list[InterpreterInfo] = []


async def host_interpreter() -> InterpreterInfo:
    """Return what the interpreter running the tests reports (queried once per process)."""
    if not _HOST:
        with tempfile.TemporaryDirectory(prefix="burrow-interp-") as tmp:
            _HOST.append(await Interpreters(Cache(Path(tmp))).query(Path(sys.executable)))
    return _HOST[0]


@contextlib.asynccontextmanager
async def stack_on(root: Path, *, ttl: float = 600.0) -> AsyncIterator[Stack]:
    """Open the services on the cache ``root`` for the interpreter running the tests."""
    async with open_stack(root, await host_interpreter(), ttl=ttl) as services:
        yield services


# -- wheels the factory does not make ---------------------------------------------------------


def random_members(
    count: int, size: int, *, seed: int = 0, package: str = "blob"
) -> list[tuple[str, bytes]]:
    """Return ``count`` members of ``size`` random (incompressible) bytes each."""
    rng = random.Random(seed)
    return [(f"{package}/part_{i:05d}.bin", rng.randbytes(size)) for i in range(count)]


def write_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Iterable[tuple[str, bytes]],
    *,
    tag: str = "py3-none-any",
    modes: Mapping[str, int] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a valid wheel of ``files`` (RECORD correct) at ``dest/<wheel filename>``.

    ``modes`` gives the ``st_mode`` stored for some members (default: a 0o644 regular file).
    """
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members = wheel_members(
        name=name, version=version, tag=tag, metadata=metadata, files=list(files)
    )
    record_name = f"{dist_info_dir(name, version)}/RECORD"
    members.append((record_name, record_text(members, record_name)))
    modes = modes or {}
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / wheel_filename(name, version, tag)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for arcname, data in members:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = modes.get(arcname, 0o100644) << 16
            zf.writestr(info, data)
    return path


# -- looking at the cache ---------------------------------------------------------------------


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def archive_problems(archive: Path) -> list[str]:
    """Return what is wrong with an unpacked archive (empty: manifest valid, RECORD verifies)."""
    manifest = read_manifest(archive)
    if manifest is None:
        return [f"{archive}: no whole manifest"]
    if manifest.sha256 != archive.name:
        return [f"{archive}: manifest names {manifest.sha256}"]
    problems = []
    record = (archive / manifest.dist_info / "RECORD").read_text()
    listed: set[str] = set()
    for row in csv.reader(io.StringIO(record)):
        if not row:
            continue
        path, digest = row[0], row[1] if len(row) > 1 else ""
        listed.add(path)
        target = archive / path
        if not target.is_file():
            problems.append(f"{path}: missing")
            continue
        if digest:
            algorithm, _, value = digest.partition("=")
            actual = _b64(hashlib.new(algorithm, target.read_bytes()).digest())
            if actual != value:
                problems.append(f"{path}: {algorithm}={actual}, RECORD says {value}")
    on_disk = {
        str(p.relative_to(archive))
        for p in archive.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    problems.extend(f"{extra}: not in RECORD" for extra in sorted(on_disk - listed))
    if manifest.files != len(on_disk):
        problems.append(f"manifest counts {manifest.files} files, {len(on_disk)} on disk")
    return problems


def tmp_debris(cache: Cache) -> list[str]:
    """Return the names left in the cache's temporary directory."""
    return sorted(os.listdir(cache.tmp)) if cache.tmp.is_dir() else []


def cache_files(cache: Cache, bucket: Bucket, *, locks: bool = False) -> list[str]:
    """Return the files under ``bucket``, relative to it (lock files only if ``locks``)."""
    base = cache.bucket(bucket)
    if not base.is_dir():
        return []
    return sorted(
        str(p.relative_to(base))
        for p in base.rglob("*")
        if p.is_file() and (locks or not p.name.endswith(".lock"))
    )
