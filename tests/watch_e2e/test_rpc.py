"""``burrow rpc``: any request from a script, its reply as JSON, notifications with --follow."""

from __future__ import annotations

import json
import subprocess

from burrowd.protocol.errors import ErrorCode
from tests.install_e2e.support import reaped
from tests.watch_e2e.support import JsonReader, Project, package


def test_status(project: Project) -> None:
    status = json.loads(project.burrow.ok("rpc", "status"))
    assert status["pid"] == project.env.daemons[0].pid
    for key in ("jobs", "queues", "watches", "errors", "requests", "subscribers", "foreground"):
        assert key in status, key
    assert {q["name"] for q in status["queues"]} == {"network", "downloads", "unpack", "build"}


def test_resolve_gets_the_terminals_env(project: Project) -> None:
    project.index.add_many([package("foo", "1.0", "bar"), package("bar")])
    params = {"requirements": ["foo"], "index": {"index_url": project.url}, "dry_run": True}
    result = json.loads(project.burrow.ok("rpc", "resolve", json.dumps(params)))
    assert {p["name"]: p["version"] for p in result["packages"]} == {"foo": "1.0", "bar": "1.0"}
    # A relative file is read from the client's working directory.
    project.write("requirements.in", "bar")
    params = {"requirement_files": ["requirements.in"], "index": {"index_url": project.url}}
    done = subprocess.run(
        project.burrow.command("rpc", "resolve", "-"),
        input=json.dumps({**params, "dry_run": True}),
        env=project.burrow.environ(),
        cwd=project.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [p["name"] for p in json.loads(done.stdout)["packages"]] == ["bar"]
    assert not (project.cwd / "requirements.txt").exists()


def test_an_unknown_method(project: Project) -> None:
    done = project.burrow.run("rpc", "no.such.method")
    assert done.returncode == 1
    assert done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["code"] == ErrorCode.METHOD_NOT_FOUND
    assert error["code"] == -32601
    assert "no.such.method" in error["message"]


def test_invalid_params(project: Project) -> None:
    stderr = project.burrow.fails("rpc", "status", "{not json")
    assert stderr.startswith("error: PARAMS is not JSON"), stderr
    done = project.burrow.run("rpc", "watch.remove", '{"ids": "one"}')
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"]["code"] == ErrorCode.INVALID_PARAMS


def test_follow_prints_watch_events(project: Project) -> None:
    project.index.add_many([package("first"), package("second")])
    project.write("requirements.in", "first")
    wid = project.add_one("requirements.in")
    project.until_watch(wid, lambda w: w["state"] == "warm")
    follower = project.burrow.popen("rpc", "watch.events", "--follow")
    with reaped(follower):
        reader = JsonReader(follower)
        (reply,) = reader.until(lambda docs: len(docs) >= 1)
        assert reply["subscribed"] is True
        assert [w["id"] for w in reply["watches"]] == [wid]
        project.write("requirements.in", "first", "second")
        docs = reader.until(
            lambda docs: any(d.get("params", {}).get("event") == "prefetch-done" for d in docs)
        )
        assert follower.poll() is None  # it follows until killed
    notes = docs[1:]
    assert all(n["jsonrpc"] == "2.0" and n["method"] == "watch.event" for n in notes), notes
    assert [n["params"]["event"] for n in notes] == ["resolution-changed", "prefetch-done"]
    assert notes[0]["params"]["watch"] == wid
    assert notes[0]["params"]["changes"] == [{"name": "second", "old": None, "new": "1.0"}]
