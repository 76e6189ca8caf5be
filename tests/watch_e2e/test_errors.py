"""What cannot be watched, through the CLI (exit 1 and a message naming the fix) and raw RPC."""

from __future__ import annotations

from typing import Any

import pytest

from burrowd.protocol.errors import ErrorCode
from tests.watch_e2e.support import Project, package


@pytest.fixture
def published(project: Project) -> Project:
    project.index.add(package("thing"))
    project.write("requirements.in", "thing")
    return project


class TestCli:
    def test_a_missing_file(self, published: Project) -> None:
        stderr = published.burrow.fails("watch", "add", "nothere.in", "-i", published.url)
        path = published.cwd / "nothere.in"
        assert (
            stderr == f"error: cannot watch {path}: no such file; create it first, then watch it\n"
        )

    def test_setup_py(self, published: Project) -> None:
        published.write("setup.py", "from setuptools import setup", "setup()")
        stderr = published.burrow.fails("watch", "add", "setup.py", "-i", published.url)
        assert f"cannot watch {published.cwd / 'setup.py'}: not a requirements input" in stderr
        assert "watch a *.in file, a requirements*.txt file or a pyproject.toml" in stderr

    def test_one_bad_file_adds_none(self, published: Project) -> None:
        published.burrow.fails("watch", "add", "requirements.in", "nothere.in", "-i", published.url)
        assert published.burrow.json("watch", "list")["watches"] == []

    def test_no_daemon(self, published: Project) -> None:
        stderr = published.burrow.fails(
            "--no-daemon", "watch", "add", "requirements.in", "-i", published.url
        )
        assert "watches need the daemon" in stderr
        assert "run the command without --no-daemon" in stderr
        assert published.burrow.json("watch", "list")["watches"] == []

    def test_removing_an_unknown_id(self, published: Project) -> None:
        stderr = published.burrow.fails("watch", "remove", "--id", "999")
        # (It reads "cannot watch watch 999": the remove errors reuse the add wording.)
        assert "watch 999: no such watch; `burrow watch list` shows the watches\n" in stderr

    def test_removing_a_file_not_watched(self, published: Project) -> None:
        stderr = published.burrow.fails("watch", "remove", "requirements.in")
        assert f"{published.cwd / 'requirements.in'}: it is not watched" in stderr

    def test_removing_nothing(self, published: Project) -> None:
        stderr = published.burrow.fails("watch", "remove")
        assert stderr == "error: name the files to stop watching, or give --id N or --all\n"

    def test_json_errors_carry_the_code(self, published: Project) -> None:
        error = published.burrow.json_error("watch", "add", "nothere.in")
        assert error["code"] == ErrorCode.WATCH_ERROR
        assert error["data"] == {
            "path": str(published.cwd / "nothere.in"),
            "reason": "no such file",
            "hint": "create it first, then watch it",
        }

    def test_waiting_for_events_times_out(self, published: Project) -> None:
        done = published.burrow.run("watch", "events", "--timeout", "0.3")
        assert done.returncode == 1
        assert done.stderr == "watches: none\nerror: no watch event within 0.3s (0 seen)\n"


def _env(project: Project) -> dict[str, Any]:
    return {"cwd": str(project.cwd)}


class TestRpc:
    @pytest.mark.parametrize(
        "params",
        [
            pytest.param({"requirements": ["thing"]}, id="requirements"),
            pytest.param({"requirement_files": ["-"], "stdin": "thing\n"}, id="stdin"),
            pytest.param(
                {"requirement_files": ["requirements.in"], "stdin": "thing\n"},
                id="stdin-and-a-file",
            ),
            pytest.param({"requirement_files": []}, id="nothing"),
            pytest.param({"requirement_files": ["nothere.in"]}, id="missing-file"),
            pytest.param({"requirement_files": ["setup.py"]}, id="setup.py"),
        ],
    )
    def test_watch_add_refuses(self, published: Project, params: dict[str, Any]) -> None:
        published.write("setup.py", "")
        client = published.client()
        reply = client.request("watch.add", {"env": _env(published), **params})
        assert reply["error"]["code"] == ErrorCode.WATCH_ERROR, reply
        assert reply["error"]["code"] == -32024
        assert client.call("watch.list")["watches"] == []

    def test_watch_remove_refuses(self, published: Project) -> None:
        client = published.client()
        for params in ({"ids": [999]}, {"env": _env(published), "paths": ["requirements.in"]}):
            reply = client.request("watch.remove", params)
            assert reply["error"]["code"] == ErrorCode.WATCH_ERROR, reply

    def test_add_and_remove_by_path(self, published: Project) -> None:
        client = published.client()
        added = client.call(
            "watch.add",
            {
                "env": _env(published),
                "requirement_files": ["requirements.in"],
                "index": {"index_url": published.url},
            },
        )
        (watch,) = added["watches"]
        assert watch["path"] == str(published.cwd / "requirements.in")
        removed = client.call(
            "watch.remove", {"env": _env(published), "paths": ["./requirements.in"]}
        )
        assert [w["id"] for w in removed["removed"]] == [watch["id"]]
        assert client.call("watch.list")["watches"] == []
