"""Many requests, and two daemons, fetching the same wheels at once: one download each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.wheels import WheelKey, read_pointer
from tests.cache_e2e.support import prefetch_params
from tests.daemon.cache.harness import archive_problems, tmp_debris
from tests.e2e.helpers import BurrowEnv, DaemonProcess, RawClient, burrow_env
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex

_TROUBLE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def _send_prefetch(client: RawClient, params: dict[str, Any]) -> int:
    rid = client.new_id()
    client.send_json({"jsonrpc": "2.0", "id": rid, "method": "prefetch", "params": params})
    return rid


def _result(client: RawClient, rid: int) -> dict[str, Any]:
    reply = client.read_reply(rid)
    assert "error" not in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


class TestSingleDaemon:
    def test_ten_concurrent_prefetches_download_once(
        self, env: BurrowEnv, daemon: DaemonProcess, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        fake_index.add(DistSpec("warm", "1.0"))
        (foo,) = fake_index.add(DistSpec("foo", "1.0"))
        warm_params = prefetch_params(["warm==1.0"], index_url=fake_index.simple_url, cwd=tmp_path)
        with env.connect() as warm:  # the interpreter is queried once, before the rush
            _result(warm, _send_prefetch(warm, warm_params))
        fake_index.bandwidth = foo.size / 1.0  # the download lasts about a second
        params = prefetch_params(["foo==1.0"], index_url=fake_index.simple_url, cwd=tmp_path)
        clients = [RawClient(env.socket, timeout=60) for _ in range(10)]
        try:
            sent = [(client, _send_prefetch(client, params)) for client in clients]
            results = [_result(client, rid) for client, rid in sent]
        finally:
            for client in clients:
                client.close()
        archives = {r["wheels"][0]["archive"] for r in results}
        assert len(archives) == 1
        assert archive_problems(Path(archives.pop())) == []
        assert fake_index.hits[foo.url_path] == 1
        overlapped = sum(not r["wheels"][0]["cached"] for r in results)
        assert overlapped >= 2, "the requests did not run at the same time"
        assert tmp_debris(Cache(env.cache)) == []
        assert not _TROUBLE.search(env.log_text())


@pytest.mark.slow
class TestTwoDaemons:
    def test_sharing_one_cache(
        self, env: BurrowEnv, daemon: DaemonProcess, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        specs = [DistSpec(f"pkg{i}", "1.0", files=_payload(i)) for i in range(6)]
        entries = fake_index.add_many(specs)
        fake_index.bandwidth = min(e.size for e in entries) / 1.0  # a second per wheel
        pins = [f"pkg{i}==1.0" for i in range(6)]
        params = prefetch_params(pins, index_url=fake_index.simple_url, cwd=tmp_path)
        with burrow_env() as other:
            second = other.start_daemon(env={"BURROW_CACHE_DIR": str(env.cache)})
            with RawClient(env.socket, timeout=60) as a, RawClient(other.socket, timeout=60) as b:
                a.initialize()
                b.initialize()
                rid_a = _send_prefetch(a, params)
                rid_b = _send_prefetch(b, params)
                results = [_result(a, rid_a), _result(b, rid_b)]
            other_log = other.log_text() + second.stderr()
        cache = Cache(env.cache)
        for result in results:
            assert sorted(w["name"] for w in result["wheels"]) == sorted(
                f"pkg{i}" for i in range(6)
            )
        assert sorted(p.name for p in cache.bucket(Bucket.ARCHIVE).iterdir()) == sorted(
            e.sha256 for e in entries
        )
        for entry in entries:
            key = WheelKey.from_index(fake_index.simple_url + "/", entry.project, entry.filename)
            pointer = read_pointer(cache, key)
            assert pointer is not None
            assert pointer.archive == entry.sha256
            assert archive_problems(cache.path(Bucket.ARCHIVE, entry.sha256)) == []
            assert fake_index.hits[entry.url_path] == 1
        assert tmp_debris(cache) == []
        logs = [env.log_text() + daemon.stderr(), other_log]
        for log in logs:
            assert not _TROUBLE.search(log), log
        assert any("waiting for exclusive lock on the wheel" in log for log in logs), (
            "the daemons never contended for an entry"
        )


def _payload(i: int) -> dict[str, bytes]:
    """Return a package of a few dozen files, some kilobytes each."""
    return {f"pkg{i}/m{j:03d}.py": f"X = {j!r}\n".encode() * (50 + j) for j in range(40)}
