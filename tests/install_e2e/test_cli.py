"""``burrow sync/install/uninstall/list/freeze/venv``: the real CLI, a real daemon, a fake index.

One daemon serves the module; every test has its own index (so its own cache keys) and its
own environments under ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.protocol.errors import ErrorCode
from tests.cache_e2e.support import snapshot
from tests.daemon.cache.harness import tmp_debris
from tests.install_e2e.support import (
    PYTHON_DIR,
    TRASH_DIR,
    Burrow,
    execute,
    make_venv,
    requirements,
    site_packages,
    tree,
)
from tests.support.dists import ZIP_SLIP_MEMBER, Breakage, DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory

_FOO_CODE = "__version__ = {v!r}\ndef main():\n    print('foo', __version__)\n"
_PIP_CODE = b"def main():\n    print('fake pip 99.0')\n"


def _foo(version: str) -> DistSpec:
    return DistSpec(
        "foo",
        version,
        files={"foo/__init__.py": _FOO_CODE.format(v=version).encode()},
        entry_points={
            "console_scripts": {"foo-cli": "foo:main"},
            "gui_scripts": {"foo-gui": "foo:main"},
        },
    )


@pytest.fixture
def index(fake_index: FakeIndex) -> FakeIndex:
    fake_index.add_many(
        [
            _foo("1.0"),
            _foo("2.0"),
            DistSpec("bar", "1.0", requires_dist=["foo>=1"]),
            DistSpec("baz", "1.0"),
            # Seed packages; pip's launchers are named as in pip's own wheel.
            DistSpec(
                "pip",
                "99.0",
                files={"pip/__init__.py": _PIP_CODE},
                entry_points={"console_scripts": {"pip": "pip:main", "pip3": "pip:main"}},
            ),
            DistSpec("setuptools", "99.0"),
            DistSpec("wheel", "99.0"),
        ]
    )
    return fake_index


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """Return a venv made by ``python -m venv`` (not by burrowd), empty."""
    return make_venv(tmp_path / "venv")


def _plain(out: str) -> str:
    """Return ``out`` with durations and sizes replaced, for exact transcripts."""
    out = re.sub(r" \(\d+(\.\d+)? (B|KiB|MiB) downloaded\)", " (<size> downloaded)", out)
    return re.sub(r" in \d+(\.\d+)?(ms|s)\b", " in <t>", out)


def _sync(
    burrow: Burrow, index: FakeIndex, venv: Path, *pins: str | Path, opts: tuple[str, ...] = ()
) -> str:
    """Sync ``venv`` to ``pins`` (written to a requirements file); return stdout."""
    reqs = requirements(burrow.cwd / "requirements.txt", *pins)
    return burrow.ok("sync", reqs, "-p", venv, "-i", index.simple_url, *opts)


def _file_hits(index: FakeIndex) -> dict[str, int]:
    return {path: n for path, n in index.hits.items() if path.startswith("/files/")}


def _cache_state(burrow: Burrow) -> dict[str, bytes]:
    return snapshot(Cache(burrow.env.cache), Bucket.ARCHIVE, Bucket.WHEELS)


class TestSync:
    def test_sync_then_list_freeze_and_audit(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        out = _sync(burrow, index, venv, "foo==1.0", "bar==1.0")
        assert _plain(out) == (
            "Prepared 2 packages in <t> (<size> downloaded)\n"
            "Installed 2 packages in <t>\n"
            " + bar==1.0\n"
            " + foo==1.0\n"
        )
        assert burrow.ok("list", "-p", venv) == (
            "Package Version\n------- -------\nbar     1.0\nfoo     1.0\n"
        )
        assert burrow.ok("freeze", "-p", venv) == "bar==1.0\nfoo==1.0\n"
        listing = burrow.json("list", "-p", venv)
        assert listing["environment"] == str(venv)
        assert listing["python"] == str(venv / "bin" / "python")
        site = site_packages(venv)
        assert listing["packages"] == [
            {
                "name": name,
                "version": "1.0",
                "path": str(site / f"{name}-1.0.dist-info"),
                "installer": "burrowd",
                "requested": True,
                "url": None,
                "editable": False,
            }
            for name in ("bar", "foo")
        ]
        assert (site / "foo-1.0.dist-info" / "INSTALLER").read_text() == "burrowd\n"

        hits = dict(index.hits)
        before = tree(venv)
        out = _sync(burrow, index, venv, "foo==1.0", "bar==1.0")
        assert _plain(out) == "Audited 2 packages in <t>\n"
        assert dict(index.hits) == hits, "a sync with nothing to do asked the index"
        assert tree(venv) == before

    def test_removes_extraneous_and_follows_changed_pins(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        _sync(burrow, index, venv, "foo==1.0", "bar==1.0", "baz==1.0")
        out = _sync(burrow, index, venv, "foo==2.0", "bar==1.0")
        assert _plain(out) == (
            "Prepared 1 package in <t> (<size> downloaded)\n"
            "Uninstalled 2 packages in <t>\n"
            "Installed 1 package in <t>\n"
            " - baz==1.0\n"
            " - foo==1.0\n"
            " + foo==2.0\n"
        )
        site = site_packages(venv)
        assert sorted(p.name for p in site.iterdir()) == [
            "bar",
            "bar-1.0.dist-info",
            "foo",
            "foo-2.0.dist-info",
        ]
        assert (site / "foo" / "__init__.py").read_text() == _FOO_CODE.format(v="2.0")
        out = _sync(burrow, index, venv, "foo==1.0", "bar==1.0")
        assert _plain(out) == (
            "Uninstalled 1 package in <t>\nInstalled 1 package in <t>\n - foo==2.0\n + foo==1.0\n"
        )
        assert burrow.ok("freeze", "-p", venv) == "bar==1.0\nfoo==1.0\n"
        assert not (site / "foo-2.0.dist-info").exists()
        assert not (site / "baz").exists()

    def test_dry_run_changes_nothing(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        before = tree(venv)
        files = _file_hits(index)
        out = _sync(burrow, index, venv, "foo==2.0", "bar==1.0", opts=("--dry-run",))
        assert out == (
            "Would uninstall 1 package\n"
            "Would install 2 packages\n"
            " + bar==1.0\n"
            " - foo==1.0\n"
            " + foo==2.0\n"
        )
        assert tree(venv) == before
        assert _file_hits(index) == files, "a dry run downloaded wheels"
        reqs = requirements(burrow.cwd / "r.txt", "foo==2.0")
        result = burrow.json("sync", reqs, "-p", venv, "-i", index.simple_url, "--dry-run")
        assert result["dry_run"] is True
        assert [(c["name"], c["version"], c["previous"]) for c in result["installed"]] == [
            ("foo", "2.0", "1.0")
        ]
        assert [(c["name"], c["version"]) for c in result["removed"]] == [("foo", "1.0")]
        assert tree(venv) == before
        out = _sync(burrow, index, venv, "foo==1.0", opts=("--dry-run",))
        assert out == "Would make no changes\n"

    def test_json_output(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0", "baz==1.0")
        reqs = requirements(burrow.cwd / "r.txt", "foo==2.0", "bar==1.0")
        result = burrow.json("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert set(result) == {
            "environment",
            "python",
            "target",
            "installed",
            "removed",
            "unchanged",
            "dry_run",
            "downloaded",
            "bytes",
            "elapsed",
            "timings",
            "warnings",
            "problems",
        }
        assert result["environment"] == str(venv)
        assert result["python"] == str(venv / "bin" / "python")
        assert result["target"].startswith(("CPython", "PyPy"))
        change = {"url": "", "editable": False}
        assert sorted(result["installed"], key=lambda c: c["name"]) == [
            {"name": "bar", "version": "1.0", "previous": None, "reason": "missing"}
            | change
            | {"cached": False},
            {"name": "foo", "version": "2.0", "previous": "1.0", "reason": "version"}
            | change
            | {"cached": False},
        ]
        assert sorted(result["removed"], key=lambda c: c["name"]) == [
            {"name": "baz", "version": "1.0", "previous": None, "reason": "extraneous"}
            | change
            | {"cached": True},
            {"name": "foo", "version": "1.0", "previous": None, "reason": "version"}
            | change
            | {"cached": True},
        ]
        assert result["unchanged"] == 0
        assert result["dry_run"] is False
        assert result["downloaded"] == 2
        assert result["bytes"] == sum(
            f.size for f in index.files() if f.filename.startswith(("bar-1.0", "foo-2.0"))
        )
        assert {"install", "uninstall", "prepare"} <= set(result["timings"])
        assert result["warnings"] == []
        assert result["problems"] == []
        again = burrow.json("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert (again["installed"], again["removed"], again["unchanged"]) == ([], [], 2)

    def test_environment_discovery(self, burrow: Burrow, index: FakeIndex, tmp_path: Path) -> None:
        project = make_venv(tmp_path / "proj" / ".venv")
        sub = tmp_path / "proj" / "src" / "pkg"
        sub.mkdir(parents=True)
        other = make_venv(tmp_path / "other")
        reqs = requirements(tmp_path / "r.txt", "baz==1.0")
        sync = ("sync", reqs, "-i", index.simple_url)
        burrow.ok(*sync, cwd=sub)  # ./.venv of a parent
        assert burrow.names(project) == {"baz": "1.0"}
        assert burrow.names(other) == {}
        burrow.ok(*sync, env={"VIRTUAL_ENV": str(other)}, cwd=sub)  # VIRTUAL_ENV wins
        assert burrow.names(other) == {"baz": "1.0"}
        for python in (other, other / "bin" / "python3"):  # a venv directory or interpreter
            result = burrow.json("list", "-p", python, cwd=sub)
            assert result["environment"] == str(other)
        # A relative -p is the client's, not the daemon's (whose cwd is elsewhere).
        result = burrow.json("list", "-p", ".venv", cwd=tmp_path / "proj")
        assert result["environment"] == str(project)

    def test_local_wheel(
        self, burrow: Burrow, index: FakeIndex, venv: Path, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("local", "1.0")
        url = wheel.as_uri()
        out = _sync(burrow, index, venv, wheel)
        assert f" + local @ {url}\n" in out
        assert wheel.is_file(), "the user's wheel was moved or deleted"
        assert burrow.ok("freeze", "-p", venv) == f"local @ {url}\n"
        site = site_packages(venv)
        direct = (site / "local-1.0.dist-info" / "direct_url.json").read_text()
        assert url in direct
        assert _plain(_sync(burrow, index, venv, wheel)) == "Audited 1 package in <t>\n"
        stat = wheel.stat()
        os.utime(wheel, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns + 10**9))
        assert _plain(_sync(burrow, index, venv, wheel)) == "Audited 1 package in <t>\n"

        changed = dist_factory.wheel("local", "1.0", files={"local/__init__.py": b"CHANGED = 1\n"})
        assert changed == wheel
        out = _sync(burrow, index, venv, wheel)
        assert _plain(out).splitlines()[-2:] == [f" - local @ {url}", f" + local @ {url}"]
        assert (site / "local" / "__init__.py").read_bytes() == b"CHANGED = 1\n"
        assert wheel.is_file()
        assert _plain(_sync(burrow, index, venv, wheel)) == "Audited 1 package in <t>\n"

    def test_scripts_run_and_the_package_imports(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        bin_dir = venv / "bin"
        for script in ("foo-cli", "foo-gui"):
            done = execute(bin_dir / script)
            assert (done.returncode, done.stdout, done.stderr) == (0, "foo 1.0\n", "")
            assert (bin_dir / script).read_bytes().startswith(f"#!{bin_dir / 'python'}\n".encode())
        code = "import foo, sys; print(foo.__file__); print(sys.prefix)"
        done = execute(bin_dir / "python", "-c", code, cwd="/")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            str(site_packages(venv) / "foo" / "__init__.py"),
            str(venv),
        ]
        _sync(burrow, index, venv, "foo==2.0")
        done = execute(bin_dir / "foo-cli")
        assert done.stdout == "foo 2.0\n"
        _sync(burrow, index, venv, "baz==1.0")
        assert not (bin_dir / "foo-cli").exists()
        assert not (bin_dir / "foo-gui").exists()

    @pytest.mark.parametrize("mode", ["hardlink", "copy", "symlink"])
    def test_link_modes(self, burrow: Burrow, index: FakeIndex, venv: Path, mode: str) -> None:
        _sync(burrow, index, venv, "baz==1.0", opts=(f"--link-mode={mode}",))
        installed = site_packages(venv) / "baz" / "__init__.py"
        archives = list((burrow.env.cache / "archive-v0").glob("*/baz/__init__.py"))
        assert len(archives) == 1
        if mode == "symlink":
            assert installed.is_symlink()
            assert installed.resolve() == archives[0].resolve()
        else:
            assert not installed.is_symlink()
            assert installed.samefile(archives[0]) == (mode == "hardlink")
        assert installed.read_text() == "__version__ = '1.0'\n"
        # Whatever the mode, RECORD-driven removal takes the files (not the cache's) away.
        _sync(burrow, index, venv, "foo==1.0")
        tree(venv)  # the removed directories are deleted just after the answer
        assert not installed.parent.exists()
        assert archives[0].read_text() == "__version__ = '1.0'\n"

    def test_reinstall_and_compile_bytecode(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        _sync(burrow, index, venv, "foo==1.0", "baz==1.0")
        out = _sync(burrow, index, venv, "foo==1.0", "baz==1.0", opts=("--reinstall-package=foo",))
        assert _plain(out).splitlines()[-2:] == [" - foo==1.0", " + foo==1.0"]
        assert "baz" not in out
        out = _sync(burrow, index, venv, "foo==1.0", "baz==1.0", opts=("--reinstall", "-q"))
        assert out == ""
        out = _sync(
            burrow, index, venv, "foo==1.0", "baz==1.0", opts=("--reinstall", "--compile-bytecode")
        )
        lines = _plain(out).splitlines()
        assert "Bytecode compiled in <t>" in lines
        assert lines[-4:] == [" - baz==1.0", " + baz==1.0", " - foo==1.0", " + foo==1.0"]
        cache_dir = site_packages(venv) / "foo" / "__pycache__"
        impl = sys.implementation.cache_tag
        assert (cache_dir / f"__init__.{impl}.pyc").is_file()
        # Removal takes the bytecode with the module, then the emptied package directory.
        _sync(burrow, index, venv, "baz==1.0")
        assert not cache_dir.parent.exists()

    def test_strict_reports_unmet_requirements(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        reqs = requirements(burrow.cwd / "r.txt", "bar==1.0")
        done = burrow.run("sync", reqs, "-p", venv, "-i", index.simple_url, "--strict")
        assert done.returncode == 0, done.stderr
        assert done.stderr == "warning: bar==1.0 requires foo>=1, but foo is not installed\n"
        reqs = requirements(burrow.cwd / "r.txt", "bar==1.0", "foo==1.0")
        done = burrow.run("sync", reqs, "-p", venv, "-i", index.simple_url, "--strict")
        assert (done.returncode, done.stderr) == (0, "")

    def test_removes_a_legacy_egg_info_install(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        baseline = tree(venv)
        site = site_packages(venv)
        egg_info = site / f"legacy-1.0-py{PYTHON_DIR.removeprefix('python')}.egg-info"
        egg_info.mkdir()
        (egg_info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\n")
        (egg_info / "installed-files.txt").write_text(
            "../legacy/__init__.py\n../legacy_mod.py\nPKG-INFO\ninstalled-files.txt\n"
        )
        (site / "legacy").mkdir()
        (site / "legacy" / "__init__.py").write_text("")
        (site / "legacy_mod.py").write_text("")
        assert burrow.ok("freeze", "-p", venv) == "legacy==1.0\n"
        out = _sync(burrow, index, venv, "baz==1.0")
        assert _plain(out).splitlines()[-2:] == [" + baz==1.0", " - legacy==1.0"]
        empty = requirements(burrow.cwd / "empty.txt")
        burrow.ok("sync", empty, "-p", venv, "--allow-empty-requirements")
        assert tree(venv) == baseline

    def test_empty_requirements(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        empty = requirements(burrow.cwd / "empty.txt", "# nothing pinned")
        stderr = burrow.fails("sync", empty, "-p", venv)
        assert "--allow-empty-requirements" in stderr
        assert burrow.names(venv) == {"foo": "1.0"}
        out = burrow.ok("sync", empty, "-p", venv, "--allow-empty-requirements")
        assert _plain(out) == "Uninstalled 1 package in <t>\n - foo==1.0\n"
        assert sorted(os.listdir(site_packages(venv))) == []
        assert not (venv / "bin" / "foo-cli").exists()


class TestSyncErrors:
    """Failures exit 1 with one clear ``error:`` line and leave the environment as it was."""

    def test_missing_package(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        before = tree(venv)
        reqs = requirements(burrow.cwd / "r.txt", "foo==2.0", "nothere==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert "'nothere' was not found" in stderr
        assert index.simple_url in stderr
        assert tree(venv) == before
        error = burrow.json_error("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert error["code"] == ErrorCode.PACKAGE_NOT_FOUND
        reqs = requirements(burrow.cwd / "r.txt", "foo==3.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert "foo==3.0" in stderr
        assert "2.0, 1.0" in stderr
        assert tree(venv) == before

    def test_pin_without_a_version(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        reqs = requirements(burrow.cwd / "r.txt", "baz==1.0", "foo==")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert stderr.startswith(f"error: {reqs}:2: invalid requirement")
        assert "foo==" in stderr
        error = burrow.json_error("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert error["code"] == ErrorCode.INVALID_REQUIREMENT
        assert burrow.names(venv) == {}
        assert not index.hits

    def test_bad_hash(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        before = tree(venv)
        cache_before = _cache_state(burrow)
        good = next(f for f in index.files("foo") if f.version == "2.0")
        bad = "0" * 64
        reqs = requirements(burrow.cwd / "r.txt", f"foo==2.0 --hash=sha256:{bad}")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert "hash mismatch for foo-2.0-py3-none-any.whl" in stderr
        assert bad in stderr
        assert good.sha256 in stderr
        error = burrow.json_error("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert error["code"] == ErrorCode.HASH_MISMATCH
        assert error["data"]["expected"] == [bad]
        assert error["data"]["actual"] == good.sha256
        assert tree(venv) == before
        assert _cache_state(burrow) == cache_before
        # The right hash installs it.
        reqs = requirements(burrow.cwd / "r.txt", f"foo==2.0 --hash=sha256:{good.sha256}")
        burrow.ok("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert burrow.names(venv) == {"foo": "2.0"}

    def test_require_hashes_needs_a_hash(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        reqs = requirements(burrow.cwd / "r.txt", "foo==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url, "--require-hashes")
        assert "--require-hashes is on, and foo has no --hash" in stderr
        # One --hash turns the check on for every pin, as in pip.
        foo = next(f for f in index.files("foo") if f.version == "1.0")
        reqs = requirements(
            burrow.cwd / "r.txt", f"foo==1.0 --hash=sha256:{foo.sha256}", "baz==1.0"
        )
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert f"{reqs}:2: --require-hashes is on, and baz has no --hash" in stderr
        assert burrow.names(venv) == {}

    def test_refuses_an_interpreter_outside_a_venv(self, burrow: Burrow, index: FakeIndex) -> None:
        base = Path(sys.base_prefix) / "bin" / PYTHON_DIR
        if not base.is_file() or sys.base_prefix == sys.prefix:
            pytest.skip("the tests do not run in a venv with a base interpreter at a known path")
        reqs = requirements(burrow.cwd / "r.txt", "baz==1.0")
        # --dry-run: should the refusal ever break, the base interpreter is still left alone.
        stderr = burrow.fails("sync", reqs, "-p", base, "-i", index.simple_url, "--dry-run")
        assert "not in a virtual environment" in stderr
        assert "--system" in stderr
        error = burrow.json_error("sync", reqs, "-p", base, "-i", index.simple_url, "--dry-run")
        assert error["code"] == ErrorCode.ENVIRONMENT_ERROR
        # No -p, no VIRTUAL_ENV and no .venv up from the working directory: nothing to change.
        stderr = burrow.fails("sync", reqs, "-i", index.simple_url, "--dry-run")
        assert "no virtual environment found" in stderr
        assert not index.hits

    def test_zip_slip_wheel(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        index.add(DistSpec("evil", "1.0"), broken=Breakage.ZIP_SLIP)
        _sync(burrow, index, venv, "foo==1.0")
        before = tree(venv)
        cache_before = _cache_state(burrow)
        reqs = requirements(burrow.cwd / "r.txt", "foo==1.0", "evil==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert "evil-1.0-py3-none-any.whl" in stderr
        assert repr(ZIP_SLIP_MEMBER) in stderr
        assert tree(venv) == before
        assert _cache_state(burrow) == cache_before
        assert tmp_debris(Cache(burrow.env.cache)) == []
        name = ZIP_SLIP_MEMBER.rsplit("/", 1)[-1]
        assert [str(p) for p in burrow.env.root.rglob(name)] == []
        assert [str(p) for p in venv.rglob(name)] == []

    def test_file_owned_by_another_distribution(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        index.add(DistSpec("clash", "1.0", files={"foo/__init__.py": b"CLASH = 1\n"}))
        _sync(burrow, index, venv, "foo==1.0")
        before = tree(venv)
        owned = site_packages(venv) / "foo" / "__init__.py"
        reqs = requirements(burrow.cwd / "r.txt", "foo==1.0", "clash==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert f"clash==1.0 would overwrite {owned}, which belongs to foo==1.0" in stderr
        assert f"nothing was changed in {venv}" in stderr
        assert tree(venv) == before
        stderr = burrow.fails("install", "clash==1.0", "-p", venv, "-i", index.simple_url)
        assert f"would overwrite {owned}" in stderr
        error = burrow.json_error("install", "clash==1.0", "-p", venv, "-i", index.simple_url)
        assert error["code"] == ErrorCode.INSTALL_CONFLICT
        assert tree(venv) == before

    def test_script_that_would_replace_the_interpreter(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        index.add(DistSpec("snake", "1.0", entry_points={"console_scripts": {"python": "x:y"}}))
        python = (venv / "bin" / "python").resolve()
        before = tree(venv)
        reqs = requirements(burrow.cwd / "r.txt", "snake==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert "snake-1.0-py3-none-any.whl" in stderr
        assert "would replace the environment's interpreter" in stderr
        assert tree(venv) == before
        assert (venv / "bin" / "python").resolve() == python

    def test_distribution_without_a_record(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        _sync(burrow, index, venv, "foo==1.0")
        unknown = site_packages(venv) / "unknown-1.0.dist-info"
        unknown.mkdir()
        (unknown / "METADATA").write_text("Metadata-Version: 2.1\nName: unknown\nVersion: 1.0\n")
        before = tree(venv)
        reqs = requirements(burrow.cwd / "r.txt", "foo==2.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert f"cannot uninstall unknown 1.0: {unknown} has no RECORD" in stderr
        assert tree(venv) == before
        # Nothing else was changed either: foo 1.0 is still the one installed.
        assert burrow.names(venv) == {"foo": "1.0", "unknown": "1.0"}


class TestNoDaemon:
    def test_same_result_without_a_daemon(
        self, fresh: Burrow, index: FakeIndex, tmp_path: Path
    ) -> None:
        venv = make_venv(tmp_path / "venv")
        reqs = requirements(tmp_path / "r.txt", "foo==1.0", "bar==1.0")
        out = fresh.ok("--no-daemon", "sync", reqs, "-p", venv, "-i", index.simple_url)
        assert fresh.env.pids() == []
        assert not fresh.env.socket.exists()
        in_process = tree(venv)
        assert fresh.ok("--no-daemon", "freeze", "-p", venv) == "bar==1.0\nfoo==1.0\n"
        fresh.ok("--no-daemon", "uninstall", "bar", "-p", venv)
        # In-process, the removed directories are deleted before the command exits.
        assert not (venv / TRASH_DIR).exists()
        assert not (site_packages(venv) / "bar").exists()
        assert fresh.env.pids() == []

        shutil.rmtree(venv)
        make_venv(venv)
        again = fresh.ok("sync", reqs, "-p", venv, "-i", index.simple_url)
        # The wheels are in the cache now: no "Prepared" line, the same changes.
        assert _plain(again) == _plain(out).split("\n", 1)[1]
        assert fresh.env.pids() != []
        assert tree(venv) == in_process


class TestSeeds:
    def test_kept_in_a_venv_burrowd_did_not_create(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        assert not re.search(r"^burrowd\s*=", (venv / "pyvenv.cfg").read_text(), re.MULTILINE)
        burrow.ok(
            "install", "pip", "setuptools", "wheel", "foo==1.0", "-p", venv, "-i", index.simple_url
        )
        out = _sync(burrow, index, venv, "baz==1.0")
        assert _plain(out).splitlines()[-2:] == [" + baz==1.0", " - foo==1.0"]
        assert burrow.names(venv) == {
            "baz": "1.0",
            "pip": "99.0",
            "setuptools": "99.0",
            "wheel": "99.0",
        }
        done = execute(venv / "bin" / "pip")
        assert done.stdout == "fake pip 99.0\n"

    def test_removed_from_a_venv_burrowd_created(
        self, burrow: Burrow, index: FakeIndex, tmp_path: Path
    ) -> None:
        venv = tmp_path / "made"
        out = burrow.ok("venv", venv)
        assert out.splitlines() == [
            f"Using Python {'.'.join(map(str, sys.version_info[:3]))}",
            f"Created a virtual environment at {venv}",
            f"Activate with: source {venv}/bin/activate",
        ]
        assert re.search(r"^burrowd = \S+$", (venv / "pyvenv.cfg").read_text(), re.MULTILINE)
        burrow.ok("install", "pip", "setuptools", "wheel", "-p", venv, "-i", index.simple_url)
        out = _sync(burrow, index, venv, "baz==1.0")
        assert _plain(out).splitlines()[-4:] == [
            " + baz==1.0",
            " - pip==99.0",
            " - setuptools==99.0",
            " - wheel==99.0",
        ]
        assert burrow.names(venv) == {"baz": "1.0"}
        assert not (venv / "bin" / "pip").exists()

    def test_venv_seed_clear_and_refusals(
        self, burrow: Burrow, index: FakeIndex, tmp_path: Path
    ) -> None:
        venv = tmp_path / "seeded"
        out = burrow.ok("venv", venv, "--seed", "-i", index.simple_url)
        seeds = ["pip"] if sys.version_info >= (3, 12) else ["pip", "setuptools", "wheel"]
        assert [line for line in out.splitlines() if line.startswith(" + ")] == [
            f" + {name}==99.0" for name in seeds
        ]
        assert burrow.names(venv) == dict.fromkeys(seeds, "99.0")
        for launcher in ("pip", "pip3", PYTHON_DIR.replace("python", "pip")):
            done = execute(venv / "bin" / launcher)
            assert done.stdout == "fake pip 99.0\n", launcher
        assert (venv / "bin" / "python").exists()

        stderr = burrow.fails("venv", venv)
        assert "already exists" in stderr
        assert "--clear" in stderr
        assert burrow.names(venv) == dict.fromkeys(seeds, "99.0")
        burrow.ok("venv", venv, "--clear")
        assert burrow.names(venv) == {}
        plain_dir = tmp_path / "plain"
        plain_dir.mkdir()
        (plain_dir / "keep.txt").write_text("mine\n")
        stderr = burrow.fails("venv", plain_dir, "--clear")
        assert "not a virtual environment" in stderr
        assert (plain_dir / "keep.txt").read_text() == "mine\n"


class TestInstall:
    def test_resolves_keeps_and_upgrades(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        opts = ("-p", venv, "-i", index.simple_url)
        out = burrow.ok("install", "foo==1.0", "baz", *opts)
        assert _plain(out) == (
            "Resolved 2 packages in <t>\n"
            "Prepared 2 packages in <t> (<size> downloaded)\n"
            "Installed 2 packages in <t>\n"
            " + baz==1.0\n"
            " + foo==1.0\n"
        )
        out = burrow.ok("install", "bar", *opts)
        assert _plain(out).splitlines()[0] == "Resolved 2 packages in <t>"
        assert _plain(out).splitlines()[-2:] == ["Installed 1 package in <t>", " + bar==1.0"]
        assert burrow.names(venv) == {"bar": "1.0", "baz": "1.0", "foo": "1.0"}
        out = burrow.ok("install", "bar", "-P", "foo", *opts)
        assert _plain(out).splitlines()[-2:] == [" - foo==1.0", " + foo==2.0"]
        burrow.ok("install", "foo==1.0", *opts)
        out = burrow.ok("install", "bar", "-U", *opts)
        assert _plain(out).splitlines()[-2:] == [" - foo==1.0", " + foo==2.0"]
        # install removes nothing: baz stays, though nobody asked for it this time.
        assert burrow.names(venv) == {"bar": "1.0", "baz": "1.0", "foo": "2.0"}
        out = burrow.ok("install", "bar", *opts)
        assert _plain(out) == "Resolved 2 packages in <t>\nAudited 2 packages in <t>\n"

    def test_install_from_a_requirements_file(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        reqs = requirements(burrow.cwd / "r.txt", "bar", "baz==1.0")
        result = burrow.json("install", "-r", reqs, "-p", venv, "-i", index.simple_url)
        assert result["resolved"] == 3
        assert sorted((c["name"], c["version"]) for c in result["installed"]) == [
            ("bar", "1.0"),
            ("baz", "1.0"),
            ("foo", "2.0"),
        ]
        listing = burrow.json("list", "-p", venv)
        requested = {p["name"]: p["requested"] for p in listing["packages"]}
        assert requested == {"bar": True, "baz": True, "foo": False}

    def test_dry_run(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        burrow.ok("install", "foo==1.0", "-p", venv, "-i", index.simple_url)
        before = tree(venv)
        out = burrow.ok("install", "bar", "-U", "--dry-run", "-p", venv, "-i", index.simple_url)
        assert _plain(out) == (
            "Resolved 2 packages in <t>\n"
            "Would uninstall 1 package\n"
            "Would install 2 packages\n"
            " + bar==1.0\n"
            " - foo==1.0\n"
            " + foo==2.0\n"
        )
        assert tree(venv) == before


class TestUninstall:
    def test_uninstall(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        baseline = tree(venv)
        _sync(burrow, index, venv, "foo==1.0", "bar==1.0", "baz==1.0")
        before = tree(venv)
        out = burrow.ok("uninstall", "--dry-run", "Foo", "-p", venv)
        assert out == "Would uninstall 1 package\n - foo==1.0\n"
        assert tree(venv) == before
        done = burrow.run("uninstall", "foo", "nothere", "-p", venv)
        assert done.returncode == 0
        assert _plain(done.stdout) == "Uninstalled 1 package in <t>\n - foo==1.0\n"
        assert done.stderr == "warning: Skipping nothere as it is not installed\n"
        assert not (venv / "bin" / "foo-cli").exists()
        assert not (site_packages(venv) / "foo").exists()
        assert burrow.names(venv) == {"bar": "1.0", "baz": "1.0"}

        done = burrow.run("uninstall", "nothere", "-p", venv)
        assert done.returncode == 0
        assert "warning: Skipping nothere as it is not installed\n" in done.stderr
        assert "Traceback" not in done.stderr

        names = requirements(burrow.cwd / "names.txt", "# what to remove", "bar==1.0", "baz")
        result = burrow.json("uninstall", "-r", names, "-p", venv)
        assert sorted((c["name"], c["version"]) for c in result["removed"]) == [
            ("bar", "1.0"),
            ("baz", "1.0"),
        ]
        assert tree(venv) == baseline

    def test_leaves_what_it_does_not_own(
        self, burrow: Burrow, index: FakeIndex, venv: Path
    ) -> None:
        index.add_many(
            [
                DistSpec("ns-one", "1.0", files={"nspkg/one/__init__.py": b"ONE = 1\n"}),
                DistSpec("ns-two", "1.0", files={"nspkg/two/__init__.py": b"TWO = 2\n"}),
            ]
        )
        _sync(burrow, index, venv, "foo==1.0", "ns-one==1.0", "ns-two==1.0")
        site = site_packages(venv)
        notes = site / "foo" / "notes.txt"
        notes.write_text("mine\n")
        burrow.ok("uninstall", "foo", "ns-one", "-p", venv)
        snapshot = tree(venv)
        assert notes.read_text() == "mine\n"
        assert sorted(p for p in snapshot if p.startswith(f"lib/{PYTHON_DIR}/")) == [
            f"lib/{PYTHON_DIR}/",
            f"lib/{PYTHON_DIR}/site-packages/",
            f"lib/{PYTHON_DIR}/site-packages/foo/",
            f"lib/{PYTHON_DIR}/site-packages/foo/notes.txt",
            f"lib/{PYTHON_DIR}/site-packages/ns_two-1.0.dist-info/",
            *(
                f"lib/{PYTHON_DIR}/site-packages/ns_two-1.0.dist-info/{name}"
                for name in ("INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL")
            ),
            f"lib/{PYTHON_DIR}/site-packages/nspkg/",
            f"lib/{PYTHON_DIR}/site-packages/nspkg/two/",
            f"lib/{PYTHON_DIR}/site-packages/nspkg/two/__init__.py",
        ]
        done = execute(venv / "bin" / "python", "-c", "import nspkg.two; print(nspkg.two.TWO)")
        assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr

    def test_refusals(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        _sync(burrow, index, venv, "foo==1.0", "baz==1.0")
        before = tree(venv)
        stderr = burrow.fails("uninstall", "-p", venv)
        assert "name the packages" in stderr
        # Not requirements, so not names: nothing is removed (pip and uv refuse them too).
        for text in ("foo$", "foo baz", "foo; nonsense"):
            stderr = burrow.fails("uninstall", text, "-p", venv)
            assert repr(text) in stderr
            assert tree(venv) == before, text

    def test_names_from_standard_input(self, burrow: Burrow, index: FakeIndex, venv: Path) -> None:
        baseline = tree(venv)
        _sync(burrow, index, venv, "foo==1.0", "bar==1.0", "baz==1.0")
        done = subprocess.run(
            burrow.command("uninstall", "-r", "-", "-p", venv),
            env=burrow.environ(),
            cwd=burrow.cwd,
            input="# what to remove\nfoo==1.0\nbar\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert _plain(done.stdout) == "Uninstalled 2 packages in <t>\n - bar==1.0\n - foo==1.0\n"
        assert burrow.names(venv) == {"baz": "1.0"}
        # Standard input and a named file together.
        names = requirements(burrow.cwd / "names.txt", "baz")
        _sync(burrow, index, venv, "foo==1.0", "baz==1.0")
        done = subprocess.run(
            burrow.command("uninstall", "-r", names, "-r", "-", "-p", venv),
            env=burrow.environ(),
            cwd=burrow.cwd,
            input="foo\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert burrow.names(venv) == {}
        assert tree(venv) == baseline
