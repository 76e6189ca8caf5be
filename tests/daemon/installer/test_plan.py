"""The install plan: keep, install (and why), remove; pure, from what a scan found."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from burrowd.daemon.installer.environment import SEED_PACKAGES
from burrowd.daemon.installer.installed import (
    ArchiveInfo,
    DirectUrl,
    DirInfo,
    InstalledDist,
    SitePackages,
)
from burrowd.daemon.installer.plan import Plan, Wanted, make_plan, same_url

WHEEL_URL = "file:///wheels/foo-1.0-py3-none-any.whl"
HTTP_URL = "https://files.example/foo-1.0-py3-none-any.whl"
SHA_A = "a" * 64
SHA_B = "b" * 64


def dist(name: str, version: str, direct_url: DirectUrl | None = None) -> InstalledDist:
    """Return an installed distribution (the plan never touches its path)."""
    return InstalledDist(
        name=canonicalize_name(name),
        version=version,
        path=Path("/site") / f"{name}-{version}.dist-info",
        direct_url=direct_url,
    )


def want(
    name: str,
    version: str | None = None,
    *,
    specifier: str = "",
    url: str | None = None,
    sha256: str | None = None,
    editable: bool = False,
) -> Wanted:
    return Wanted(
        name=canonicalize_name(name),
        version=Version(version) if version is not None else None,
        specifier=SpecifierSet(specifier),
        url=url,
        sha256=sha256,
        editable=editable,
    )


def archive(url: str, sha256: str | None) -> DirectUrl:
    hashes = {"sha256": sha256} if sha256 is not None else None
    return DirectUrl(url=url, archive_info=ArchiveInfo(hashes=hashes))


def decisions(plan: Plan) -> dict[str, str]:
    """Return ``{name: "keep" | "install:<reason>" | "remove:<reason>"}``."""
    out = {str(s.name): "keep" for s in plan.keep}
    out.update({str(s.name): f"install:{s.reason}" for s in plan.install})
    out.update({str(s.name): f"remove:{s.reason}" for s in plan.remove})
    return out


@pytest.mark.parametrize(
    ("wanted", "installed", "expected"),
    [
        pytest.param(want("foo", "1.0"), [], "install:missing", id="missing"),
        pytest.param(want("foo", "1.0"), [dist("foo", "1.0")], "keep", id="same-version"),
        pytest.param(
            want("foo", "1.0"), [dist("foo", "1.0.0")], "keep", id="same-version-other-spelling"
        ),
        pytest.param(want("foo", "2.0"), [dist("foo", "1.0")], "install:version", id="upgrade"),
        pytest.param(want("foo", "1.0"), [dist("foo", "2.0")], "install:version", id="downgrade"),
        pytest.param(
            want("foo", specifier=">=1,<2"), [dist("foo", "1.5")], "keep", id="range-satisfied"
        ),
        pytest.param(
            want("foo", specifier=">=2"), [dist("foo", "1.5")], "install:version", id="range-not"
        ),
        pytest.param(
            want("foo", specifier=">=1"), [dist("foo", "2.0b1")], "keep", id="range-pre-release"
        ),
        pytest.param(want("foo"), [dist("foo", "0.1")], "keep", id="any-version"),
        pytest.param(
            want("foo", specifier=">=1"),
            [dist("foo", "not-a-version")],
            "install:version",
            id="invalid-installed-version",
        ),
        pytest.param(
            want("foo", "1.0"),
            [dist("foo", "1.0", archive(HTTP_URL, None))],
            "keep",
            id="registry-pin-met-by-url-install",
        ),
        pytest.param(
            want("foo", "1.0"),
            [dist("foo", "1.0", DirectUrl(url="file:///src/foo", dir_info=DirInfo(editable=True)))],
            "keep",
            id="registry-pin-met-by-editable",
        ),
        pytest.param(
            want("foo", "1.0", url=HTTP_URL),
            [dist("foo", "1.0")],
            "install:source",
            id="url-vs-registry-install",
        ),
        pytest.param(
            want("foo", "1.0", url=HTTP_URL),
            [
                dist(
                    "foo",
                    "1.0",
                    archive(
                        "https://user:pw@files.example/foo-1.0-py3-none-any.whl#sha256=x", None
                    ),
                )
            ],
            "keep",
            id="same-url-auth-and-fragment-aside",
        ),
        pytest.param(
            want("foo", "1.0", url=HTTP_URL),
            [dist("foo", "1.0", archive("https://mirror.example/foo-1.0-py3-none-any.whl", None))],
            "install:source",
            id="other-url",
        ),
        pytest.param(
            want("foo", "1.0", url="file:///src/foo", editable=True),
            [dist("foo", "1.0", DirectUrl(url="file:///src/foo", dir_info=DirInfo()))],
            "install:source",
            id="editable-wanted-plain-installed",
        ),
        pytest.param(
            want("foo", "1.0", url=WHEEL_URL, sha256=SHA_A),
            [dist("foo", "1.0", archive(WHEEL_URL, SHA_A))],
            "keep",
            id="local-wheel-unchanged",
        ),
        pytest.param(
            want("foo", "1.0", url=WHEEL_URL, sha256=SHA_B),
            [dist("foo", "1.0", archive(WHEEL_URL, SHA_A))],
            "install:source",
            id="local-wheel-changed",
        ),
        pytest.param(
            want("foo", "1.0", url=WHEEL_URL, sha256=SHA_A),
            [dist("foo", "1.0", archive(WHEEL_URL, None))],
            "install:source",
            id="local-wheel-no-recorded-digest",
        ),
        pytest.param(
            want("foo", "1.0", url=HTTP_URL, sha256=SHA_A),
            [dist("foo", "1.0", archive(HTTP_URL, None))],
            "keep",
            id="remote-url-no-recorded-digest",
        ),
        pytest.param(
            want("foo", "1.0", url=HTTP_URL, sha256=SHA_A),
            [dist("foo", "1.0", archive(HTTP_URL, SHA_B))],
            "install:source",
            id="remote-url-other-digest",
        ),
        pytest.param(
            want("foo", "1.0"),
            [dist("foo", "1.0"), dist("foo", "2.0")],
            "install:duplicate",
            id="duplicate",
        ),
    ],
)
def test_decision(wanted: Wanted, installed: list[InstalledDist], expected: str) -> None:
    plan = make_plan([wanted], SitePackages(installed), exact=False)
    assert decisions(plan) == {"foo": expected}
    step = [*plan.keep, *plan.install][0]
    assert step.wanted is wanted
    assert step.installed == installed
    assert plan.empty is (expected == "keep")


class TestReinstall:
    def test_reinstall_everything(self) -> None:
        site = SitePackages([dist("foo", "1.0"), dist("bar", "1.0")])
        plan = make_plan(
            [want("foo", "1.0"), want("bar", "1.0")], site, exact=False, reinstall=True
        )
        assert decisions(plan) == {"foo": "install:reinstall", "bar": "install:reinstall"}

    def test_reinstall_some(self) -> None:
        site = SitePackages([dist("foo", "1.0"), dist("bar", "1.0")])
        plan = make_plan(
            [want("foo", "1.0"), want("bar", "1.0"), want("new", "1.0")],
            site,
            exact=False,
            reinstall_packages=frozenset({"bar"}),
        )
        assert decisions(plan) == {
            "foo": "keep",
            "bar": "install:reinstall",
            "new": "install:missing",
        }

    def test_a_duplicate_stays_a_duplicate_under_reinstall(self) -> None:
        site = SitePackages([dist("foo", "1.0"), dist("foo", "1.1")])
        plan = make_plan([want("foo", "1.0")], site, exact=False, reinstall=True)
        assert decisions(plan) == {"foo": "install:duplicate"}


class TestExact:
    def test_an_exact_plan_removes_what_is_not_wanted(self) -> None:
        site = SitePackages([dist("foo", "1.0"), dist("old", "0.1"), dist("pip", "24.0")])
        plan = make_plan([want("foo", "1.0")], site, exact=True)
        assert decisions(plan) == {
            "foo": "keep",
            "old": "remove:extraneous",
            "pip": "remove:extraneous",
        }
        assert [d.name for d in plan.removals()] == ["old", "pip"]

    def test_seeds_are_kept_when_asked(self) -> None:
        seeds = [dist("pip", "24.0"), dist("setuptools", "69.0"), dist("wheel", "0.42")]
        site = SitePackages([*seeds, dist("old", "0.1")])
        plan = make_plan([want("foo", "1.0")], site, exact=True, keep=SEED_PACKAGES)
        assert decisions(plan) == {
            "foo": "install:missing",
            "pip": "keep",
            "setuptools": "keep",
            "wheel": "keep",
            "old": "remove:extraneous",
        }
        kept = {str(s.name): s for s in plan.keep}
        assert kept["pip"].wanted is None
        assert kept["pip"].installed == [seeds[0]]

    def test_a_wanted_seed_is_planned_like_any_other(self) -> None:
        site = SitePackages([dist("pip", "24.0")])
        plan = make_plan([want("pip", "25.0")], site, exact=True, keep=SEED_PACKAGES)
        assert decisions(plan) == {"pip": "install:version"}

    def test_a_plan_that_is_not_exact_removes_nothing(self) -> None:
        site = SitePackages([dist("old", "0.1")])
        plan = make_plan([want("foo", "1.0")], site, exact=False)
        assert decisions(plan) == {"foo": "install:missing"}
        assert plan.remove == []

    def test_every_duplicate_of_an_extraneous_name_is_removed(self) -> None:
        dups = [dist("old", "0.1"), dist("old", "0.2")]
        plan = make_plan([], SitePackages(dups), exact=True)
        assert plan.removals() == dups

    def test_an_exact_plan_of_nothing_on_nothing_is_empty(self) -> None:
        plan = make_plan([], SitePackages([]), exact=True)
        assert plan.empty
        assert plan.removals() == []


def test_removals_and_previous_of_an_upgrade() -> None:
    old = dist("foo", "1.0")
    plan = make_plan([want("foo", "2.0")], SitePackages([old]), exact=False)
    (step,) = plan.install
    assert step.previous == "1.0"
    assert plan.removals() == [old]
    assert not plan.empty
    missing = make_plan([want("foo", "2.0")], SitePackages([]), exact=False)
    assert missing.install[0].previous is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param(HTTP_URL, HTTP_URL + "#sha256=abc", True, id="fragment"),
        pytest.param(HTTP_URL, HTTP_URL.replace("https://", "https://u:p@"), True, id="auth"),
        pytest.param(
            "https://Files.Example/x/", "https://files.example/x", True, id="host-case-slash"
        ),
        pytest.param("https://h:8443/x", "https://h/x", False, id="port"),
        pytest.param("https://h/x?a=1", "https://h/x?a=2", False, id="query"),
        pytest.param("https://h/x", "http://h/x", False, id="scheme"),
        pytest.param("file:///a/foo.whl", "file:///b/foo.whl", False, id="path"),
    ],
)
def test_same_url(a: str, b: str, same: bool) -> None:
    assert same_url(a, b) is same
    assert same_url(b, a) is same
