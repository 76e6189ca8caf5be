"""Git repositories: fetched once into ``git-v0/db``, checked out once per commit.

A reference (``git+https://host/repo@v1.2#subdirectory=pkg``) is resolved to a commit by
the repository's bare clone in ``git-v0/db/<repo-digest>``; a tag or branch resolved within
the index freshness lifetime is not fetched again (``--refresh`` asks), and a full commit
hash the clone already holds never needs the network. A commit is checked out once into
``git-v0/checkouts/<repo-digest>/<commit>``, built in a temporary directory and renamed in.
Fetches of one repository are single-flight in the daemon and locked across processes, so
two requests for one repository never clone twice.

The ``git`` command does the work (no library speaks every transport and credential helper
a user's git is configured with); it runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec import Struct

from burrowd.daemon.cache.layout import Bucket, url_digest
from burrowd.daemon.cache.store import Cache, remove_tree
from burrowd.daemon.errors import InvalidDistribution, InvalidRequirement, NetworkError, OfflineMiss
from burrowd.daemon.index.http import redact
from burrowd.daemon.scheduler import OnceMap

__all__ = ["GitReference", "GitRepos", "parse_git_url"]

log = logging.getLogger(__name__)

GIT_TIMEOUT: Final = 600.0
READY: Final = ".burrow-checkout"
_FULL_SHA: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class GitReference(Struct, frozen=True):
    """A parsed ``git+`` URL: the repository to fetch, the ref, the subdirectory."""

    #: The URL as written, without ``@ref`` and fragment (``git+https://host/repo``).
    url: str
    #: What ``git fetch`` takes (``https://host/repo``).
    fetch_url: str
    ref: str | None = None
    subdirectory: str | None = None

    def pinned(self, commit: str) -> str:
        """Return the URL pinned to ``commit``, as compile writes it."""
        text = f"{self.url}@{commit}"
        if self.subdirectory:
            text += f"#subdirectory={self.subdirectory}"
        return text


#: Transports a ``git+`` URL may use; git's ``ext::`` and ``fd::`` run commands.
GIT_SCHEMES: Final = frozenset({"https", "http", "ssh", "git", "file"})
#: What a ref may look like: no option (``-x``), no revision syntax beyond names.
_REF: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./+-]*")


def parse_git_url(url: str) -> GitReference:
    """Parse ``git+SCHEME://host/path[@ref][#subdirectory=...]``.

    Only the transports in :data:`GIT_SCHEMES` are accepted, and a ref must be a plain
    name: anything else could make ``git`` run a command (``--upload-pack=...``, ``ext::``).
    """
    if not url.startswith("git+"):
        raise InvalidRequirement(f"{redact(url)} is not a git URL (git+https://, git+file://)")
    parts = urlsplit(url[len("git+") :])
    if parts.scheme not in GIT_SCHEMES or not (parts.netloc or parts.path.startswith("/")):
        raise InvalidRequirement(
            f"{redact(url)} is not a git URL burrowd fetches: use git+https://, git+ssh://, "
            "git+http://, git+git:// or git+file:///path"
        )
    path, ref = parts.path, None
    if "@" in path:
        path, _, ref = path.rpartition("@")
        ref = ref or None
    if ref is not None and (not _REF.fullmatch(ref) or ".." in ref):
        raise InvalidRequirement(f"{ref!r} is not a branch, tag or commit name ({redact(url)})")
    subdirectory = None
    for item in parts.fragment.split("&"):
        key, sep, value = item.partition("=")
        if sep and key == "subdirectory" and value:
            subdirectory = value.strip("/")
    if subdirectory and (".." in subdirectory.split("/") or subdirectory.startswith("/")):
        raise InvalidRequirement(f"subdirectory {subdirectory!r} leaves the repository")
    fetch_url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return GitReference(
        url="git+" + fetch_url, fetch_url=fetch_url, ref=ref, subdirectory=subdirectory
    )


class _Refs(msgspec.Struct, frozen=True):
    """Refs of one repository resolved lately: ref -> (commit, when, as a Unix time)."""

    refs: dict[str, tuple[str, float]] = {}


_refs_decoder: Final = msgspec.msgpack.Decoder(_Refs)
_encoder: Final = msgspec.msgpack.Encoder()


def _git(args: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",  # never wait for a password nobody can type
        "GIT_ASKPASS": "",
        "GIT_ALLOW_PROTOCOL": ":".join(sorted(GIT_SCHEMES)),
        "LC_ALL": "C",
    }
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        if shutil.which("git") is not None:
            raise
        raise InvalidRequirement(
            "git is not installed (or not on the daemon's PATH); git+ requirements need it"
        ) from None
    except subprocess.TimeoutExpired:
        raise NetworkError(f"git {args[0]}", f"no answer within {GIT_TIMEOUT:g}s") from None


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line]
    return lines[-1] if lines else f"exit status {done.returncode}"


class GitRepos:
    """The repositories in the cache.

    :param ttl: seconds a resolved tag or branch is trusted before fetching again.
    """

    def __init__(self, cache: Cache, *, ttl: float) -> None:
        self.cache = cache
        self.ttl = ttl
        #: ``git fetch`` runs so far (the benchmark and ``status`` count them).
        self.fetches = 0
        self._fetch_flights: OnceMap[tuple[str, str | None], None] = OnceMap(
            "git-fetch", lambda key: redact(key[0]) + (f" {key[1]}" if key[1] else "")
        )
        self._checkout_flights: OnceMap[tuple[str, str], Path] = OnceMap(
            "git-checkout", lambda key: f"{redact(key[0])} {key[1][:12]}"
        )
        #: One resolution of a ref at a time: a second caller waits for the first's
        #: fetch and record, never starting a fetch of its own in between.
        self._ref_flights: OnceMap[tuple[str, str], str] = OnceMap(
            "git-ref", lambda key: f"{redact(key[0])} {key[1]}"
        )
        self._refs: dict[tuple[str, str], tuple[str, float]] = {}

    def _db(self, ref: GitReference) -> Path:
        return self.cache.path(Bucket.GIT, "db", url_digest(ref.fetch_url))

    def flight_maps(self) -> list[OnceMap[Any, Any]]:
        """Return the single-flight maps of fetches and checkouts, for ``status``."""
        return [self._fetch_flights, self._checkout_flights]

    async def resolve(self, ref: GitReference, *, refresh: bool, offline: bool) -> str:
        """Return the commit ``ref`` names, fetching only when needed."""
        db = self._db(ref)
        wanted = ref.ref or "HEAD"
        key = (ref.fetch_url, wanted)
        full_sha = _FULL_SHA.fullmatch(wanted) is not None
        if full_sha and await asyncio.to_thread(self._has_commit, db, wanted):
            return wanted
        if not refresh:
            known = self._refs.get(key) or await asyncio.to_thread(self._read_ref, db, wanted)
            if known is not None and (offline or time.time() - known[1] < self.ttl):
                return known[0]
        if offline:
            commit = await asyncio.to_thread(self._rev_parse, db, wanted)
            if commit is not None:
                return commit
            raise OfflineMiss(f"the git repository {redact(ref.fetch_url)} at {wanted}")
        return await self._ref_flights.run(
            key, lambda: self._fetch_ref(ref, db, wanted, refresh=refresh)
        )

    async def _fetch_ref(self, ref: GitReference, db: Path, wanted: str, *, refresh: bool) -> str:
        """Fetch the repository and record the commit ``wanted`` names now."""
        key = (ref.fetch_url, wanted)
        known = None if refresh else self._refs.get(key)
        if known is not None and time.time() - known[1] < self.ttl:
            # Recorded by a flight that ended while this caller read the disk record.
            return known[0]
        full_sha = _FULL_SHA.fullmatch(wanted) is not None
        await self._fetch_flights.run((ref.fetch_url, None), lambda: self._fetch(ref, db))
        commit = await asyncio.to_thread(self._rev_parse, db, wanted)
        if commit is None and full_sha:
            # A commit no branch or tag reaches: ask for it by name (most servers allow).
            await self._fetch_flights.run(
                (ref.fetch_url, wanted), lambda: self._fetch(ref, db, wanted)
            )
            commit = await asyncio.to_thread(self._rev_parse, db, wanted)
        if commit is None:
            raise InvalidRequirement(
                f"{redact(ref.url)} has no branch, tag or commit {wanted!r}; check the @ref"
            )
        self._refs[key] = (commit, time.time())
        await asyncio.to_thread(self._write_ref, db, wanted, commit)
        return commit

    async def checkout(self, ref: GitReference, commit: str) -> Path:
        """Return a checkout of ``commit`` (made once, then reused)."""
        target = self.cache.path(Bucket.GIT, "checkouts", url_digest(ref.fetch_url), commit)
        if (target / ".git" / READY).exists():
            return target
        return await self._checkout_flights.run(
            (ref.fetch_url, commit), lambda: self._checkout(ref, commit, target)
        )

    async def _checkout(self, ref: GitReference, commit: str, target: Path) -> Path:
        lock = self.cache.entry_lock(target, f"the checkout of {redact(ref.url)}@{commit}")
        async with self.cache.operation(), lock:
            if (target / ".git" / READY).exists():
                return target
            await asyncio.to_thread(self._make_checkout, self._db(ref), commit, target)
        return target

    def _make_checkout(self, db: Path, commit: str, target: Path) -> None:
        tmp = self.cache.temp_dir(prefix="checkout-")
        try:
            work = tmp / "tree"
            done = _git(["clone", "--quiet", "--shared", "--no-checkout", str(db), str(work)])
            if done.returncode == 0:
                done = _git(["checkout", "--quiet", "--force", commit], cwd=work)
            if done.returncode == 0 and (work / ".gitmodules").exists():
                done = _git(["submodule", "update", "--init", "--recursive", "--quiet"], cwd=work)
            if done.returncode != 0:
                raise InvalidDistribution(
                    str(db), f"git checkout of {commit} failed: {_tail(done)}"
                )
            (work / ".git" / READY).write_text(commit + "\n")
            if target.exists():
                remove_tree(target)
            self.cache.persist_dir(work, target)
        finally:
            remove_tree(tmp)

    async def _fetch(self, ref: GitReference, db: Path, what: str | None = None) -> None:
        lock = self.cache.entry_lock(db, f"the git repository {redact(ref.fetch_url)}")
        async with self.cache.operation(), lock:
            await asyncio.to_thread(self._fetch_blocking, ref, db, what)

    def _fetch_blocking(self, ref: GitReference, db: Path, what: str | None) -> None:
        if not (db / "HEAD").exists():
            db.mkdir(parents=True, exist_ok=True)
            done = _git(["init", "--quiet", "--bare", str(db)])
            if done.returncode != 0:
                raise NetworkError(str(db), f"git init failed: {_tail(done)}")
            # Checkouts borrow this clone's objects: it must never prune them on its own.
            _git(["config", "gc.auto", "0"], cwd=db)
        specs = (
            [what]
            if what is not None
            else [
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                "+HEAD:refs/burrow/HEAD",
            ]
        )
        self.fetches += 1
        log.info("fetching %s into %s", redact(ref.fetch_url), db)
        done = _git(["fetch", "--quiet", "--force", "--", ref.fetch_url, *specs], cwd=db)
        if done.returncode != 0:
            raise NetworkError(redact(ref.fetch_url), f"git fetch failed: {_tail(done)}")

    @staticmethod
    def _has_commit(db: Path, commit: str) -> bool:
        if not (db / "HEAD").exists():
            return False
        return _git(["cat-file", "-e", "--", f"{commit}^{{commit}}"], cwd=db).returncode == 0

    @staticmethod
    def _rev_parse(db: Path, wanted: str) -> str | None:
        if not (db / "HEAD").exists():
            return None
        names = (
            ["refs/burrow/HEAD"]
            if wanted == "HEAD"
            else [f"refs/tags/{wanted}", f"refs/heads/{wanted}", wanted]
        )
        for name in names:
            done = _git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
                cwd=db,
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        return None

    @staticmethod
    def _refs_path(db: Path) -> Path:
        return db.with_name(db.name + ".refs")

    def _read_ref(self, db: Path, wanted: str) -> tuple[str, float] | None:
        data = Cache.read_file(self._refs_path(db))
        if data is None:
            return None
        try:
            return _refs_decoder.decode(data).refs.get(wanted)
        except msgspec.DecodeError:
            return None

    def _write_ref(self, db: Path, wanted: str, commit: str) -> None:
        path = self._refs_path(db)
        data = Cache.read_file(path)
        refs: dict[str, tuple[str, float]] = {}
        if data is not None:
            try:
                refs = dict(_refs_decoder.decode(data).refs)
            except msgspec.DecodeError:
                refs = {}
        refs[wanted] = (commit, time.time())
        self.cache.write_file(path, _encoder.encode(_Refs(refs)), fsync=False)
