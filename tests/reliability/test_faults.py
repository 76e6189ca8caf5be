"""Faults: a failing index, a full disk and a held lock end in a clear error, never in debris.

The index fails the ways real ones do (5xx, resets, timeouts, bodies cut short, with or
without a ``Content-Length``) for project pages, PEP 658 metadata files and wheels; each
failure is retried under one policy and either heals or ends in one error that names the
(redacted) URL, what failed, how many attempts were made and the fix. A full disk (ENOSPC)
is injected in the download, unpack and pointer writes, and for real on a tiny tmpfs under
the daemon; a lock held elsewhere names its file, its resource, the timeout and its holder.
Every failure is checked to leave no partial cache entry and no temporary file behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import burrowd.daemon.index.bodies as bodies_module
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache, DiskFull
from burrowd.daemon.cache.wheels import WheelKey, pointer_path, read_pointer
from burrowd.daemon.config import Config
from burrowd.daemon.errors import HashMismatch, NetworkError
from burrowd.daemon.index.client import Freshness
from burrowd.daemon.index.http import RetriesExhausted, RetryPolicy
from burrowd.daemon.index.models import IndexFile
from burrowd.protocol.errors import ErrorCode
from tests.daemon.cache.harness import Stack, archive_problems, stack_on, tmp_debris, write_wheel
from tests.e2e.helpers import BurrowEnv, burrow_env, wait_until
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, Fault, IndexedFile

#: Quick retries for every test: three attempts, pauses of ~10-20 ms, a 1 s timeout.
FAST = {
    "BURROW_RETRIES": "2",
    "BURROW_RETRY_BACKOFF": "0.01",
    "BURROW_RETRY_BUDGET": "10",
    "BURROW_HTTP_TIMEOUT": "1",
}
ATTEMPTS = 3


def _hits_for(kind: str, attempts: int = ATTEMPTS) -> set[int]:
    """Return the request counts the index may see for ``attempts`` attempts of ``kind``.

    aiohttp itself sends a GET again, once, when a connection closes before an answer
    (the server may have dropped an idle keep-alive connection): each attempt that meets
    a reset may be seen twice.
    """
    return set(range(attempts, 2 * attempts + 1)) if kind == "reset" else {attempts}


def _wheel(index: FakeIndex, name: str) -> IndexedFile:
    (entry,) = index.add(DistSpec(name, "1.0"))
    return entry


def _key(index: FakeIndex, entry: IndexedFile) -> WheelKey:
    return WheelKey.from_index(index.simple_url + "/", entry.project, entry.filename)


def _nothing_stored(cache: Cache, index: FakeIndex, entry: IndexedFile) -> None:
    """Assert the cache holds no entry of ``entry``, whole or partial, and no temp file."""
    assert read_pointer(cache, _key(index, entry)) is None
    assert not pointer_path(cache, _key(index, entry)).exists()
    assert not cache.path(Bucket.ARCHIVE, entry.sha256).exists()
    # A page is stored in the background: give that write a moment to land.
    assert wait_until(lambda: tmp_debris(cache) == [], 2.0), tmp_debris(cache)


# -- in-process: the index client over the fake index ------------------------------------------


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    async with stack_on(tmp_path / "cache") as services:
        yield services


async def _located(stack: Stack, index: FakeIndex, name: str) -> tuple[IndexFile, str]:
    files = await stack.index.project_files(stack.settings(index.simple_url), name, Freshness())
    return next((f, loc) for f, loc in files.files if f.filename.endswith(".whl"))


async def _fetch(stack: Stack, index: FakeIndex, name: str) -> str:
    """Download and unpack ``name``'s wheel; return its archive id."""
    file, location = await _located(stack, index, name)
    pointer = await stack.index.fetch_wheel(file, stack.index.wheel_key(file, location, name))
    return pointer.archive


class TestPolicy:
    def test_environment_and_defaults(self) -> None:
        def from_env(env: dict[str, str]) -> RetryPolicy:
            return RetryPolicy.from_config(Config.from_env(env))

        assert from_env({}) == RetryPolicy()
        assert RetryPolicy().attempts == 3
        policy = from_env(
            {"BURROW_RETRIES": "5", "BURROW_RETRY_BACKOFF": "0.1", "BURROW_HTTP_TIMEOUT": "7"}
        )
        assert (policy.attempts, policy.backoff, policy.timeout) == (6, 0.1, 7.0)
        # Nonsense is ignored (with a warning), not fatal.
        assert from_env({"BURROW_RETRIES": "-1"}).retries == 2
        assert from_env({"BURROW_RETRIES": "lots"}).retries == 2

    def test_backoff_grows_with_jitter_and_is_capped(self) -> None:
        policy = RetryPolicy(backoff=1.0)
        for failed, base in ((1, 1.0), (2, 2.0), (3, 4.0)):
            pauses = {policy.delay(failed) for _ in range(50)}
            assert all(base * 0.5 <= p <= base * 1.5 for p in pauses)
            assert len(pauses) > 1  # jittered
        assert policy.delay(30) <= 10.0
        assert policy.delay(1, retry_after=3.0) >= 3.0
        assert policy.delay(1, retry_after=3600.0) == 10.0

    async def test_no_retry_starts_past_the_budget(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        _wheel(fake_index, "budget")
        # The server asks for 100 s: the pause (capped at 10 s) does not fit a 2 s budget.
        stack.http.policy = RetryPolicy(retries=5, backoff=0.01, budget=2.0)
        fake_index.fail("/simple/budget/", 503, times=10, headers={"Retry-After": "100"})
        started = time.monotonic()
        with pytest.raises(RetriesExhausted, match="after 1 attempt over"):
            await _located(stack, fake_index, "budget")
        assert time.monotonic() - started < 2.0
        assert fake_index.hits["/simple/budget/"] == 1


#: (fault, where): every way of failing, on every kind of request that can heal from it.
_HEALING = [
    pytest.param(kind, where, id=f"{where}-{kind}")
    for where in ("page", "metadata", "wheel")
    for kind in ("503", "reset", "truncate", "hang")
] + [pytest.param("cut", "wheel", id="wheel-cut")]


def _inject(index: FakeIndex, path: str, kind: str, times: int) -> None:
    if kind.isdigit():
        index.fail(path, int(kind), times=times)
    else:
        fault: Fault = kind  # type: ignore[assignment]
        index.fault(path, fault, times=times, seconds=5.0)


class TestIndexFaults:
    @pytest.mark.parametrize(("kind", "where"), _HEALING)
    async def test_one_failure_heals(
        self, stack: Stack, fake_index: FakeIndex, kind: str, where: str
    ) -> None:
        entry = _wheel(fake_index, "heal")
        path = {
            "page": "/simple/heal/",
            "metadata": f"{entry.url_path}.metadata",
            "wheel": entry.url_path,
        }[where]
        _inject(fake_index, path, kind, times=1)
        file, location = await _located(stack, fake_index, "heal")
        if where == "metadata":
            meta = await stack.index.metadata(file, location, "heal", "1.0")
            assert meta.name == "heal"
        elif where == "wheel":
            assert await _fetch(stack, fake_index, "heal") == entry.sha256
            archive = stack.cache.path(Bucket.ARCHIVE, entry.sha256)
            assert archive_problems(archive) == []
        assert fake_index.hits[path] == 2
        assert [r.status for r in fake_index.requests if r.path == path][-1] == 200
        # A reset may have been sent again by aiohttp itself (see _hits_for).
        assert stack.http.retries == 1 or kind == "reset"
        assert wait_until(lambda: tmp_debris(stack.cache) == [], 2.0)

    @pytest.mark.parametrize(
        ("kind", "reason"),
        [
            pytest.param("500", "HTTP 500 Internal Server Error", id="500"),
            pytest.param("reset", "closed the connection without an answer", id="reset"),
            pytest.param("truncate", "before the whole body arrived", id="truncate"),
            pytest.param("cut", "the body was cut short", id="cut"),
        ],
    )
    async def test_a_wheel_that_keeps_failing_stores_nothing(
        self, stack: Stack, fake_index: FakeIndex, kind: str, reason: str
    ) -> None:
        entry = _wheel(fake_index, "broken")
        _inject(fake_index, entry.url_path, kind, times=10)
        with pytest.raises(RetriesExhausted) as caught:
            await _fetch(stack, fake_index, "broken")
        error = caught.value
        assert fake_index.hits[entry.url_path] in _hits_for(kind)
        assert error.code == ErrorCode.NETWORK_ERROR
        assert error.url == fake_index.url_for(entry)
        assert reason in error.message
        assert f"after {ATTEMPTS} attempts" in error.message
        assert error.data["attempts"] == ATTEMPTS
        assert error.data["url"] == fake_index.url_for(entry)
        _nothing_stored(stack.cache, fake_index, entry)

    async def test_a_page_that_times_out_names_the_timeout_and_the_fix(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        _wheel(fake_index, "slow")
        stack.http.policy = RetryPolicy(retries=1, backoff=0.01, timeout=0.3)
        await stack.http.close()
        await stack.http.open()  # the session takes its timeout from the policy
        fake_index.fault("/simple/slow/", "hang", times=10, seconds=5.0)
        with pytest.raises(RetriesExhausted) as caught:
            await _located(stack, fake_index, "slow")
        message = caught.value.message
        assert f"request to {fake_index.simple_url}/slow/ failed" in message
        assert "timed out: no data for 0.3s (after 2 attempts" in message
        assert "BURROW_HTTP_TIMEOUT" in message
        assert fake_index.hits["/simple/slow/"] == 2

    async def test_a_client_error_is_not_retried(self, stack: Stack, fake_index: FakeIndex) -> None:
        entry = _wheel(fake_index, "gone")
        fake_index.fail(entry.url_path, 403, times=10)
        with pytest.raises(NetworkError, match="HTTP 403") as caught:
            await _fetch(stack, fake_index, "gone")
        assert not isinstance(caught.value, RetriesExhausted)
        assert "credentials" in caught.value.message
        assert fake_index.hits[entry.url_path] == 1

    async def test_a_wrong_hash_of_the_right_size_is_not_retried(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        entry = _wheel(fake_index, "tampered")
        blob = bytearray(fake_index.served_bytes(entry.filename))
        blob[-1] ^= 0xFF
        fake_index.corrupt(entry.filename, bytes(blob))
        with pytest.raises(HashMismatch):
            await _fetch(stack, fake_index, "tampered")
        assert fake_index.hits[entry.url_path] == 1
        _nothing_stored(stack.cache, fake_index, entry)


class _FullFile:
    """A file object that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, real: Any, room: int) -> None:
        self.real = real
        self.room = room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        written: int = self.real.write(data)
        return written

    def close(self) -> None:
        self.real.close()

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fail_writes_under(
    monkeypatch: pytest.MonkeyPatch, name: str, root: Path, what: str = "write"
) -> None:
    """Make ``os.<name>`` fail with ENOSPC for files under ``root`` whose path has ``what``."""
    real = getattr(os, name)

    def full(fd: int, *args: Any) -> Any:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)) and what in target:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, *args)

    monkeypatch.setattr(os, name, full)


class TestDiskFull:
    def _check(self, error: DiskFull, stack: Stack, index: FakeIndex, entry: IndexedFile) -> None:
        assert error.code == ErrorCode.CACHE_ERROR
        assert error.errno == errno.ENOSPC
        assert "no space left on device while writing " in error.message
        assert "free space or move the cache with BURROW_CACHE_DIR" in error.message
        assert str(stack.cache.root) in str(error.path)
        _nothing_stored(stack.cache, index, entry)

    async def test_while_downloading(
        self, stack: Stack, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        entry = _wheel(fake_index, "dlfull")
        real_open = open

        def small_disk(path: Path, mode: str = "r") -> Any:
            return _FullFile(real_open(path, mode), room=entry.size // 2)

        # The body is written on the bodies' loop (daemon/index/bodies.py).
        monkeypatch.setattr(bodies_module, "open", small_disk, raising=False)
        with pytest.raises(DiskFull) as caught:
            await _fetch(stack, fake_index, "dlfull")
        self._check(caught.value, stack, fake_index, entry)
        assert caught.value.path.parent == stack.cache.tmp
        assert fake_index.hits[entry.url_path] == 1  # a full disk is not retried

    async def test_while_unpacking(
        self, stack: Stack, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        entry = _wheel(fake_index, "unpackfull")
        _fail_writes_under(monkeypatch, "write", stack.cache.tmp, "/unpack-")
        with pytest.raises(DiskFull) as caught:
            await _fetch(stack, fake_index, "unpackfull")
        self._check(caught.value, stack, fake_index, entry)
        assert caught.value.path == stack.cache.path(Bucket.ARCHIVE, entry.sha256)

    async def test_while_writing_the_pointer(
        self, stack: Stack, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        entry = _wheel(fake_index, "pointerfull")
        _fail_writes_under(monkeypatch, "fsync", stack.cache.tmp, "/w-")
        with pytest.raises(DiskFull) as caught:
            await _fetch(stack, fake_index, "pointerfull")
        assert caught.value.path == pointer_path(stack.cache, _key(fake_index, entry))
        assert read_pointer(stack.cache, _key(fake_index, entry)) is None
        assert tmp_debris(stack.cache) == []

    async def test_while_copying_an_sdist(
        self, stack: Stack, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        sdist = tmp_path / "local-1.0.tar.gz"
        sdist.write_bytes(b"x" * 100_000)
        file = IndexFile(filename=sdist.name, url=sdist.as_uri(), hashes={})
        real_copy = shutil.copyfileobj

        def full_copy(src: Any, dst: Any, length: int = 0) -> None:
            dst.write(src.read(10))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(shutil, "copyfileobj", full_copy)
        with pytest.raises(DiskFull, match="while writing"):
            await stack.index.download(file)
        assert tmp_debris(stack.cache) == []
        monkeypatch.setattr(shutil, "copyfileobj", real_copy)
        done = await stack.index.download(file)
        assert done.read_bytes() == sdist.read_bytes()
        done.unlink()


# -- end to end: the burrow client against a daemon ---------------------------------------------


@pytest.fixture(scope="module")
def faulty_env() -> Iterator[BurrowEnv]:
    """Return an environment whose daemon retries fast and waits 1 s for locks."""
    with burrow_env() as env:
        env.start_daemon(env={**FAST, "BURROW_LOCK_TIMEOUT": "1"})
        yield env


def _error(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Return the JSON-RPC error a failed ``burrow --json`` printed."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    error: dict[str, Any] = json.loads(done.stderr)["error"]
    return error


def _prefetch(
    env: BurrowEnv, index: FakeIndex | str, *pins: str
) -> subprocess.CompletedProcess[str]:
    url = index if isinstance(index, str) else index.simple_url
    return env.cli("--json", "prefetch", *pins, "-i", url)


class TestEndToEnd:
    def test_a_flaky_wheel_is_fetched(self, faulty_env: BurrowEnv, fake_index: FakeIndex) -> None:
        entry = _wheel(fake_index, "e2e-flaky")
        fake_index.fail(entry.url_path, 503, times=2)
        done = _prefetch(faulty_env, fake_index, "e2e-flaky==1.0")
        assert done.returncode == 0, done.stderr
        assert fake_index.hits[entry.url_path] == ATTEMPTS
        cache = Cache(faulty_env.cache)
        pointer = read_pointer(cache, _key(fake_index, entry))
        assert pointer is not None
        assert archive_problems(cache.path(Bucket.ARCHIVE, pointer.archive)) == []

    def test_a_truncated_page_and_metadata_are_fetched_again(
        self, faulty_env: BurrowEnv, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        entry = _wheel(fake_index, "e2e-cut")
        fake_index.fault("/simple/e2e-cut/", "truncate")
        fake_index.fault(f"{entry.url_path}.metadata", "reset")
        done = faulty_env.cli(
            "compile", "e2e-cut", "--no-header", "--no-annotate", "-i", fake_index.simple_url
        )
        assert done.returncode == 0, done.stderr
        assert "e2e-cut==1.0" in done.stdout
        assert fake_index.hits["/simple/e2e-cut/"] == 2
        assert fake_index.hits[f"{entry.url_path}.metadata"] == 2

    def test_a_wheel_that_keeps_resetting_is_a_clear_error(
        self, faulty_env: BurrowEnv, fake_index: FakeIndex
    ) -> None:
        entry = _wheel(fake_index, "e2e-reset")
        fake_index.fault(entry.url_path, "reset", times=10)
        error = _error(_prefetch(faulty_env, fake_index, "e2e-reset==1.0"))
        assert error["code"] == ErrorCode.NETWORK_ERROR
        message = error["message"]
        assert f"request to {fake_index.url_for(entry)} failed" in message
        assert "the server closed the connection without an answer" in message
        assert f"after {ATTEMPTS} attempts" in message
        assert "check the network" in message
        assert error["data"]["attempts"] == ATTEMPTS
        assert fake_index.hits[entry.url_path] in _hits_for("reset")
        _nothing_stored(Cache(faulty_env.cache), fake_index, entry)

    def test_a_page_that_hangs_times_out(
        self, faulty_env: BurrowEnv, fake_index: FakeIndex
    ) -> None:
        _wheel(fake_index, "e2e-hang")
        fake_index.fault("/simple/e2e-hang/", "hang", times=10, seconds=5.0)
        error = _error(_prefetch(faulty_env, fake_index, "e2e-hang==1.0"))
        assert error["code"] == ErrorCode.NETWORK_ERROR
        assert "timed out: no data for 1s" in error["message"]
        assert "BURROW_HTTP_TIMEOUT" in error["message"]
        assert fake_index.hits["/simple/e2e-hang/"] == ATTEMPTS

    def test_credentials_never_show(self, faulty_env: BurrowEnv, fake_index: FakeIndex) -> None:
        entry = _wheel(fake_index, "e2e-secret")
        fake_index.auth = ("user", "s3cr3t-token")
        fake_index.fail(entry.url_path, 502, times=10)
        url = fake_index.simple_url.replace("://", "://user:s3cr3t-token@")
        done = _prefetch(faulty_env, url, "e2e-secret==1.0")
        error = _error(done)
        assert "HTTP 502" in error["message"]
        # Credentials live apart from the URLs: the one named is the file's, clean.
        assert f"request to {fake_index.url_for(entry)} failed" in error["message"]
        assert "s3cr3t" not in done.stderr + done.stdout
        assert "s3cr3t" not in faulty_env.log_text()
        assert fake_index.hits[entry.url_path] == ATTEMPTS

    def test_a_held_entry_lock_names_its_file_and_holder(
        self, faulty_env: BurrowEnv, fake_index: FakeIndex
    ) -> None:
        entry = _wheel(fake_index, "e2e-locked")
        cache = Cache(faulty_env.cache)
        lock = pointer_path(cache, _key(fake_index, entry)).with_suffix(".whl.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        # Held the way uv (or any tool) would: a bare flock, nothing written in the file.
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            error = _error(_prefetch(faulty_env, fake_index, "e2e-locked==1.0"))
        finally:
            os.close(fd)
        assert error["code"] == ErrorCode.LOCK_TIMEOUT
        message = error["message"]
        assert f"the wheel {entry.filename}" in message
        assert str(lock) in message
        assert "timed out after 1s" in message
        assert f"held by pid {os.getpid()}" in message
        assert "BURROW_LOCK_TIMEOUT" in message
        assert error["data"]["path"] == str(lock)
        assert read_pointer(cache, _key(fake_index, entry)) is None
        # Released: the same request goes through.
        assert _prefetch(faulty_env, fake_index, "e2e-locked==1.0").returncode == 0

    def test_clean_waiting_for_an_operation_names_it(self, faulty_env: BurrowEnv) -> None:
        root_lock = faulty_env.cache / ".lock"
        fd = os.open(root_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # an operation of another process
            error = _error(faulty_env.cli("--json", "cache", "clean"))
        finally:
            os.close(fd)
        assert error["code"] == ErrorCode.LOCK_TIMEOUT
        assert str(root_lock) in error["message"]
        assert f"held by pid {os.getpid()}" in error["message"]
        assert "shared" in error["data"]["holder"]


# -- end to end: a real full disk (a tiny tmpfs in a user namespace) --------------------------


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt || exit 1"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def full_disk_env() -> Iterator[BurrowEnv]:
    if not _can_mount_tmpfs():
        pytest.skip("no user namespaces here to mount a small tmpfs without root")
    with burrow_env() as env:
        yield env


@pytest.mark.parametrize(
    ("size", "phase"),
    [
        pytest.param("128k", "download", id="download"),  # the 256 KiB wheel does not fit
        pytest.param("400k", "unpack", id="unpack"),  # the wheel fits, its tree no more
    ],
)
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    full_disk_env: BurrowEnv, fake_index: FakeIndex, tmp_path: Path, size: str, phase: str
) -> None:
    env = full_disk_env
    env.cache.mkdir(parents=True)
    members = [(f"fat/m{i}.bin", os.urandom(64 * 1024)) for i in range(4)]
    wheel = write_wheel(
        tmp_path, "fat", "1.0", [*members, ("fat/__init__.py", b"")], compression=zipfile.ZIP_STORED
    )
    (entry,) = fake_index.add(wheel)
    mount = f'mount -t tmpfs -o size={size},mode=0700 none "$0" && exec "$@"'
    daemon = env.start_daemon(
        env=FAST, wrapper=["unshare", "-rm", "sh", "-c", mount, os.fspath(env.cache)]
    )
    # The tmpfs is only in the daemon's mount namespace: look at the cache through its root.
    seen = Cache(Path(f"/proc/{daemon.pid}/root") / env.cache.relative_to("/"))
    error = _error(_prefetch(env, fake_index, "fat==1.0"))
    assert error["code"] == ErrorCode.CACHE_ERROR
    message = error["message"]
    assert message.startswith("no space left on device while writing ")
    assert message.endswith("free space or move the cache with BURROW_CACHE_DIR")
    written = Path(error["data"]["path"])
    if phase == "download":
        assert written.parent == env.cache / ".tmp"
    else:
        assert written == env.cache / Bucket.ARCHIVE.value / entry.sha256
    assert fake_index.hits[entry.url_path] == 1
    _nothing_stored(seen, fake_index, entry)
    assert "Traceback" not in env.log_text()
