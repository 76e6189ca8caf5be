"""Where files come from: JSON and HTML pages, file:// indexes, find-links, several indexes,
credentials, and projects that are nowhere."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import NetworkError, PackageNotFound
from burrowd.daemon.index.client import Freshness, IndexClient, IndexSettings, local_path
from burrowd.daemon.index.models import IndexFile
from tests.daemon.cache.harness import Stack, archive_problems, cache_files
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, write_file_index
from tests.support.plugin import DistFactory

OPT_PYPI = Path("/opt/pypi/simple")


def _shape(f: IndexFile) -> tuple[object, ...]:
    """Return what every page format must agree on for a file."""
    return (f.filename, f.hashes, f.requires_python, f.yanked, f.core_metadata)


def _add_variety(index: FakeIndex) -> None:
    index.add(DistSpec("foo", "1.0", requires_python=">=3.8,<4"), sdist=True)
    index.add(DistSpec("foo", "1.1"), yanked="broken & <bad>", metadata_file=False)
    index.add(DistSpec("foo", "1.2", tag="py2.py3-none-any"), yanked=True)


class TestPageFormats:
    async def test_json_and_html_pages_agree(self, stack: Stack, fake_index: FakeIndex) -> None:
        _add_variety(fake_index)
        location = fake_index.simple_url + "/"
        json_page = await stack.index.page(location, "foo", Freshness())
        fake_index.json_api = False
        html_client = IndexClient(
            Cache(stack.cache.root.with_name("html")), stack.http, stack.limits, ttl=600
        )
        html_page = await html_client.page(location, "foo", Freshness())
        assert json_page is not None
        assert html_page is not None
        assert (
            fake_index.requests[0]
            .headers["Accept"]
            .startswith("application/vnd.pypi.simple.v1+json")
        )
        assert [_shape(f) for f in html_page.files] == [_shape(f) for f in json_page.files]
        assert [f.url for f in html_page.files] == [f.url for f in json_page.files]
        by_name = {f.filename: f for f in json_page.files}
        wheel = by_name["foo-1.0-py3-none-any.whl"]
        entry = next(e for e in fake_index.files("foo") if e.filename == wheel.filename)
        assert wheel.hashes == {"sha256": entry.sha256}
        assert wheel.requires_python == ">=3.8,<4"
        assert wheel.yanked is None
        assert wheel.core_metadata == {"sha256": entry.metadata_sha256}
        assert by_name["foo-1.1-py3-none-any.whl"].yanked == "broken & <bad>"
        assert by_name["foo-1.1-py3-none-any.whl"].core_metadata is None
        assert by_name["foo-1.2-py2.py3-none-any.whl"].yanked == ""
        assert by_name["foo-1.0.tar.gz"].core_metadata is None
        assert wheel.size == entry.size  # PEP 700 fields come with JSON only
        assert wheel.upload_time is not None
        assert html_page.files[0].upload_time is None

    async def test_relative_urls_resolve_against_the_page(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.absolute_urls = False
        fake_index.add(DistSpec("foo", "1.0"))
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert archive_problems(Path(wheels[0].archive)) == []
        assert fake_index.hits["/files/foo-1.0-py3-none-any.whl"] == 1

    async def test_file_index_has_the_same_files(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        _add_variety(fake_index)
        simple = write_file_index(fake_index, tmp_path / "mirror")
        http_page = await stack.index.page(fake_index.simple_url + "/", "foo", Freshness())
        files = await stack.index.project_files(stack.settings(simple), "foo", Freshness())
        assert http_page is not None
        assert [_shape(f) for f, _ in files.files] == [_shape(f) for f in http_page.files]
        assert all(
            f.url.startswith((tmp_path / "mirror" / "files").as_uri()) for f, _ in files.files
        )
        assert files.searched == [simple + "/"]

        fake_index.reset_hits()
        await stack.index.drain()  # the HTTP page is written to disk in the background
        pages = cache_files(stack.cache, Bucket.SIMPLE)
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(simple))
        assert archive_problems(Path(wheels[0].archive)) == []
        assert not fake_index.hits  # nothing over HTTP
        assert cache_files(stack.cache, Bucket.SIMPLE) == pages  # file:// pages are not copied

    async def test_file_index_unknown_project(self, stack: Stack, tmp_path: Path) -> None:
        (tmp_path / "simple").mkdir()
        with pytest.raises(PackageNotFound, match="nothere"):
            await stack.index.project_files(
                stack.settings((tmp_path / "simple").as_uri()), "nothere", Freshness()
            )

    @pytest.mark.skipif(
        not (OPT_PYPI / "six" / "index.html").is_file(), reason="no local mirror here"
    )
    async def test_this_machines_local_index(self, stack: Stack) -> None:
        settings = stack.settings(OPT_PYPI.as_uri())
        files = await stack.index.project_files(settings, "six", Freshness())
        assert files.name == "six"
        assert files.files
        for f, location in files.files:
            assert f.url.startswith("file:///opt/pypi/files/")
            assert len(f.hashes["sha256"]) == 64
            assert location == OPT_PYPI.as_uri() + "/"
        wheel, location = next((f, loc) for f, loc in files.files if f.is_wheel)
        version = wheel.filename.split("-")[1]
        meta = await stack.index.metadata(wheel, location, "six", version)
        assert (meta.name.lower(), meta.version) == ("six", version)
        wheels = await stack.prefetch([f"six=={version}"], settings)
        assert archive_problems(Path(wheels[0].archive)) == []


class TestFindLinks:
    async def test_directory_merged_with_the_index(
        self, stack: Stack, fake_index: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        local = dist_factory.wheel("foo", "2.0")
        dist_factory.wheel("bar", "1.0")  # another project in the same directory
        (local.parent / "README.txt").write_text("not a distribution")
        settings = stack.settings(fake_index.simple_url, find_links=[str(local.parent)])
        files = await stack.index.project_files(settings, "foo", Freshness())
        assert [(f.filename, loc) for f, loc in files.files] == [
            ("foo-1.0-py3-none-any.whl", fake_index.simple_url + "/"),
            ("foo-2.0-py3-none-any.whl", local.parent.as_uri()),
        ]
        wheels = await stack.prefetch(["foo==2.0"], settings)
        assert archive_problems(Path(wheels[0].archive)) == []
        assert local.is_file()  # the user's file is never moved or deleted
        assert "/files/foo-2.0-py3-none-any.whl" not in fake_index.hits

    async def test_html_page_merged_with_the_index(
        self, stack: Stack, fake_index: FakeIndex, other_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        other_index.add_many([DistSpec("foo", "2.0"), DistSpec("bar", "1.0")])
        settings = stack.settings(fake_index.simple_url, find_links=[other_index.links_url])
        files = await stack.index.project_files(settings, "foo", Freshness())
        assert [(f.filename, loc) for f, loc in files.files] == [
            ("foo-1.0-py3-none-any.whl", fake_index.simple_url + "/"),
            ("foo-2.0-py3-none-any.whl", other_index.links_url),
        ]
        entry = other_index.files("foo")[0]
        assert files.files[1][0].hashes == {"sha256": entry.sha256}
        wheels = await stack.prefetch(["foo==2.0"], settings)
        assert archive_problems(Path(wheels[0].archive)) == []
        assert other_index.hits["/files/foo-2.0-py3-none-any.whl"] == 1

    async def test_no_index_uses_find_links_only(
        self, stack: Stack, fake_index: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        local = dist_factory.wheel("foo", "2.0")
        settings = stack.settings(
            fake_index.simple_url, find_links=[str(local.parent)], no_index=True
        )
        assert settings.index_urls == ()
        files = await stack.index.project_files(settings, "foo", Freshness())
        assert [f.filename for f, _ in files.files] == ["foo-2.0-py3-none-any.whl"]
        await stack.prefetch(["foo==2.0"], settings)
        with pytest.raises(PackageNotFound) as info:
            await stack.prefetch(["foo==1.0"], settings)
        assert "1.0" in str(info.value)
        assert not fake_index.hits

    async def test_no_index_and_no_find_links(self, stack: Stack) -> None:
        with pytest.raises(PackageNotFound, match="no index"):
            await stack.index.project_files(stack.settings(no_index=True), "foo", Freshness())


class TestSeveralIndexes:
    async def test_first_index_wins(
        self, stack: Stack, fake_index: FakeIndex, other_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        other_index.add_many([DistSpec("foo", "9.0"), DistSpec("bar", "1.0")])
        settings = stack.settings(fake_index.simple_url, other_index.simple_url)
        foo = await stack.index.project_files(settings, "foo", Freshness())
        assert [f.filename for f, _ in foo.files] == ["foo-1.0-py3-none-any.whl"]
        assert other_index.hits["/simple/foo/"] == 0
        with pytest.raises(PackageNotFound, match=r"newest: 1\.0"):
            await stack.prefetch(["foo==9.0"], settings)
        assert other_index.hits["/simple/foo/"] == 0

        bar = await stack.index.project_files(settings, "bar", Freshness())
        assert [(f.filename, loc) for f, loc in bar.files] == [
            ("bar-1.0-py3-none-any.whl", other_index.simple_url + "/")
        ]
        assert fake_index.hits["/simple/bar/"] == 1
        assert bar.searched == [fake_index.simple_url + "/", other_index.simple_url + "/"]

    async def test_extra_indexes_are_searched_before_the_index_url(
        self, stack: Stack, fake_index: FakeIndex, other_index: FakeIndex
    ) -> None:
        # uv's order: a private extra index shadows a same-named project on the main index.
        fake_index.add(DistSpec("foo", "1.0"))
        other_index.add(DistSpec("foo", "9.0"))
        settings = IndexSettings.build(
            stack.http,
            index_url=fake_index.simple_url,
            extra_index_urls=[other_index.simple_url],
        )
        assert settings.index_urls == (other_index.simple_url + "/", fake_index.simple_url + "/")
        foo = await stack.index.project_files(settings, "foo", Freshness())
        assert [f.filename for f, _ in foo.files] == ["foo-9.0-py3-none-any.whl"]
        assert fake_index.hits["/simple/foo/"] == 0
        default = IndexSettings.build(stack.http, extra_index_urls=[other_index.simple_url])
        assert default.index_urls == (other_index.simple_url + "/", "https://pypi.org/simple/")

    async def test_not_found_names_every_index(
        self, stack: Stack, fake_index: FakeIndex, other_index: FakeIndex
    ) -> None:
        settings = stack.settings(fake_index.simple_url, other_index.simple_url)
        with pytest.raises(PackageNotFound) as info:
            await stack.index.project_files(settings, "Missing.Pkg", Freshness())
        assert info.value.name == "Missing.Pkg"
        assert info.value.indexes == [fake_index.simple_url + "/", other_index.simple_url + "/"]
        assert fake_index.simple_url in str(info.value)
        assert other_index.simple_url in str(info.value)
        assert fake_index.hits["/simple/missing-pkg/"] == 1

    async def test_duplicate_indexes_are_asked_once(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        settings = stack.settings(fake_index.simple_url, fake_index.simple_url + "/")
        assert settings.index_urls == (fake_index.simple_url + "/",)


class TestCredentials:
    PASSWORD = "s3cret-Pa55word"

    def _secrets(self) -> list[str]:
        token = base64.b64encode(f"alice:{self.PASSWORD}".encode()).decode()
        return [self.PASSWORD, token]

    @pytest.mark.parametrize(
        "absolute", [pytest.param(True, id="absolute-links"), pytest.param(False, id="relative")]
    )
    async def test_in_the_index_url(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        other_index: FakeIndex,
        caplog: pytest.LogCaptureFixture,
        absolute: bool,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        fake_index.absolute_urls = absolute
        fake_index.auth = ("alice", self.PASSWORD)
        fake_index.add(DistSpec("foo", "1.0"))
        other_index.add(DistSpec("bar", "1.0"))
        url = fake_index.simple_url.replace("://", f"://alice:{self.PASSWORD}@")
        settings = stack.settings(url, other_index.simple_url)
        assert settings.index_urls[0] == fake_index.simple_url + "/"
        assert self.PASSWORD not in " ".join(settings.describe())
        wheels = await stack.prefetch(["foo==1.0", "bar==1.0"], settings)
        assert len(wheels) == 2
        assert all(r.status != 401 for r in fake_index.requests)
        assert all("Authorization" in r.headers for r in fake_index.requests)
        assert not any("Authorization" in r.headers for r in other_index.requests)
        assert all(s not in caplog.text for s in self._secrets())
        stored = b"".join(p.read_bytes() for p in stack.cache.root.rglob("*") if p.is_file())
        assert self.PASSWORD.encode() not in stored

    async def test_unreachable_index_without_leaking_the_password(
        self, stack: Stack, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        url = f"http://alice:{self.PASSWORD}@127.0.0.1:9/simple"
        with pytest.raises(NetworkError) as info:
            await stack.index.project_files(stack.settings(url), "foo", Freshness())
        assert "127.0.0.1:9" in str(info.value)
        for secret in self._secrets():
            assert secret not in str(info.value)
            assert secret not in caplog.text

    @pytest.mark.parametrize(
        ("netrc_password", "in_url"),
        [
            pytest.param(PASSWORD, False, id="netrc-only"),
            pytest.param("stale-" + PASSWORD, True, id="url-wins-over-netrc"),
        ],
    )
    async def test_from_netrc(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        *,
        netrc_password: str,
        in_url: bool,
    ) -> None:
        fake_index.auth = ("alice", self.PASSWORD)
        fake_index.add(DistSpec("foo", "1.0"))
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login alice password {netrc_password}\n")
        monkeypatch.setenv("NETRC", str(netrc))
        url = fake_index.simple_url
        if in_url:
            url = url.replace("://", f"://alice:{self.PASSWORD}@")
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(url))
        assert archive_problems(Path(wheels[0].archive)) == []
        assert all(r.status != 401 for r in fake_index.requests)

    @pytest.mark.parametrize(
        "password",
        [pytest.param(None, id="none"), pytest.param("wrong-" + PASSWORD, id="wrong")],
    )
    async def test_refused_without_leaking_the_password(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        caplog: pytest.LogCaptureFixture,
        password: str | None,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        fake_index.auth = ("alice", self.PASSWORD)
        fake_index.add(DistSpec("foo", "1.0"))
        url = fake_index.simple_url
        if password is not None:
            url = url.replace("://", f"://alice:{password}@")
        with pytest.raises(NetworkError) as info:
            await stack.prefetch(["foo==1.0"], stack.settings(url))
        assert info.value.status == 401
        message = str(info.value)
        assert "credentials" in message
        assert fake_index.url.split("://")[1] in message
        for secret in [*self._secrets(), password or self.PASSWORD]:
            assert secret not in message
            assert secret not in repr(info.value.data)
            assert secret not in caplog.text


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///srv/wheels/pkg-1.0-py3-none-any.whl", "/srv/wheels/pkg-1.0-py3-none-any.whl"),
        ("file:///srv/my%20wheels/simple/", "/srv/my wheels/simple"),
        # Decoded once: a literal "%20" in a directory name is spelled %2520.
        ("file:///srv/a%2520b/x.whl", "/srv/a%20b/x.whl"),
        ("file://localhost/srv/x.whl", "/srv/x.whl"),
    ],
)
def test_a_file_url_names_its_path(url: str, path: str) -> None:
    assert local_path(url) == Path(path)
