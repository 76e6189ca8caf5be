"""A daemon killed (SIGKILL) while it unpacks a wheel leaves only debris that prune removes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.wheels import WheelKey, pointer_path, read_pointer
from tests.cache_e2e.support import big_wheel
from tests.daemon.cache.harness import archive_problems, tmp_debris
from tests.e2e.helpers import BurrowEnv, wait_until
from tests.support.index import FakeIndex

ATTEMPTS = 5


def _unpacking(cache: Cache) -> bool:
    return any(name.startswith("unpack-") for name in tmp_debris(cache))


def _kill_while_unpacking(env: BurrowEnv, index: FakeIndex, cache: Cache, key: WheelKey) -> bool:
    """Start a daemon and a prefetch; SIGKILL the daemon once it unpacks.

    Return whether the kill landed while the wheel was being unpacked (its temporary tree
    still there, no pointer yet).
    """
    daemon = env.start_daemon()
    client = subprocess.Popen(
        [sys.executable, "-m", "burrowd.client", "prefetch", "big==1.0", "-i", index.simple_url],
        env=env.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    killed = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and client.poll() is None:
            if _unpacking(cache):
                daemon.proc.kill()
                killed = True
                break
            time.sleep(0.002)
    finally:
        _out, err = client.communicate(timeout=30)
        daemon.proc.kill()
        daemon.proc.wait(10)
    # Too late if the unpacked tree was already renamed into place (or even pointed to).
    landed = killed and _unpacking(cache) and read_pointer(cache, key) is None
    if landed:
        assert client.returncode == 1, err
    return landed


@pytest.mark.slow
def test_kill_during_unpack_leaves_only_debris(
    env: BurrowEnv, fake_index: FakeIndex, tmp_path: Path
) -> None:
    (entry,) = fake_index.add(big_wheel(tmp_path / "w", "big", files=600, size=40 * 1024))
    assert entry.size > 20 * 1024 * 1024
    cache = Cache(env.cache)
    key = WheelKey.from_index(fake_index.simple_url + "/", "big", entry.filename)
    for _attempt in range(ATTEMPTS):
        if _kill_while_unpacking(env, fake_index, cache, key):
            break
        shutil.rmtree(env.cache, ignore_errors=True)  # too late: start again
    else:
        pytest.fail(f"no kill landed during the unpack in {ATTEMPTS} attempts")

    # Nothing half-made is visible: no archive without its manifest, no pointer to one.
    archives = cache.bucket(Bucket.ARCHIVE)
    for archive in archives.iterdir() if archives.is_dir() else []:
        assert archive_problems(archive) == [], archive
    if pointer_path(cache, key).exists():
        pointer = read_pointer(cache, key)
        assert pointer is not None
        assert archive_problems(cache.path(Bucket.ARCHIVE, pointer.archive)) == []
    debris = tmp_debris(cache)
    assert any(name.startswith("unpack-") for name in debris), debris

    # The next daemon removes what the killed one left (its pid is in each name).
    env.start_daemon()
    assert wait_until(lambda: tmp_debris(cache) == [], timeout=10), tmp_debris(cache)
    pruned = env.cli_json("cache", "prune")
    assert pruned["removed"].get("temporary", 0) == 0

    done = env.cli("prefetch", "big==1.0", "-i", fake_index.simple_url)
    assert done.returncode == 0, (done.stdout, done.stderr)
    pointer = read_pointer(cache, key)
    assert pointer is not None
    assert pointer.archive == entry.sha256
    assert archive_problems(cache.path(Bucket.ARCHIVE, entry.sha256)) == []
    assert tmp_debris(cache) == []
    assert os.listdir(archives) == [entry.sha256]
