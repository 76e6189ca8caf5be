"""Runtime paths: the stdlib mirror of platformdirs agrees with platformdirs itself."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs
import pytest

from burrowd.protocol import paths

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the XDG rules are Linux's")

_XDG = ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_STATE_HOME")
_OURS = ("BURROW_SOCKET", "BURROW_CACHE_DIR", "BURROW_LOG_FILE")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Give the test a clean environment: a fresh HOME and no XDG or BURROW variables."""
    for name in (*_XDG, *_OURS, "TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", os.fspath(home))
    return home


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _platformdirs(getter: Callable[[str], str]) -> Path:
    """Call a platformdirs getter, silencing its warning about a fallback runtime dir."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
        return Path(getter("burrowd"))


class TestAgreesWithPlatformdirs:
    @pytest.mark.parametrize(
        "xdg",
        [
            pytest.param(None, id="unset"),
            pytest.param("", id="empty"),
            pytest.param("{tmp}/xdg", id="absolute"),
            pytest.param("relative/dir", id="relative-ignored"),
        ],
    )
    def test_cache_and_state_dirs(
        self, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str | None
    ) -> None:
        if xdg is not None:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg.format(tmp=tmp_path) + "-cache")
            monkeypatch.setenv("XDG_STATE_HOME", xdg.format(tmp=tmp_path) + "-state")
        assert Path(paths.cache_dir()) == _platformdirs(platformdirs.user_cache_dir)
        assert Path(paths.state_dir()) == _platformdirs(platformdirs.user_state_dir)
        assert Path(paths.log_file()).parent == _platformdirs(platformdirs.user_log_dir)
        assert Path(paths.log_file()).name == "burrowd.log"

    def test_default_cache_dir_is_under_home(self, home: Path) -> None:
        assert Path(paths.cache_dir()) == home / ".cache" / "burrowd"
        assert Path(paths.state_dir()) == home / ".local" / "state" / "burrowd"

    @pytest.mark.parametrize(
        "mode",
        [
            pytest.param(0o700, id="private"),
            pytest.param(0o755, id="readable-by-others"),
            pytest.param(0o711, id="searchable-by-others"),
            pytest.param(0o500, id="not-0700"),
        ],
    )
    def test_runtime_dir(
        self, home: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: int
    ) -> None:
        runtime = short_dir / "xdg-run"
        runtime.mkdir()
        runtime.chmod(mode)
        monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(runtime))
        expected = _platformdirs(platformdirs.user_runtime_dir)
        assert Path(paths.runtime_dir()) == expected
        if mode == 0o700:
            assert expected == runtime / "burrowd"
            assert Path(paths.socket_path()) == runtime / "burrowd" / "burrowd.sock"
        else:
            assert not Path(paths.runtime_dir()).is_relative_to(runtime)

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param("symlink", id="symlink-to-private-dir"),
            pytest.param("relative", id="relative"),
            pytest.param("unset", id="unset"),
        ],
    )
    def test_runtime_dir_fallbacks(
        self, home: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch, make: str
    ) -> None:
        private = short_dir / "private"
        private.mkdir(mode=0o700)
        if make == "symlink":
            (short_dir / "link").symlink_to(private)
            monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir / "link"))
        elif make == "relative":
            monkeypatch.setenv("XDG_RUNTIME_DIR", "run/user")
        assert Path(paths.runtime_dir()) == _platformdirs(platformdirs.user_runtime_dir)

    def test_missing_runtime_dir_falls_back(
        self, home: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A deliberate difference: platformdirs takes a missing XDG_RUNTIME_DIR as it is (it
        # could create it); burrowd falls back, as for an unset one, since a stale variable
        # (a tmux session outliving its login) names a dir under /run/user it cannot create.
        fallback = Path(paths.runtime_dir())
        monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir / "missing"))
        assert Path(paths.runtime_dir()) == fallback

    def test_runtime_dir_of_another_user(
        self, home: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if os.geteuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        runtime = short_dir / "theirs"
        runtime.mkdir(mode=0o700)
        os.chown(runtime, 65534, 65534)
        monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(runtime))
        assert Path(paths.runtime_dir()) == _platformdirs(platformdirs.user_runtime_dir)
        assert not Path(paths.runtime_dir()).is_relative_to(runtime)


class TestOverrides:
    def test_environment_overrides(self, tmp_path: Path) -> None:
        env = {
            "BURROW_SOCKET": "/tmp/b/s.sock",
            "BURROW_CACHE_DIR": os.fspath(tmp_path / "c"),
            "BURROW_LOG_FILE": os.fspath(tmp_path / "l" / "d.log"),
        }
        assert Path(paths.socket_path(env)) == Path("/tmp/b/s.sock")
        assert Path(paths.lock_path(Path(paths.socket_path(env)))) == Path("/tmp/b/s.lock")
        assert Path(paths.cache_dir(env)) == tmp_path / "c"
        assert Path(paths.log_file(env)) == tmp_path / "l" / "d.log"

    def test_relative_and_home_relative_overrides(self, home: Path) -> None:
        env = {"BURROW_SOCKET": "s.sock", "BURROW_CACHE_DIR": "~/c", "BURROW_LOG_FILE": "~/l"}
        assert Path(paths.socket_path(env)) == Path.cwd() / "s.sock"
        assert Path(paths.cache_dir(env)) == home / "c"
        assert Path(paths.log_file(env)) == home / "l"

    def test_an_explicit_mapping_ignores_os_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BURROW_CACHE_DIR", "/elsewhere")
        assert Path(paths.cache_dir({"XDG_CACHE_HOME": "/xdg"})) == Path("/xdg/burrowd")

    def test_default_lock_is_burrowd_lock(self) -> None:
        sock = Path("/run/user/1000/burrowd/burrowd.sock")
        assert Path(paths.lock_path(sock)) == Path("/run/user/1000/burrowd/burrowd.lock")


class TestSocketPathLength:
    @pytest.mark.parametrize(
        ("length", "fits"),
        [
            pytest.param(paths.SOCKET_PATH_MAX, True, id="107-bytes"),
            pytest.param(paths.SOCKET_PATH_MAX + 1, False, id="108-bytes"),
            pytest.param(300, False, id="300-bytes"),
        ],
    )
    def test_limit(self, length: int, fits: bool) -> None:
        path = "/tmp/" + "s" * (length - len("/tmp/"))
        assert len(path) == length
        env = {"BURROW_SOCKET": path}
        if fits:
            assert Path(paths.socket_path(env)) == Path(path)
        else:
            with pytest.raises(paths.SocketPathError) as caught:
                Path(paths.socket_path(env))
            message = str(caught.value)
            assert f"is {length} bytes long" in message
            assert "Set BURROW_SOCKET to a shorter path" in message
            assert isinstance(caught.value, ValueError)

    def test_non_ascii_counts_in_bytes(self) -> None:
        path = "/tmp/" + "é" * 52  # 5 + 104 bytes
        with pytest.raises(paths.SocketPathError, match="109 bytes"):
            Path(paths.socket_path({"BURROW_SOCKET": path}))

    def test_a_long_runtime_dir(self, short_dir: Path) -> None:
        deep = short_dir / ("d" * 100)
        deep.mkdir(mode=0o700)
        with pytest.raises(paths.SocketPathError):
            Path(paths.socket_path({"XDG_RUNTIME_DIR": os.fspath(deep)}))
