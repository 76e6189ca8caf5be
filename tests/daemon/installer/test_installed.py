"""What a scan of site directories finds: dist-info and egg-info, direct_url.json, records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from packaging.utils import canonicalize_name

from burrowd.daemon.installer.installed import (
    ArchiveInfo,
    DirectUrl,
    DirInfo,
    InstalledDist,
    SitePackages,
    read_direct_url,
    scan,
)


def dist_info(site: Path, stem: str, **files: str) -> Path:
    """Create ``site/<stem>.dist-info`` holding ``files`` (name -> text)."""
    path = site / f"{stem}.dist-info"
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name.replace("_json", ".json")).write_text(text)
    return path


def installed(
    name: str, version: str, path: Path, *, kind: Literal["dist-info", "egg-info"] = "dist-info"
) -> InstalledDist:
    return InstalledDist(name=canonicalize_name(name), version=version, path=path, kind=kind)


def metadata(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


class TestScan:
    def test_names_are_canonical_and_versions_come_from_the_directory_name(
        self, tmp_path: Path
    ) -> None:
        site = tmp_path / "site"
        dist_info(site, "Foo_Bar-1.0", METADATA=metadata("Foo.Bar", "1.0"))
        dist_info(site, "zope.interface-6.1", METADATA=metadata("zope.interface", "6.1"))
        (site / "foo_bar").mkdir()
        (site / "module.py").write_text("")
        found = scan([site])
        assert sorted((d.name, d.version, d.kind) for d in found) == [
            ("foo-bar", "1.0", "dist-info"),
            ("zope-interface", "6.1", "dist-info"),
        ]
        assert len(found) == 2
        assert [d.path for d in found.get("FOO.bar")] == [site / "Foo_Bar-1.0.dist-info"]
        assert found.get("missing") == []

    def test_a_scan_reads_no_metadata_of_a_dist_info(self, tmp_path: Path) -> None:
        # Name and version come from the directory: a METADATA that disagrees is not read.
        site = tmp_path / "site"
        dist_info(site, "foo-1.0", METADATA=metadata("other", "9"))
        (dist,) = scan([site])
        assert (dist.name, dist.version) == ("foo", "1.0")

    def test_malformed_entries_are_skipped(self, tmp_path: Path) -> None:
        site = tmp_path / "site"
        site.mkdir()
        (site / "noversion.dist-info").mkdir()
        (site / "afile-1.0.dist-info").write_text("not a directory")
        (site / "-1.0.dist-info").mkdir()
        # An unversioned egg-info whose PKG-INFO is unreadable says nothing reliable.
        (site / "bare.egg-info").mkdir()
        assert list(scan([site])) == []

    def test_missing_directories_hold_nothing(self, tmp_path: Path) -> None:
        assert len(scan([tmp_path / "nowhere"])) == 0

    def test_every_site_directory_is_read_and_duplicates_are_kept(self, tmp_path: Path) -> None:
        purelib, platlib = tmp_path / "purelib", tmp_path / "platlib"
        dist_info(purelib, "foo-1.0")
        dist_info(platlib, "foo-2.0")
        dist_info(platlib, "bar-1.0")
        found = scan([purelib, platlib])
        assert len(found) == 3
        assert sorted(d.version for d in found.get("foo")) == ["1.0", "2.0"]
        assert {d.site for d in found.get("foo")} == {purelib, platlib}

    def test_egg_info_directories_and_files(self, tmp_path: Path) -> None:
        site = tmp_path / "site"
        site.mkdir()
        versioned = site / "Legacy_Pkg-2.5-py3.11.egg-info"
        versioned.mkdir()
        (versioned / "PKG-INFO").write_text(metadata("Legacy-Pkg", "2.5"))
        develop = site / "devpkg.egg-info"
        develop.mkdir()
        (develop / "PKG-INFO").write_text(metadata("devpkg", "0.3.dev0"))
        (site / "single-1.1-py3.11.egg-info").write_text(metadata("single", "1.1"))
        found = {str(d.name): d for d in scan([site])}
        assert {n: (d.version, d.kind) for n, d in found.items()} == {
            "legacy-pkg": ("2.5", "egg-info"),
            "devpkg": ("0.3.dev0", "egg-info"),
            "single": ("1.1", "egg-info"),
        }
        single = found["single"].metadata()
        assert single is not None
        assert single.version == "1.1"

    def test_direct_url_json_is_read_and_a_broken_one_ignored(self, tmp_path: Path) -> None:
        site = tmp_path / "site"
        url = {
            "url": "file:///wheels/foo-1.0-py3-none-any.whl",
            "archive_info": {"hashes": {"sha256": "ab" * 32}},
        }
        dist_info(site, "foo-1.0", direct_url_json=json.dumps(url))
        dist_info(site, "bar-1.0", direct_url_json="{not json")
        dist_info(
            site,
            "edit-1.0",
            direct_url_json=json.dumps({"url": "file:///src/edit", "dir_info": {"editable": True}}),
        )
        dist_info(site, "plain-1.0")
        found = {str(d.name): d for d in scan([site])}
        foo = found["foo"].direct_url
        assert foo is not None
        assert foo.url == url["url"]
        assert foo.archive_info is not None
        assert foo.archive_info.sha256() == "ab" * 32
        assert not found["foo"].editable
        assert found["bar"].direct_url is None
        assert found["edit"].editable
        assert found["plain"].direct_url is None


class TestInstalledDist:
    def test_installer_requested_and_metadata(self, tmp_path: Path) -> None:
        path = dist_info(
            tmp_path,
            "foo-1.0",
            METADATA=metadata("foo", "1.0"),
            INSTALLER="burrowd\n",
            REQUESTED="",
        )
        dist = installed("foo", "1.0", path)
        assert dist.installer == "burrowd"
        assert dist.requested
        meta = dist.metadata()
        assert meta is not None
        assert (meta.name, meta.version) == ("foo", "1.0")
        assert str(dist) == "foo==1.0"

        bare = dist_info(tmp_path, "bar-1.0")
        dist = installed("bar", "1.0", bare)
        assert dist.installer == ""
        assert not dist.requested
        assert dist.metadata() is None

    def test_files_of_a_dist_info_come_from_record(self, tmp_path: Path) -> None:
        record = (
            "foo/__init__.py,sha256=abc,3\r\n"
            '"foo/a,b.py",sha256=def,4\r\n'
            "../../../bin/foo,sha256=ghi,5\r\n"
            "foo-1.0.dist-info/RECORD,,\r\n"
            "\r\n"
        )
        path = dist_info(tmp_path, "foo-1.0", RECORD=record)
        dist = installed("foo", "1.0", path)
        assert dist.files() == [
            "foo/__init__.py",
            "foo/a,b.py",
            "../../../bin/foo",
            "foo-1.0.dist-info/RECORD",
        ]

    def test_a_dist_info_without_record_has_no_files(self, tmp_path: Path) -> None:
        path = dist_info(tmp_path, "foo-1.0", METADATA=metadata("foo", "1.0"))
        dist = installed("foo", "1.0", path)
        assert dist.files() is None

    def test_files_of_an_egg_info_come_from_installed_files_txt(self, tmp_path: Path) -> None:
        egg = tmp_path / "foo-1.0-py3.11.egg-info"
        egg.mkdir()
        (egg / "installed-files.txt").write_text(
            "../foo/__init__.py\n../foo/__pycache__/__init__.cpython-311.pyc\n"
            "PKG-INFO\n./\ntop_level.txt\n"
        )
        dist = installed("foo", "1.0", egg, kind="egg-info")
        assert dist.files() == [
            "foo/__init__.py",
            "foo/__pycache__/__init__.cpython-311.pyc",
            "foo-1.0-py3.11.egg-info/PKG-INFO",
            "foo-1.0-py3.11.egg-info",
            "foo-1.0-py3.11.egg-info/top_level.txt",
        ]

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda p: p.mkdir(), id="egg-info-dir-without-installed-files"),
            pytest.param(lambda p: p.write_text(metadata("foo", "1.0")), id="egg-info-file"),
        ],
    )
    def test_an_egg_info_without_a_file_list_has_no_files(
        self, tmp_path: Path, make: Callable[[Path], object]
    ) -> None:
        egg = tmp_path / "foo-1.0-py3.11.egg-info"
        make(egg)
        dist = installed("foo", "1.0", egg, kind="egg-info")
        assert dist.files() is None


class TestDirectUrl:
    def test_to_json_is_pips_sorted_form_and_round_trips(self, tmp_path: Path) -> None:
        url = DirectUrl(
            url="file:///w/foo-1.0-py3-none-any.whl",
            archive_info=ArchiveInfo(hash="sha256=" + "c" * 64, hashes={"sha256": "c" * 64}),
        )
        text = url.to_json()
        assert (
            text
            == json.dumps(
                {
                    "archive_info": {"hash": "sha256=" + "c" * 64, "hashes": {"sha256": "c" * 64}},
                    "url": "file:///w/foo-1.0-py3-none-any.whl",
                },
                sort_keys=True,
            ).encode()
        )
        (tmp_path / "direct_url.json").write_bytes(text)
        assert read_direct_url(tmp_path) == url

    @pytest.mark.parametrize(
        ("info", "expected"),
        [
            pytest.param(ArchiveInfo(hashes={"sha256": "aa"}), "aa", id="hashes"),
            pytest.param(ArchiveInfo(hash="sha256=bb"), "bb", id="legacy-hash"),
            pytest.param(ArchiveInfo(hash="md5=cc"), None, id="legacy-md5"),
            pytest.param(ArchiveInfo(hashes={"sha512": "dd"}), None, id="no-sha256"),
            pytest.param(ArchiveInfo(), None, id="none"),
        ],
    )
    def test_archive_sha256(self, info: ArchiveInfo, expected: str | None) -> None:
        assert info.sha256() == expected

    def test_editable(self) -> None:
        assert DirectUrl(url="file:///src", dir_info=DirInfo(editable=True)).editable
        assert not DirectUrl(url="file:///src", dir_info=DirInfo()).editable
        assert not DirectUrl(url="https://x/foo.whl").editable


def test_site_packages_groups_by_canonical_name(tmp_path: Path) -> None:
    a = installed("foo", "1.0", tmp_path / "a")
    b = installed("foo", "2.0", tmp_path / "b")
    c = installed("bar", "1.0", tmp_path / "c")
    site = SitePackages([a, b, c])
    assert len(site) == 3
    assert list(site) == [a, b, c]
    assert site.get("FOO") == [a, b]
