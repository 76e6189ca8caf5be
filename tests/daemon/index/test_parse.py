"""Page parsers: PEP 691 JSON, PEP 503 HTML, find-links pages and directories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.index.models import CachedPage, CachePolicy, IndexFile, ProjectPage
from burrowd.daemon.index.parse import (
    filename_project,
    parse_html_page,
    parse_json_page,
    scan_directory,
    split_hash,
)

PAGE_URL = "https://host/simple/foo/"


class TestHelpers:
    @pytest.mark.parametrize(
        ("url", "clean", "hashes"),
        [
            pytest.param("https://h/f.whl", "https://h/f.whl", {}, id="none"),
            pytest.param(
                "https://h/f.whl#sha256=AB", "https://h/f.whl", {"sha256": "ab"}, id="one"
            ),
            pytest.param(
                "https://h/f.whl?x=1#md5=1&sha512=2",
                "https://h/f.whl?x=1",
                {"md5": "1", "sha512": "2"},
                id="query-and-two",
            ),
            pytest.param("https://h/f.whl#egg=foo", "https://h/f.whl", {}, id="not-a-hash"),
        ],
    )
    def test_split_hash(self, url: str, clean: str, hashes: dict[str, str]) -> None:
        assert split_hash(url) == (clean, hashes)

    @pytest.mark.parametrize(
        ("filename", "parsed"),
        [
            pytest.param("Foo_Bar-1.0-py3-none-any.whl", ("foo-bar", "1.0"), id="wheel"),
            pytest.param("foo-1.0.tar.gz", ("foo", "1.0"), id="sdist"),
            pytest.param("foo-1.0.zip", ("foo", "1.0"), id="zip"),
            # Formats of releases uploaded before PEP 625, which pip and uv take too.
            pytest.param("Foo-1.0.tar.bz2", ("foo", "1.0"), id="tar.bz2"),
            pytest.param("foo-1.0rc1.tar.xz", ("foo", "1.0rc1"), id="tar.xz"),
            pytest.param("foo-1.0.tgz", ("foo", "1.0"), id="tgz"),
            pytest.param("foo-1.0.tbz", ("foo", "1.0"), id="tbz"),
            pytest.param("foo-1.0.txz", ("foo", "1.0"), id="txz"),
            pytest.param("foo-1.0.tar", ("foo", "1.0"), id="tar"),
            pytest.param("foo-1.0.tar.zst", None, id="zstd-unreadable-here"),
            pytest.param("foo-1.0.exe", None, id="installer"),
            pytest.param("foo.whl", None, id="bad-wheel"),
        ],
    )
    def test_filename_project(self, filename: str, parsed: tuple[str, str] | None) -> None:
        assert filename_project(filename) == parsed

    @pytest.mark.parametrize(
        ("filename", "project", "parsed"),
        [
            pytest.param("foo-1.0-1.tar.gz", "foo", ("foo", "1.0.post1"), id="legacy-post"),
            pytest.param("foo-2.0-rc1.zip", "foo", ("foo", "2.0rc1"), id="dash-pre"),
            pytest.param("Foo.Bar-1.0-1.tar.gz", "foo-bar", ("foo-bar", "1.0.post1"), id="name"),
            pytest.param("foo-bar-1.0.tar.gz", "foo", None, id="another-project"),
            pytest.param("foo-1.0.tar.gz", "foo", ("foo", "1.0"), id="plain"),
            pytest.param("foo-1.0-1.tar.bz2", "foo", ("foo", "1.0.post1"), id="legacy-format"),
            # Without the project the split is packaging's, at the last dash.
            pytest.param("foo-1.0-1.tar.gz", None, ("foo-1-0", "1"), id="no-project-given"),
        ],
    )
    def test_an_sdist_version_may_hold_a_dash(
        self, filename: str, project: str | None, parsed: tuple[str, str] | None
    ) -> None:
        # Split after the project's name, as pip and uv do, when the page says whose it is.
        assert filename_project(filename, project) == parsed


class TestHtml:
    def test_attributes(self) -> None:
        page = b"""<html><body>
        <a href="../../files/foo-1.0-py3-none-any.whl#sha256=aa"
           data-requires-python="&gt;=3.8" data-core-metadata="sha256=BB">x</a>
        <a href='foo-1.1.tar.gz' data-yanked="">y</a>
        <a href=foo-1.2-py3-none-any.whl data-dist-info-metadata="true" data-yanked="why">z</a>
        <a href="foo-1.3-py3-none-any.whl" data-core-metadata="false">w</a>
        <a href="README.html">not a distribution</a>
        <a>no href</a>
        </body></html>"""
        parsed = parse_html_page(page, PAGE_URL, "https://host/simple/", "foo")
        assert parsed.name == "foo"
        assert [
            (f.filename, f.url, f.hashes, f.requires_python, f.yanked, f.core_metadata)
            for f in parsed.files
        ] == [
            (
                "foo-1.0-py3-none-any.whl",
                "https://host/files/foo-1.0-py3-none-any.whl",
                {"sha256": "aa"},
                ">=3.8",
                None,
                {"sha256": "bb"},
            ),
            ("foo-1.1.tar.gz", PAGE_URL + "foo-1.1.tar.gz", {}, None, "", None),
            (
                "foo-1.2-py3-none-any.whl",
                PAGE_URL + "foo-1.2-py3-none-any.whl",
                {},
                None,
                "why",
                {},
            ),
            (
                "foo-1.3-py3-none-any.whl",
                PAGE_URL + "foo-1.3-py3-none-any.whl",
                {},
                None,
                None,
                None,
            ),
        ]

    def test_base_href(self) -> None:
        page = b'<base href="https://mirror/pkgs/"><a href="foo-1.0.tar.gz">f</a>'
        parsed = parse_html_page(page, PAGE_URL, "https://host/simple/", "foo")
        assert parsed.files[0].url == "https://mirror/pkgs/foo-1.0.tar.gz"

    def test_a_link_with_a_query_keeps_its_file(self) -> None:
        # A signed mirror's link: the filename is the URL path's, the query stays in the URL.
        page = b'<a href="https://h/files/foo-1.0.tar.gz?token=abc#sha256=AA">foo</a>'
        [f] = parse_html_page(page, PAGE_URL, "https://host/simple/", "foo").files
        assert (f.filename, f.url, f.hashes) == (
            "foo-1.0.tar.gz",
            "https://h/files/foo-1.0.tar.gz?token=abc",
            {"sha256": "aa"},
        )

    def test_find_links_page_keeps_only_the_project(self) -> None:
        page = b"""<a href="foo-1.0.tar.gz">a</a><a href="foobar-1.0.tar.gz">b</a>
        <a href="Foo-2.0-py3-none-any.whl">c</a><a href="bar-1.0-py3-none-any.whl">d</a>
        <a href="foo-3.0-1.tar.gz">e</a><a href="foo-bar-1.0.tar.gz">f</a>"""
        parsed = parse_html_page(
            page, "https://h/links/", "https://h/links/", "foo", only_project=True
        )
        assert [f.filename for f in parsed.files] == [
            "foo-1.0.tar.gz",
            "Foo-2.0-py3-none-any.whl",
            "foo-3.0-1.tar.gz",
        ]


class TestJson:
    def test_fields_and_legacy_metadata_key(self) -> None:
        doc = {
            "meta": {"api-version": "1.1"},
            "name": "Foo",
            "files": [
                {
                    "filename": "foo-1.0-py3-none-any.whl",
                    "url": "../../files/foo-1.0-py3-none-any.whl",
                    "hashes": {"SHA256": "AA"},
                    "requires-python": "",
                    "yanked": "reason",
                    "dist-info-metadata": {"sha256": "BB"},
                    "size": 10,
                    "upload-time": "2026-01-01T00:00:00.000000Z",
                },
                {
                    "filename": "foo-1.0.tar.gz",
                    "url": "https://files/foo-1.0.tar.gz#sha256=cc",
                    "hashes": {},
                    "yanked": True,
                    "core-metadata": True,
                },
            ],
        }
        page = parse_json_page(json.dumps(doc).encode(), PAGE_URL, "https://host/simple/")
        first, second = page.files
        assert page.name == "foo"
        assert first.url == "https://host/files/foo-1.0-py3-none-any.whl"
        assert first.hashes == {"sha256": "aa"}
        assert first.requires_python is None
        assert first.yanked == "reason"
        assert first.core_metadata == {"sha256": "bb"}
        assert (first.size, first.upload_time) == (10, "2026-01-01T00:00:00.000000Z")
        assert second.hashes == {"sha256": "cc"}  # from the fragment when "hashes" is empty
        assert second.yanked == ""
        assert second.core_metadata == {}


def _entry(filename: str, **fields: object) -> dict[str, object]:
    return {"filename": filename, "url": f"https://files/{filename}", **fields}


def _json_page(*entries: dict[str, object], name: str = "foo") -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": entries}).encode()


class TestJsonOnDemand:
    def test_filenames_at_once_files_when_asked(self) -> None:
        body = _json_page(
            _entry("foo-1.0-py3-none-any.whl"),
            _entry("foo-1.0.tar.gz"),
            _entry("foo-2.0-py3-none-any.whl", yanked="broken"),
        )
        listing = parse_json_page(body, PAGE_URL, "https://host/simple/").listing
        assert listing.filenames == [
            "foo-1.0-py3-none-any.whl",
            "foo-1.0.tar.gz",
            "foo-2.0-py3-none-any.whl",
        ]
        assert listing.built() == 0
        third = listing.get(2)
        assert third is not None
        assert (third.filename, third.yanked) == ("foo-2.0-py3-none-any.whl", "broken")
        assert listing.built() == 1
        assert listing.get(2) is third  # built once, then kept

    def test_groups_by_version_string_leaving_out_other_files(self) -> None:
        body = _json_page(
            _entry("foo-1.0-py3-none-any.whl"),
            _entry("foobar-1.0.tar.gz"),  # another project
            _entry("Foo-2.0.tar.gz"),
            _entry("foo-1.0-1-cp311-cp311-linux_x86_64.whl"),  # a build tag
            _entry("foo.whl"),  # no version
            _entry("foo-2.0.exe"),
            _entry("foo_bar-3.0-py3-none-any.whl"),
            _entry("foo-0.9.tar.bz2"),  # a format older than PEP 625
            _entry("foo-0.8.tgz"),
        )
        listing = parse_json_page(body, PAGE_URL, "https://host/simple/").listing
        assert listing.groups("foo") == {"1.0": [0, 3], "2.0": [2], "0.9": [7], "0.8": [8]}
        assert listing.grouped("foo")
        assert not listing.grouped("foo-bar")
        assert listing.groups("foo-bar") == {"3.0": [6]}
        assert listing.built() == 0

    def test_an_unreadable_entry_is_skipped_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Only an entry without a usable URL is unreadable: there is nothing to download.
        body = _json_page(
            _entry("foo-1.0-py3-none-any.whl"),
            _entry("foo-2.0-py3-none-any.whl", url=5),
            _entry("foo-3.0-py3-none-any.whl", url=None),
            _entry("foo-4.0-py3-none-any.whl", url="//[::1/foo-4.0-py3-none-any.whl"),
        )
        page = parse_json_page(body, PAGE_URL, "https://host/simple/")
        with caplog.at_level(logging.WARNING):
            assert [f.filename for f in page.files] == ["foo-1.0-py3-none-any.whl"]
            assert page.listing.get(1) is None  # asked again: still skipped, warned once
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 3
        assert "foo-2.0-py3-none-any.whl" in warned[0]
        assert PAGE_URL in warned[0]
        assert "foo-3.0-py3-none-any.whl" in warned[1]
        assert "foo-4.0-py3-none-any.whl" in warned[2]
        assert page.listing.skipped(0) is None
        assert "str" in (page.listing.skipped(1) or "")  # the reason, for the resolver's warning
        assert page.listing.skipped(3) is not None

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            pytest.param({"yanked": None}, {"yanked": None}, id="yanked-null"),
            pytest.param({"yanked": 1}, {"yanked": ""}, id="yanked-number"),
            pytest.param({"yanked": ""}, {"yanked": ""}, id="yanked-empty-reason"),
            pytest.param({"size": "123"}, {"size": None}, id="size-string"),
            pytest.param({"size": 1.5}, {"size": None}, id="size-fraction"),
            pytest.param({"size": -1}, {"size": None}, id="size-negative"),
            pytest.param({"size": True}, {"size": None}, id="size-bool"),
            pytest.param({"hashes": None}, {"hashes": {}}, id="hashes-null"),
            pytest.param({"hashes": ["sha256"]}, {"hashes": {}}, id="hashes-list"),
            pytest.param(
                {"hashes": {"sha256": None, "SHA512": "AB"}},
                {"hashes": {"sha512": "ab"}},
                id="hash-null",
            ),
            pytest.param({"requires-python": 3}, {"requires_python": None}, id="requires-number"),
            pytest.param({"upload-time": 1700000000}, {"upload_time": None}, id="time-number"),
            pytest.param({"core-metadata": "true"}, {"core_metadata": None}, id="metadata-string"),
            pytest.param(
                {"core-metadata": {"sha256": "AB", "md5": 5}},
                {"core_metadata": {"sha256": "ab"}},
                id="metadata-hash-number",
            ),
        ],
    )
    def test_a_value_of_the_wrong_type_counts_as_absent(
        self, fields: dict[str, object], expected: dict[str, object]
    ) -> None:
        # As pip reads an entry (each key with .get()): the file stays, a resolution must not
        # quietly pass over it for another version.
        body = _json_page(_entry("foo-1.0-py3-none-any.whl", **fields))
        [f] = parse_json_page(body, PAGE_URL, "https://host/simple/").files
        for field, value in expected.items():
            assert getattr(f, field) == value

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b'{"name": "foo", "files": [{"url": "u"}]}', id="no-filename"),
            pytest.param(b'{"name": "foo", "files": [{"filename": 3}]}', id="filename-number"),
            pytest.param(b'{"files": []}', id="no-project-name"),
            pytest.param(b'{"name": "foo", "files": [', id="truncated"),
        ],
    )
    def test_a_page_without_its_filenames_cannot_be_read(self, body: bytes) -> None:
        with pytest.raises(msgspec.DecodeError):
            parse_json_page(body, PAGE_URL, "https://host/simple/")

    def test_stored_and_read_back(self) -> None:
        body = _json_page(_entry("foo-1.0.tar.gz", url="../../files/foo-1.0.tar.gz"))
        page = parse_json_page(body, PAGE_URL, "https://host/simple/")
        stored = msgspec.msgpack.encode(CachedPage(CachePolicy(1.0, 60.0, "heuristic"), page))
        read = msgspec.msgpack.decode(stored, type=CachedPage).page
        assert read is not None
        assert read.listing.groups("foo") == {"1.0": [0]}
        assert read.files == page.files
        assert read.files[0].url == "https://host/files/foo-1.0.tar.gz"

    def test_a_page_stored_before_bodies_were_kept_still_reads(self) -> None:
        file = IndexFile("foo-1.0.tar.gz", "https://files/foo-1.0.tar.gz", {"sha256": "aa"})
        old = msgspec.msgpack.encode(
            [[1.0, 60.0, "heuristic"], ["foo", "https://host/simple/", [file]], PAGE_URL]
        )
        read = msgspec.msgpack.decode(old, type=CachedPage).page
        assert read == ProjectPage("foo", "https://host/simple/", [file])
        assert read.files == [file]
        assert read.listing.groups("foo") == {"1.0": [0]}


def test_scan_directory(tmp_path: Path) -> None:
    for name in ("foo-1.0-py3-none-any.whl", "foo-0.9.tar.gz", "bar-1.0.tar.gz", "foo.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "foo-2.0.tar.gz").mkdir()  # a directory is not a file
    page = scan_directory(tmp_path, "foo", tmp_path.as_uri())
    assert [(f.filename, f.url, f.size) for f in page.files] == [
        ("foo-0.9.tar.gz", (tmp_path / "foo-0.9.tar.gz").as_uri(), 1),
        ("foo-1.0-py3-none-any.whl", (tmp_path / "foo-1.0-py3-none-any.whl").as_uri(), 1),
    ]
    assert scan_directory(tmp_path / "missing", "foo", "x").files == []
