"""Tests of the test infrastructure: built distributions are real, the fake index is honest.

Where it matters, a real client is the judge: pip installs the wheels, builds the sdists and
downloads from both the HTTP index and the ``file://`` tree.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import email.parser
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from yarl import URL

from tests.support.dists import (
    ABSOLUTE_MEMBER,
    ZIP_SLIP_MEMBER,
    Breakage,
    DistCache,
    DistSpec,
    build_sdist,
    build_wheel,
    read_metadata,
    read_record,
    record_problems,
    sdist_filename,
    wheel_filename,
    write_source_tree,
)
from tests.support.index import (
    JSON_V1,
    FakeIndex,
    ThreadedServer,
    negotiate,
    parse_range,
    write_file_index,
)
from tests.support.plugin import DistFactory

PAGE_JSON = {"Accept": JSON_V1}
PIP_ACCEPT = f"{JSON_V1}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


# --- helpers -----------------------------------------------------------------------------------


def pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip offline-minded: no config files, no env settings, no cache."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PIP_") and "proxy" not in k.lower()
    }
    # pip's config on these machines adds extra indexes and find-links: ignore all of it.
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", NO_PROXY="*")
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-input"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


class Anchors(HTMLParser):
    """Collect ``<a>`` tags: their (unescaped) attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: tuple[dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = (dict(attrs), [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open[0], "".join(self._open[1])))
            self._open = None


def parse_anchors(page: str) -> dict[str, dict[str, str | None]]:
    """Return each anchor's attributes keyed by its text."""
    parser = Anchors()
    parser.feed(page)
    parser.close()
    return {text: attrs for attrs, text in parser.anchors}


def urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def metadata_of(blob: bytes) -> Message:
    return email.parser.BytesParser().parsebytes(blob)


def fetch(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """GET with urllib from a sync test: status, headers, body (errors are answers too)."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """Return an aiohttp client session for the test (not following redirects by default)."""
    async with aiohttp.ClientSession() as session:
        yield session


RICH_SPEC = DistSpec(
    "Rich.Pkg-Name",
    "1.0.0-rc1",
    requires_dist=["attrs>=1", 'idna; extra == "net"', 'six; python_version >= "3"'],
    requires_python=">=3.8",
    summary="A test package",
    entry_points={"console_scripts": {"rich-tool": "rich_pkg_name.cli:main"}},
    files={
        "rich_pkg_name/__init__.py": b"__version__ = '1.0.0rc1'\n",
        "rich_pkg_name/cli.py": b"def main() -> None:\n    print('rich tool ran')\n",
        "rich_pkg_name/data.bin": bytes(range(256)),
    },
    data={"scripts/rich-script": b"#!python\nprint('script ran')\n"},
    extra_metadata=["Project-URL: Home, https://example.invalid"],
)


# --- wheels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "tag", "expected"),
    [
        ("foo", "1.0", "py3-none-any", "foo-1.0-py3-none-any.whl"),
        ("Foo.Bar-baz", "1.0", "py3-none-any", "foo_bar_baz-1.0-py3-none-any.whl"),
        ("a__b--c", "2.0.0-rc1", "py3-none-any", "a_b_c-2.0.0rc1-py3-none-any.whl"),
        ("x", "1.0+local.1", "py2.py3-none-any", "x-1.0+local.1-py2.py3-none-any.whl"),
        (
            "np",
            "1",
            "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "np-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        ),
    ],
)
def test_wheel_filename_is_normalized(name: str, version: str, tag: str, expected: str) -> None:
    assert wheel_filename(DistSpec(name, version, tag=tag)) == expected


def test_sdist_filename_is_normalized() -> None:
    assert sdist_filename(DistSpec("Foo.Bar-baz", "1.0.0-rc1")) == "foo_bar_baz-1.0.0rc1.tar.gz"


def test_wheel_passes_zipfile_test_and_record_verifies(tmp_path: Path) -> None:
    wheel = build_wheel(RICH_SPEC, tmp_path)
    subprocess.run([sys.executable, "-m", "zipfile", "-t", str(wheel)], check=True, timeout=60)

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = "rich_pkg_name-1.0.0rc1.dist-info"
        assert f"{dist_info}/METADATA" in names
        assert f"{dist_info}/WHEEL" in names
        assert f"{dist_info}/entry_points.txt" in names
        assert "rich_pkg_name-1.0.0rc1.data/scripts/rich-script" in names
        rows = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
        # Checked here by hand rather than with record_problems: the helper is under test too.
        for path, digest, size in rows:
            if path == f"{dist_info}/RECORD":
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            assert digest == f"sha256={urlsafe_sha256(data)}"
            assert "=" not in digest.removeprefix("sha256=")
            assert size == str(len(data))
        assert sorted(row[0] for row in rows) == sorted(names)
    assert record_problems(wheel) == []
    assert read_record(wheel) == [tuple(row) for row in rows]


def test_metadata_wheel_and_entry_points(tmp_path: Path) -> None:
    wheel = build_wheel(RICH_SPEC, tmp_path)
    meta = read_metadata(wheel)
    assert meta["Metadata-Version"] == "2.1"
    assert meta["Name"] == "Rich.Pkg-Name"
    assert meta["Version"] == "1.0.0-rc1"
    assert meta["Summary"] == "A test package"
    assert meta["Requires-Python"] == ">=3.8"
    assert meta.get_all("Requires-Dist") == RICH_SPEC.requires_dist
    assert meta.get_all("Provides-Extra") == ["net"]  # derived from the marker
    assert meta["Project-URL"] == "Home, https://example.invalid"
    with zipfile.ZipFile(wheel) as zf:
        wheel_file = zf.read("rich_pkg_name-1.0.0rc1.dist-info/WHEEL").decode()
        entry_points = zf.read("rich_pkg_name-1.0.0rc1.dist-info/entry_points.txt").decode()
    assert "Root-Is-Purelib: true" in wheel_file
    assert "Tag: py3-none-any" in wheel_file
    assert entry_points == "[console_scripts]\nrich-tool = rich_pkg_name.cli:main\n"


def test_compressed_tags_expand_in_wheel_file(tmp_path: Path) -> None:
    spec = DistSpec("np", "1", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    with zipfile.ZipFile(build_wheel(spec, tmp_path)) as zf:
        lines = zf.read("np-1.dist-info/WHEEL").decode().splitlines()
    assert "Root-Is-Purelib: false" in lines
    assert [line for line in lines if line.startswith("Tag:")] == [
        "Tag: cp311-cp311-manylinux_2_17_x86_64",
        "Tag: cp311-cp311-manylinux2014_x86_64",
    ]


def test_builds_are_reproducible(tmp_path: Path) -> None:
    first = build_wheel(RICH_SPEC, tmp_path / "a").read_bytes()
    second = build_wheel(RICH_SPEC, tmp_path / "b").read_bytes()
    assert first == second
    assert (
        build_sdist(RICH_SPEC, tmp_path / "a").read_bytes()
        == build_sdist(RICH_SPEC, tmp_path / "b").read_bytes()
    )


def test_pip_installs_wheels_with_namespace_packages_and_scripts(tmp_path: Path) -> None:
    wheels = [
        build_wheel(RICH_SPEC, tmp_path / "w"),
        build_wheel(DistSpec("ns-a", "1", files={"ns/a/__init__.py": b"A = 1\n"}), tmp_path / "w"),
        build_wheel(DistSpec("ns-b", "2", files={"ns/b/__init__.py": b"B = 2\n"}), tmp_path / "w"),
    ]
    target = tmp_path / "target"
    pip(
        "install",
        "--no-deps",
        "--no-index",
        "--no-cache-dir",
        "--target",
        str(target),
        *map(str, wheels),
    )

    assert (target / "bin" / "rich-tool").exists()
    assert (target / "bin" / "rich-script").exists()
    assert not (target / "ns" / "__init__.py").exists()
    meta = metadata_of((target / "rich_pkg_name-1.0.0rc1.dist-info" / "METADATA").read_bytes())
    assert meta.get_all("Requires-Dist") == RICH_SPEC.requires_dist
    code = (
        "import ns.a, ns.b, rich_pkg_name, rich_pkg_name.cli, importlib.resources as r;"
        "print(ns.a.A + ns.b.B, rich_pkg_name.__version__,"
        " len(r.files('rich_pkg_name').joinpath('data.bin').read_bytes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["3", "1.0.0rc1", "256"]


# --- broken wheels -----------------------------------------------------------------------------

SIMPLE = DistSpec("victim", "1.0")
FIRST_FILE = "victim/__init__.py"
DIST_INFO = "victim-1.0.dist-info"


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_breakage_record_wrong_hash(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.RECORD_WRONG_HASH)
    rows = {path: (digest, size) for path, digest, size in read_record(wheel)}
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(FIRST_FILE)
    assert rows[FIRST_FILE][0] != f"sha256={urlsafe_sha256(data)}"
    assert rows[FIRST_FILE][1] == str(len(data))
    assert len(record_problems(wheel)) == 1


def test_breakage_record_missing_entry(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.RECORD_MISSING_ENTRY)
    assert FIRST_FILE in _names(wheel)
    assert FIRST_FILE not in {path for path, _, _ in read_record(wheel)}
    assert record_problems(wheel) == [f"{FIRST_FILE}: in the wheel but not in RECORD"]


def test_breakage_record_missing(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.RECORD_MISSING)
    assert not [name for name in _names(wheel) if name.endswith("/RECORD")]
    with pytest.raises(FileNotFoundError):
        read_record(wheel)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_breakage_truncated(tmp_path: Path, fraction: float) -> None:
    whole = build_wheel(SIMPLE, tmp_path / "whole").read_bytes()
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.TRUNCATED, truncate_at=fraction)
    cut = wheel.read_bytes()
    assert cut == whole[: int(len(whole) * fraction)]
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(wheel)
    result = subprocess.run(
        [sys.executable, "-m", "zipfile", "-t", str(wheel)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("breakage", "member"),
    [(Breakage.ZIP_SLIP, ZIP_SLIP_MEMBER), (Breakage.ABSOLUTE_PATH, ABSOLUTE_MEMBER)],
)
def test_breakage_escaping_members(tmp_path: Path, breakage: Breakage, member: str) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=breakage)
    assert member in _names(wheel)
    assert member.startswith(("../", "/"))
    # Only the path is wrong: the RECORD is consistent, so a checker must look at paths.
    assert record_problems(wheel) == []


def test_breakage_metadata_missing(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.METADATA_MISSING)
    assert f"{DIST_INFO}/METADATA" not in _names(wheel)
    assert f"{DIST_INFO}/WHEEL" in _names(wheel)
    assert record_problems(wheel) == []
    with pytest.raises(FileNotFoundError):
        read_metadata(wheel)


def test_breakage_metadata_mismatch(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.METADATA_MISMATCH)
    assert wheel.name == "victim-1.0-py3-none-any.whl"
    meta = read_metadata(wheel)
    assert (meta["Name"], meta["Version"]) != ("victim", "1.0")
    assert meta["Name"] != "victim"
    assert meta["Version"] != "1.0"
    assert record_problems(wheel) == []


def test_breakage_dist_info_mismatch(tmp_path: Path) -> None:
    wheel = build_wheel(SIMPLE, tmp_path, broken=Breakage.DIST_INFO_MISMATCH)
    dirs = {name.split("/")[0] for name in _names(wheel) if ".dist-info/" in name}
    assert len(dirs) == 1
    assert dirs != {DIST_INFO}
    assert read_metadata(wheel)["Name"] == "victim"
    assert record_problems(wheel) == []


def test_every_breakage_differs_from_the_good_wheel(tmp_path: Path) -> None:
    good = build_wheel(SIMPLE, tmp_path / "good").read_bytes()
    for breakage in Breakage:
        assert build_wheel(SIMPLE, tmp_path / breakage.value, broken=breakage).read_bytes() != good


# --- sdists and the in-tree backend ------------------------------------------------------------


def _sdist_files(sdist: Path) -> dict[str, bytes]:
    with tarfile.open(sdist) as tf:
        out = {}
        for member in tf.getmembers():
            extracted = tf.extractfile(member)
            assert extracted is not None
            out[member.name] = extracted.read()
        return out


@pytest.mark.parametrize("backend", ["in-tree", "setuptools-legacy", "setup.py"])
def test_sdist_layout(tmp_path: Path, backend: Any) -> None:
    sdist = build_sdist(RICH_SPEC, tmp_path, backend=backend)
    files = _sdist_files(sdist)
    stem = "rich_pkg_name-1.0.0rc1"
    assert all(name.startswith(stem + "/") for name in files)
    pkg_info = metadata_of(files[f"{stem}/PKG-INFO"])
    assert pkg_info["Metadata-Version"] == "2.2"
    assert pkg_info.get_all("Dynamic") is None
    assert pkg_info.get_all("Requires-Dist") == RICH_SPEC.requires_dist
    assert files[f"{stem}/rich_pkg_name/data.bin"] == bytes(range(256))
    pyproject = files.get(f"{stem}/pyproject.toml")
    if backend == "in-tree":
        assert pyproject is not None
        assert b'build-backend = "burrow_test_backend"' in pyproject
        assert b'backend-path = ["_burrow_backend"]' in pyproject
        assert f"{stem}/_burrow_backend/burrow_test_backend.py" in files
    elif backend == "setuptools-legacy":
        assert pyproject == b'[build-system]\nrequires = ["setuptools"]\n'
        assert f"{stem}/setup.py" in files
    else:
        assert pyproject is None
        assert f"{stem}/setup.py" in files


@pytest.mark.parametrize(
    ("backend", "version", "dynamic"),
    [
        ("in-tree", "2.2", ["Requires-Dist", "Provides-Extra"]),
        ("setuptools-legacy", "2.1", None),
        ("setup.py", "2.1", None),
    ],
)
def test_sdist_without_static_metadata(
    tmp_path: Path, backend: Any, version: str, dynamic: list[str] | None
) -> None:
    sdist = build_sdist(RICH_SPEC, tmp_path, backend=backend, static_metadata=False)
    pkg_info = metadata_of(_sdist_files(sdist)["rich_pkg_name-1.0.0rc1/PKG-INFO"])
    assert pkg_info["Metadata-Version"] == version
    assert pkg_info.get_all("Dynamic") == dynamic
    assert pkg_info.get_all("Requires-Dist") is None
    assert pkg_info["Requires-Python"] == ">=3.8"


def _load_backend(tree: Path) -> ModuleType:
    path = tree / "_burrow_backend" / "burrow_test_backend.py"
    spec = importlib.util.spec_from_file_location("_extracted_backend", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_tree_backend_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = write_source_tree(RICH_SPEC, tmp_path / "src")
    backend = _load_backend(tree)
    monkeypatch.chdir(tree)
    assert backend.get_requires_for_build_wheel() == []
    assert backend.get_requires_for_build_sdist() == []

    metadata_dir = tmp_path / "meta"
    dist_info = backend.prepare_metadata_for_build_wheel(str(metadata_dir))
    assert dist_info == "rich_pkg_name-1.0.0rc1.dist-info"
    direct = build_wheel(RICH_SPEC, tmp_path / "direct")
    with zipfile.ZipFile(direct) as zf:
        assert (metadata_dir / dist_info / "METADATA").read_bytes() == zf.read(
            f"{dist_info}/METADATA"
        )

    # The backend builds exactly what build_wheel builds: same members, same bytes.
    (tmp_path / "out").mkdir()
    built = backend.build_wheel(str(tmp_path / "out"))
    assert built == direct.name
    assert (tmp_path / "out" / built).read_bytes() == direct.read_bytes()

    sdist = backend.build_sdist(str(tmp_path / "out"))
    assert sdist == "rich_pkg_name-1.0.0rc1.tar.gz"
    repacked = _sdist_files(tmp_path / "out" / sdist)
    original = _sdist_files(build_sdist(RICH_SPEC, tmp_path / "sdist"))
    assert repacked == original

    editable = backend.build_editable(str(tmp_path / "out"))
    with zipfile.ZipFile(tmp_path / "out" / editable) as zf:
        pth = zf.read("__editable__.rich_pkg_name.pth").decode().strip()
    assert Path(pth) == tree


def test_pip_builds_in_tree_sdist_offline(tmp_path: Path) -> None:
    sdist = build_sdist(RICH_SPEC, tmp_path / "sdist", static_metadata=False)
    out = tmp_path / "out"
    # Build isolation on and no index: works only because the backend needs nothing.
    pip("wheel", "--no-deps", "--no-index", "--no-cache-dir", "-w", str(out), str(sdist))
    (wheel,) = out.glob("*.whl")
    assert wheel.read_bytes() == build_wheel(RICH_SPEC, tmp_path / "direct").read_bytes()


def _setuptools_wheels() -> Path | None:
    # Building with setuptools offline needs a setuptools wheel with bdist_wheel built in.
    candidates: list[Path] = []
    for folder in (Path("/opt/pypi/files"), Path("/opt/wheels")):
        candidates.extend(folder.glob("setuptools-*-py3-none-any.whl"))
    good = []
    for path in candidates:
        version = path.name.split("-")[1]
        try:
            major, minor = (int(p) for p in version.split(".")[:2])
        except ValueError:
            continue
        if (major, minor) >= (70, 1):
            good.append(((major, minor), path))
    return max(good)[1] if good else None


def _meaning(line: str) -> tuple[str, str, tuple[bool, ...]]:
    req = Requirement(line)
    extras = ("", "net", "fancy")
    applies = tuple(req.marker is None or req.marker.evaluate({"extra": e}) for e in extras)
    return (req.name, str(req.specifier), applies)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["setuptools-legacy", "setup.py"])
def test_pip_builds_legacy_sdists(tmp_path: Path, backend: Any) -> None:
    setuptools = _setuptools_wheels()
    if setuptools is None:
        pytest.skip("no setuptools>=70.1 wheel on this machine's disk to build offline with")
    links = tmp_path / "links"
    links.mkdir()
    (links / setuptools.name).symlink_to(setuptools)
    spec = DistSpec(
        "Legacy.Pkg",
        "2.0",
        requires_dist=[
            "attrs>=1",
            'six; python_version >= "3"',
            'idna; extra == "net"',
            'rich; extra == "fancy" and sys_platform == "linux"',
        ],
        requires_python=">=3.8",
        files={"legacy_pkg/__init__.py": b"X = 1\n", "ns/sub/__init__.py": b"", "top.py": b""},
        entry_points={"console_scripts": {"legacy": "legacy_pkg:main"}},
    )
    sdist = build_sdist(spec, tmp_path / "sdist", backend=backend, static_metadata=False)
    out = tmp_path / "out"
    pip(
        "wheel",
        "--no-deps",
        "--no-index",
        "--no-cache-dir",
        "--find-links",
        str(links),
        "-w",
        str(out),
        str(sdist),
    )
    (wheel,) = out.glob("*.whl")
    meta = read_metadata(wheel)
    assert meta["Name"] == "Legacy.Pkg"
    assert meta["Requires-Python"] == ">=3.8"
    # setuptools may reorder marker clauses: compare what the requirements mean.
    assert {_meaning(r) for r in meta.get_all("Requires-Dist") or []} == {
        _meaning(r) for r in spec.requires_dist
    }
    assert set(meta.get_all("Provides-Extra") or []) == {"net", "fancy"}
    assert {"legacy_pkg/__init__.py", "ns/sub/__init__.py", "top.py"} <= set(_names(wheel))


# --- caching and the factory -------------------------------------------------------------------


def test_dist_cache_builds_once(tmp_path: Path) -> None:
    cache = DistCache(tmp_path / "cache")
    first = cache.wheel(DistSpec("c", "1"))
    assert cache.wheel(DistSpec("c", "1")) == first
    assert cache.builds == 1
    assert cache.wheel(DistSpec("c", "1", requires_dist=["x"])) != first
    assert cache.wheel(DistSpec("c", "1"), broken=Breakage.RECORD_MISSING) != first
    assert cache.builds == 3


def test_dist_factory(dist_factory: DistFactory) -> None:
    wheel = dist_factory.wheel("fact", "1.0", requires_dist=["dep"])
    assert wheel.parent == dist_factory.dest
    assert read_metadata(wheel).get_all("Requires-Dist") == ["dep"]
    # The file is the test's own copy: changing it leaves the cache alone.
    wheel.write_bytes(b"clobbered")
    assert record_problems(dist_factory.wheel("fact", "1.0", requires_dist=["dep"])) == []
    sdist = dist_factory.sdist(DistSpec("fact", "1.0"), backend="setup.py")
    assert sdist.name == "fact-1.0.tar.gz"
    tree = dist_factory.source_tree("fact", "1.0")
    assert (tree / "pyproject.toml").exists()
    with pytest.raises(TypeError):
        dist_factory.wheel("fact")


def test_building_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    for i in range(100):
        build_wheel(DistSpec("speed", f"1.{i}", requires_dist=["a", "b"]), tmp_path)
    # The suite builds thousands: a wheel must stay well under 10 ms (generous for CI noise).
    assert (time.perf_counter() - start) / 100 < 0.010


# --- the index: negotiation and ranges, as pure functions --------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "html"),
        ("", "html"),
        ("*/*", "html"),
        ("text/html", "html"),
        (JSON_V1, "json"),
        ("application/vnd.pypi.simple.latest+json", "json"),
        (PIP_ACCEPT, "json"),
        (f"{JSON_V1};q=0.1, text/html", "html"),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+html", "html-v1"),
        (f"{JSON_V1};q=0, text/html;q=0.1", "html"),
        (f"{JSON_V1};q=0", "html"),
        ("application/*", "json"),
        ("image/png", "html"),
        (f"*/*;q=0.1, {JSON_V1}", "json"),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


@given(size=st.integers(1, 300), a=st.integers(0, 400), b=st.integers(0, 400))
def test_parse_range_matches_slicing(size: int, a: int, b: int) -> None:
    data = bytes(range(256)) * 2
    data = data[:size]
    span = parse_range(f"bytes={a}-{b}", size)
    if b < a:
        assert span is None
    elif a >= size:
        assert span == "unsatisfiable"
    else:
        assert isinstance(span, tuple)
        assert data[span[0] : span[1] + 1] == data[a : b + 1]
    suffix = parse_range(f"bytes=-{b}", size)
    if b == 0:
        assert suffix == "unsatisfiable"
    else:
        assert isinstance(suffix, tuple)
        assert data[suffix[0] : suffix[1] + 1] == data[-b:]
    open_ended = parse_range(f"bytes={a}-", size)
    assert open_ended == ("unsatisfiable" if a >= size else (a, size - 1))


def test_parse_range_ignores_what_it_does_not_do() -> None:
    assert parse_range("bytes=0-1,4-5", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=-", 10) is None


# --- the index over HTTP -----------------------------------------------------------------------


def _add_sample(index: FakeIndex) -> None:
    index.add(
        DistSpec("Sample.Pkg", "1.0", requires_python=">=3.8"),
        sdist=True,
        upload_time=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    index.add(DistSpec("Sample.Pkg", "2.0", requires_python="<4,>=3.9"), yanked="broken build")
    index.add(DistSpec("Sample.Pkg", "3.0"), yanked=True, metadata_file=False)
    index.add(DistSpec("other", "1.0"))


async def test_project_page_json(fake_index_async: FakeIndex, http: aiohttp.ClientSession) -> None:
    index = fake_index_async
    _add_sample(index)
    async with http.get(index.simple_url + "/sample-pkg/", headers=PAGE_JSON) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == JSON_V1
        page = json.loads(await resp.read())
    assert page["meta"]["api-version"] == "1.1"
    assert page["name"] == "sample-pkg"
    assert page["versions"] == ["1.0", "2.0", "3.0"]
    files = {f["filename"]: f for f in page["files"]}
    assert sorted(files) == [
        "sample_pkg-1.0-py3-none-any.whl",
        "sample_pkg-1.0.tar.gz",
        "sample_pkg-2.0-py3-none-any.whl",
        "sample_pkg-3.0-py3-none-any.whl",
    ]
    first = files["sample_pkg-1.0-py3-none-any.whl"]
    assert first["url"] == f"{index.url}/files/sample_pkg-1.0-py3-none-any.whl"
    assert first["url"].startswith("http://127.0.0.1:")
    assert first["requires-python"] == ">=3.8"
    assert first["yanked"] is False
    assert first["upload-time"] == "2024-01-02T03:04:05.678901Z"
    async with http.get(first["url"]) as resp:
        blob = await resp.read()
    assert first["hashes"] == {"sha256": hashlib.sha256(blob).hexdigest()}
    assert first["size"] == len(blob)
    async with http.get(first["url"] + ".metadata") as resp:
        assert resp.status == 200
        metadata = await resp.read()
    assert first["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert first["data-dist-info-metadata"] == first["core-metadata"]
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.read("sample_pkg-1.0.dist-info/METADATA") == metadata

    assert files["sample_pkg-1.0.tar.gz"]["core-metadata"] is False
    assert files["sample_pkg-2.0-py3-none-any.whl"]["yanked"] == "broken build"
    assert files["sample_pkg-3.0-py3-none-any.whl"]["yanked"] is True
    assert files["sample_pkg-3.0-py3-none-any.whl"]["core-metadata"] is False
    assert "requires-python" not in files["sample_pkg-3.0-py3-none-any.whl"]
    async with http.get(files["sample_pkg-3.0-py3-none-any.whl"]["url"] + ".metadata") as resp:
        assert resp.status == 404


async def test_project_page_html(fake_index_async: FakeIndex, http: aiohttp.ClientSession) -> None:
    index = fake_index_async
    _add_sample(index)
    async with http.get(index.simple_url + "/sample-pkg/", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        anchors = parse_anchors(await resp.text())
    assert sorted(anchors) == [
        "sample_pkg-1.0-py3-none-any.whl",
        "sample_pkg-1.0.tar.gz",
        "sample_pkg-2.0-py3-none-any.whl",
        "sample_pkg-3.0-py3-none-any.whl",
    ]
    entries = {e.filename: e for e in index.files("Sample.Pkg")}
    for filename, attrs in anchors.items():
        href = attrs["href"]
        assert href is not None
        url, _, fragment = href.partition("#")
        assert url == index.url_for(filename)
        assert fragment == f"sha256={entries[filename].sha256}"
    wheel1 = anchors["sample_pkg-1.0-py3-none-any.whl"]
    assert wheel1["data-requires-python"] == ">=3.8"
    assert "data-yanked" not in wheel1
    assert (
        wheel1["data-core-metadata"]
        == f"sha256={entries['sample_pkg-1.0-py3-none-any.whl'].metadata_sha256}"
    )
    assert wheel1["data-dist-info-metadata"] == wheel1["data-core-metadata"]
    assert "data-core-metadata" not in anchors["sample_pkg-1.0.tar.gz"]
    assert anchors["sample_pkg-2.0-py3-none-any.whl"]["data-requires-python"] == "<4,>=3.9"
    assert anchors["sample_pkg-2.0-py3-none-any.whl"]["data-yanked"] == "broken build"
    assert anchors["sample_pkg-3.0-py3-none-any.whl"]["data-yanked"] == ""


async def test_accept_q_values_and_html_only_mirror(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    index.add(DistSpec("q", "1"))
    url = index.simple_url + "/q/"
    async with http.get(url, headers={"Accept": PIP_ACCEPT}) as resp:
        assert resp.headers["Content-Type"] == JSON_V1
    async with http.get(url, headers={"Accept": f"{JSON_V1};q=0.2, text/html"}) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
    async with http.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+html"}) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.pypi.simple.v1+html"
    async with http.get(url) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
    index.json_api = False
    async with http.get(url, headers=PAGE_JSON) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "q-1-py3-none-any.whl" in parse_anchors(await resp.text())


async def test_project_list(fake_index_async: FakeIndex, http: aiohttp.ClientSession) -> None:
    index = fake_index_async
    index.add(DistSpec("Alpha_One", "1"))
    index.add(DistSpec("beta", "1"))
    for url in (index.simple_url, index.simple_url + "/"):
        async with http.get(url, headers=PAGE_JSON) as resp:
            doc = json.loads(await resp.read())
        assert doc["projects"] == [{"name": "Alpha_One"}, {"name": "beta"}]
        async with http.get(url) as resp:
            anchors = parse_anchors(await resp.text())
        assert {text: attrs["href"] for text, attrs in anchors.items()} == {
            "Alpha_One": "/simple/alpha-one/",
            "beta": "/simple/beta/",
        }


async def test_redirects_and_not_found(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    index.add(DistSpec("Foo.Bar", "1"))
    for path in ("/simple/Foo.Bar/", "/simple/foo_bar/", "/simple/foo-bar"):
        async with http.get(index.url + path, allow_redirects=False) as resp:
            assert resp.status == 301
            assert resp.headers["Location"] == "/simple/foo-bar/"
    async with http.get(index.simple_url + "/Foo.Bar/") as resp:
        assert resp.status == 200
        assert str(resp.url) == index.simple_url + "/foo-bar/"
    # A client joining "<simple_url>/" and "/name/" still gets the page.
    async with http.get(index.url + "/simple//foo-bar/") as resp:
        assert resp.status == 200
    for path in ("/simple/nothing/", "/files/nothing-1.0.tar.gz", "/elsewhere"):
        async with http.get(index.url + path) as resp:
            assert resp.status == 404
    index.remove("foo-bar")
    async with http.get(index.simple_url + "/foo-bar/") as resp:
        assert resp.status == 404


async def test_revalidation(fake_index_async: FakeIndex, http: aiohttp.ClientSession) -> None:
    index = fake_index_async
    index.add(DistSpec("cached", "1"))
    url = index.simple_url + "/cached/"
    async with http.get(url, headers=PAGE_JSON) as resp:
        etag = resp.headers["ETag"]
        modified = resp.headers["Last-Modified"]
        assert "Cache-Control" not in resp.headers
    async with http.get(url, headers={**PAGE_JSON, "If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert resp.headers["ETag"] == etag
    async with http.get(url, headers={**PAGE_JSON, "If-None-Match": f"W/{etag}"}) as resp:
        assert resp.status == 304
    async with http.get(url, headers={**PAGE_JSON, "If-Modified-Since": modified}) as resp:
        assert resp.status == 304
    # The HTML page is another representation, with another ETag.
    async with http.get(url, headers={"If-None-Match": etag}) as resp:
        assert resp.status == 200

    # A change within the same second must still defeat both validators.
    index.add(DistSpec("cached", "2"))
    async with http.get(url, headers={**PAGE_JSON, "If-None-Match": etag}) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] != etag
    async with http.get(url, headers={**PAGE_JSON, "If-Modified-Since": modified}) as resp:
        assert resp.status == 200
        assert resp.headers["Last-Modified"] != modified
    assert index.hits["/simple/cached/"] == 7
    assert [r.status for r in index.requests] == [200, 304, 304, 304, 200, 200, 200]
    assert index.requests[1].headers["If-None-Match"] == etag


async def test_validators_can_be_turned_off(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    index.add(DistSpec("plain", "1"))
    index.etag = False
    index.last_modified = False
    index.cache_control = "max-age=600, public"
    url = index.simple_url + "/plain/"
    conditional = {"If-None-Match": "*", "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    async with http.get(url, headers=conditional) as resp:
        assert resp.status == 200
        assert "ETag" not in resp.headers
        assert "Last-Modified" not in resp.headers
        assert resp.headers["Cache-Control"] == "max-age=600, public"


@pytest.mark.parametrize(
    ("header", "status", "span"),
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=100-", 206, (100, None)),
        ("bytes=-7", 206, (-7, None)),
        ("bytes=5-99999999", 206, (5, None)),
        ("bytes=-99999999", 206, (0, None)),
        ("bytes=99999999-", 416, None),
        ("bytes=-0", 416, None),
        ("bytes=9-3", 200, None),
    ],
)
async def test_range_requests(
    fake_index_async: FakeIndex,
    http: aiohttp.ClientSession,
    header: str,
    status: int,
    span: tuple[int, int | None] | None,
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("ranged", "1", files={"ranged/big.bin": os.urandom(5000)}))
    data = entry.path.read_bytes()
    async with http.get(index.url_for(entry), headers={"Range": header}) as resp:
        assert resp.status == status
        body = await resp.read()
        assert resp.headers["Accept-Ranges"] == "bytes"
        if status == 206:
            assert span is not None
            start = span[0] if span[0] >= 0 else len(data) + span[0]
            end = len(data) - 1 if span[1] is None else span[1]
            assert body == data[start : end + 1]
            assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
            assert int(resp.headers["Content-Length"]) == len(body)
        elif status == 416:
            assert resp.headers["Content-Range"] == f"bytes */{len(data)}"
        else:
            assert body == data
    assert index.requests[-1].headers["Range"] == header


async def test_range_ignored_and_head(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("headed", "1"))
    async with http.head(index.url_for(entry)) as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == entry.size
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert await resp.read() == b""
    index.range_requests = False
    async with http.get(index.url_for(entry), headers={"Range": "bytes=0-9"}) as resp:
        assert resp.status == 200
        assert "Accept-Ranges" not in resp.headers
        assert await resp.read() == entry.path.read_bytes()
    assert index.hits[entry.url_path] == 2
    assert [r.method for r in index.requests] == ["HEAD", "GET"]


async def test_hits_count_every_request(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("counted", "1"))
    for _ in range(3):
        async with http.get(index.simple_url + "/counted/") as resp:
            await resp.read()
    async with http.head(index.url_for(entry)) as resp:
        pass
    async with http.get(index.url + "/simple/nope/") as resp:
        pass
    assert index.hits == {"/simple/counted/": 3, entry.url_path: 1, "/simple/nope/": 1}
    index.reset_hits()
    assert not index.hits
    assert index.requests == []


async def test_auth(fake_index_async: FakeIndex, http: aiohttp.ClientSession) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("secret", "1"))
    index.auth = ("user", "pa:ss")
    for url in (index.simple_url + "/secret/", index.url_for(entry)):
        async with http.get(url) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(url, headers=basic_auth("user", "wrong")) as resp:
            assert resp.status == 401
        async with http.get(url, headers=basic_auth("user", "pa:ss")) as resp:
            assert resp.status == 200
    assert index.requests[-1].headers["Authorization"].startswith("Basic ")


async def test_fail_injects_statuses(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("flaky", "1+local"))
    assert "%2B" in index.url_for(entry)
    index.fail("/simple/flaky", 503, times=2, headers={"Retry-After": "0"})
    index.fail(index.url_for(entry), 500)
    statuses = []
    for _ in range(3):
        async with http.get(index.simple_url + "/flaky/") as resp:
            statuses.append(resp.status)
            if resp.status == 503:
                assert resp.headers["Retry-After"] == "0"
    async with http.get(index.url_for(entry)) as resp:
        statuses.append(resp.status)
    async with http.get(index.url_for(entry)) as resp:
        statuses.append(resp.status)
    assert statuses == [503, 503, 200, 500, 200]
    assert index.hits["/simple/flaky/"] == 3
    assert index.hits[entry.url_path] == 2


async def test_corrupt_serves_other_bytes(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("tampered", "1"))
    index.corrupt(entry.filename, b"not the wheel")
    async with http.get(index.url_for(entry)) as resp:
        assert await resp.read() == b"not the wheel"
    async with http.get(index.simple_url + "/tampered/", headers=PAGE_JSON) as resp:
        page = json.loads(await resp.read())
    assert page["files"][0]["hashes"]["sha256"] == entry.sha256
    assert entry.sha256 != hashlib.sha256(b"not the wheel").hexdigest()
    index.corrupt(entry.filename, None)
    async with http.get(index.url_for(entry)) as resp:
        assert hashlib.sha256(await resp.read()).hexdigest() == entry.sha256


async def test_links_page_and_paths(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession, dist_factory: DistFactory
) -> None:
    index = fake_index_async
    index.add(DistSpec("one", "1"), sdist=True)
    index.add(dist_factory.wheel("two", "2", requires_python=">=3.10"))
    index.add(dist_factory.wheel("three", "3", broken=Breakage.METADATA_MISSING))
    async with http.get(index.links_url) as resp:
        anchors = parse_anchors(await resp.text())
    assert sorted(anchors) == [
        "one-1-py3-none-any.whl",
        "one-1.tar.gz",
        "three-3-py3-none-any.whl",
        "two-2-py3-none-any.whl",
    ]
    # Taken from the file's METADATA when a path is added.
    assert anchors["two-2-py3-none-any.whl"]["data-requires-python"] == ">=3.10"
    assert "data-core-metadata" not in anchors["three-3-py3-none-any.whl"]


async def test_latency_and_concurrency(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    index.add(DistSpec("slow", "1"))
    index.latency = 0.3

    async def one() -> int:
        async with http.get(index.simple_url + "/slow/") as resp:
            await resp.read()
            return resp.status

    start = time.monotonic()
    assert await asyncio.gather(*(one() for _ in range(5))) == [200] * 5
    elapsed = time.monotonic() - start
    assert elapsed >= 0.3
    assert elapsed < 1.4  # concurrent, not 5 x 0.3 s


async def test_bandwidth_throttles_file_bodies(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    (entry,) = index.add(DistSpec("trickle", "1", files={"trickle/x.bin": os.urandom(20_000)}))
    index.bandwidth = entry.size / 0.3  # the whole file in about 0.3 s
    start = time.monotonic()
    async with http.get(index.url_for(entry)) as resp:
        assert await resp.read() == entry.path.read_bytes()
    assert time.monotonic() - start >= 0.25


# --- the threaded server -----------------------------------------------------------------------


def test_fake_index_from_a_sync_test(fake_index: FakeIndex) -> None:
    fake_index.add(DistSpec("threaded", "1"))
    status, headers, body = fetch(fake_index.simple_url + "/threaded/", PAGE_JSON)
    assert status == 200
    assert headers["Content-Type"] == JSON_V1
    (file,) = json.loads(body)["files"]
    status, _, blob = fetch(file["url"])
    assert hashlib.sha256(blob).hexdigest() == file["hashes"]["sha256"]
    status, headers, _ = fetch(file["url"], {"Range": "bytes=-4"})
    assert status == 206
    assert fake_index.hits["/simple/threaded/"] == 1


async def test_fake_index_from_an_async_test(
    fake_index: FakeIndex, http: aiohttp.ClientSession
) -> None:
    fake_index.add(DistSpec("threaded", "1"))
    async with http.get(fake_index.simple_url + "/threaded/") as resp:
        assert resp.status == 200


def test_threaded_server_starts_and_stops(tmp_path: Path) -> None:
    index = FakeIndex(tmp_path)
    with pytest.raises(RuntimeError):
        _ = index.url
    server = ThreadedServer(index)
    url = server.start()
    assert url == index.url
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        server.start()
    assert fetch(url + "/simple/")[0] == 200
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/simple/", timeout=5)


def test_threaded_server_serves_any_app() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    with ThreadedServer(app) as server:
        status, _, body = fetch(server.url + "/")
    assert (status, body) == (200, b"hi")


# --- real clients ------------------------------------------------------------------------------


@pytest.fixture
def pip_index(fake_index: FakeIndex) -> FakeIndex:
    """An index with a choice pip must get right: yanked and Requires-Python excluded."""
    fake_index.add(DistSpec("pick-me", "1.0"), sdist=True)
    fake_index.add(DistSpec("pick-me", "1.5"), yanked="bad release")
    fake_index.add(DistSpec("pick-me", "2.0", requires_python=">=4"))
    return fake_index


@pytest.mark.parametrize("json_api", [True, False])
def test_pip_downloads_from_the_http_index(
    pip_index: FakeIndex, tmp_path: Path, json_api: bool
) -> None:
    pip_index.json_api = json_api
    dest = tmp_path / "dest"
    pip(
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary",
        ":all:",
        "--index-url",
        pip_index.simple_url,
        "--dest",
        str(dest),
        "pick-me",
    )
    assert [p.name for p in dest.iterdir()] == ["pick_me-1.0-py3-none-any.whl"]
    page = next(r for r in pip_index.requests if r.path == "/simple/pick-me/")
    assert negotiate(page.headers["Accept"]) == "json"  # pip asks for JSON first
    assert pip_index.hits["/files/pick_me-1.0-py3-none-any.whl"] == 1


def test_pip_downloads_from_the_file_index(pip_index: FakeIndex, tmp_path: Path) -> None:
    url = write_file_index(pip_index, tmp_path / "tree")
    assert url == (tmp_path / "tree" / "simple").as_uri()
    page = (tmp_path / "tree" / "simple" / "pick-me" / "index.html").read_text()
    anchors = parse_anchors(page)
    href = anchors["pick_me-1.0-py3-none-any.whl"]["href"]
    assert href is not None
    assert href.startswith("../../files/pick_me-1.0-py3-none-any.whl#sha256=")
    assert (tmp_path / "tree" / "files" / "pick_me-1.0-py3-none-any.whl.metadata").exists()
    assert "pick-me" in parse_anchors((tmp_path / "tree" / "simple" / "index.html").read_text())

    dest = tmp_path / "dest"
    pip(
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--index-url",
        url,
        "--dest",
        str(dest),
        "pick-me==1.0",
    )
    assert sorted(p.name for p in dest.iterdir()) == ["pick_me-1.0-py3-none-any.whl"]
    assert pip_index.hits == {}  # the tree needs no server


async def test_add_many_remove_and_old_mirror_knobs(
    fake_index_async: FakeIndex, http: aiohttp.ClientSession
) -> None:
    index = fake_index_async
    added = index.add_many(
        [DistSpec("many", "1"), DistSpec("many", "2"), DistSpec("many", "3")], sdist=True
    )
    assert len(added) == 6
    url = index.simple_url + "/many/"
    async with http.get(url, headers=PAGE_JSON) as resp:
        etag = resp.headers["ETag"]
    removed = index.remove("Many", "2.0")  # versions compare as versions
    assert sorted(e.filename for e in removed) == ["many-2-py3-none-any.whl", "many-2.tar.gz"]
    async with http.get(url, headers={**PAGE_JSON, "If-None-Match": etag}) as resp:
        assert resp.status == 200
        page = json.loads(await resp.read())
    assert page["versions"] == ["1", "3"]
    async with http.get(index.url_for("many-2.tar.gz")) as resp:
        assert resp.status == 404

    index.absolute_urls = False
    index.pep700 = False
    async with http.get(url, headers=PAGE_JSON) as resp:
        page = json.loads(await resp.read())
    assert page["meta"]["api-version"] == "1.0"
    assert "versions" not in page
    first = page["files"][0]
    assert "upload-time" not in first
    assert "size" not in first
    assert first["url"] == "../../files/many-1-py3-none-any.whl"
    async with http.get(resp.url.join(URL(first["url"]))) as resp:
        assert resp.status == 200
