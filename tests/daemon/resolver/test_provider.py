"""The resolver's policy, end to end through the ``resolve`` service and a fake index.

Each test publishes a few projects on a fake index (wheels built on the fly), resolves with
the real services in this process and checks the pins, warnings or the explanation of a
failure: backtracking, markers, extras, pre-releases, yanked files, ``Requires-Python``,
constraints, overrides, resolution strategies, ``--exclude-newer``, ``--no-deps``, wheel
tags and source distributions.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burrowd.daemon.errors import DaemonError
from burrowd.protocol.errors import ErrorCode
from burrowd.protocol.messages import BuildOptions
from tests.resolve_e2e.harness import Compiler, open_compiler, pins, release
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex


@pytest.fixture
async def compiler(tmp_path: Path, fake_index: FakeIndex) -> AsyncIterator[Compiler]:
    async with open_compiler(tmp_path, fake_index) as c:
        yield c


def explanation(error: DaemonError) -> str:
    """Return the derivation of a ``ResolutionImpossible``, checking its shape."""
    assert error.code == ErrorCode.RESOLUTION_IMPOSSIBLE, error.message
    assert error.message.startswith("No solution found when resolving dependencies:\n")
    text: str = error.data["explanation"]
    assert error.message.endswith(text)
    assert isinstance(error.data["tree"], dict)
    assert error.data["tree"]["text"]
    assert text.startswith("Because ")
    assert text.rstrip(".").endswith("we can conclude that your requirements are unsatisfiable")
    return text


class TestBacktracking:
    async def test_a_dependency_conflict_of_the_newest_version_selects_an_older_one(
        self, compiler: Compiler
    ) -> None:
        index = compiler.index
        release(index, "app==1.0", "lib<2")
        release(index, "app==2.0", "lib>=2")
        release(index, "lib==1.0")
        release(index, "lib==2.0", "helper<1")
        release(index, "helper==0.5")
        release(index, "helper==1.0")
        # app 2.0 needs lib 2.0, whose helper<1 contradicts helper>=1: back to app 1.0.
        assert await compiler.pins("app", "helper>=1") == {
            "app": "1.0",
            "lib": "1.0",
            "helper": "1.0",
        }
        assert await compiler.pins("app") == {"app": "2.0", "lib": "2.0", "helper": "0.5"}

    async def test_backjumps_over_many_versions(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "app==1.0", "lib")
        for minor in range(1, 12):
            release(index, f"app==1.{minor}", "lib<1")
        release(index, "lib==0.1")
        release(index, "lib==1.0")
        assert await compiler.pins("app", "lib>=1") == {"app": "1.0", "lib": "1.0"}

    async def test_diamond(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "top==1.0", "left", "right")
        release(index, "left==1.0", "base>=1,<3")
        release(index, "right==1.0", "base>=2")
        for version in ("1.0", "2.0", "2.5", "3.0"):
            release(index, f"base=={version}")
        result = await compiler.compile("top")
        assert pins(result) == {"top": "1.0", "left": "1.0", "right": "1.0", "base": "2.5"}
        (base,) = (p for p in result.packages if p.name == "base")
        assert [(v.kind, v.name) for v in base.via] == [("package", "left"), ("package", "right")]
        assert not base.direct

    async def test_a_dependency_missing_from_the_index_rules_out_the_version_needing_it(
        self, compiler: Compiler
    ) -> None:
        index = compiler.index
        release(index, "app==1.0")
        release(index, "app==2.0", "ghost>=1")
        assert await compiler.pins("app") == {"app": "1.0"}

    async def test_a_missing_transitive_dependency_is_explained(self, compiler: Compiler) -> None:
        release(compiler.index, "app==1.0", "ghost")
        text = explanation(await compiler.fail("app"))
        assert "ghost was not found on" in text
        assert "app depends on ghost" in text or "app==1.0 depends on ghost" in text

    async def test_a_missing_direct_requirement_is_package_not_found(
        self, compiler: Compiler
    ) -> None:
        release(compiler.index, "app==1.0")
        error = await compiler.fail("app", "nosuchthing")
        assert error.code == ErrorCode.PACKAGE_NOT_FOUND
        assert "'nosuchthing' was not found on" in error.message
        assert compiler.index.simple_url in error.message


class TestConflicts:
    async def test_explanation_names_the_packages_and_versions(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "a==1.0", "c<1")
        release(index, "a==2.0", "c<1")
        release(index, "b==1.0", "c>=2")
        release(index, "c==0.5")
        release(index, "c==2.0")
        text = explanation(await compiler.fail("a", "b"))
        assert "a==1.0 depends on c<1" in text or "a depends on c<1" in text, text
        assert "b==1.0 depends on c>=2" in text, text
        assert "you require a and b" in text, text

    async def test_two_direct_pins_in_conflict(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "a==2.0", "c<1")
        release(index, "b==1.0", "c>=2")
        release(index, "c==0.5")
        release(index, "c==2.0")
        text = explanation(await compiler.fail("a==2.0", "b==1.0"))
        lines = text.splitlines()
        assert lines[0].startswith("Because "), text
        assert "b==1.0 depends on c>=2" in lines[0], text
        assert "a==2.0 depends on c<1" in lines[0], text
        assert "you require a==2.0 and b==1.0" in lines[-1], text

    @pytest.mark.parametrize(
        ("requirements", "because"),
        [
            pytest.param(
                ["a>=1.5", "a<1.5"], "you require a>=1.5 and a<1.5", id="two-requirements"
            ),
            pytest.param(["a==1.0", "a==2.0"], "you require a==1.0 and a==2.0", id="two-pins"),
            pytest.param(["a>2,<1"], "you require a<1,>2, a range that holds no version", id="one"),
        ],
    )
    async def test_requirements_no_version_can_meet_are_quoted(
        self, compiler: Compiler, requirements: list[str], because: str
    ) -> None:
        release(compiler.index, "a==1.0")
        release(compiler.index, "a==2.0")
        text = explanation(await compiler.fail(*requirements))
        assert text == (
            f"Because {because}, we can conclude that your requirements are unsatisfiable."
        )

    async def test_a_dependency_range_of_many_versions_is_stated_once(
        self, compiler: Compiler
    ) -> None:
        # As pubgrub-rs does, facts "a 1.x needs c>=2" merge into one for all the versions.
        for minor in range(6):
            release(compiler.index, f"a==1.{minor}", "c>=2")
        release(compiler.index, "c==1.0")
        release(compiler.index, "c==2.0")
        text = explanation(await compiler.fail("a", "c<2"))
        assert len(text.splitlines()) <= 2, text
        assert text.count("depends on c>=2") == 1, text

    async def test_no_version_in_the_range(self, compiler: Compiler) -> None:
        release(compiler.index, "a==1.0")
        text = explanation(await compiler.fail("a>=5"))
        assert "there is no version of a>=5" in text
        assert "you require a>=5" in text

    @pytest.mark.parametrize(
        ("requirement", "fact"),
        [
            pytest.param("a>=2", "you require a>=2", id="direct"),
            pytest.param("x", "x depends on a>=2", id="transitive"),
        ],
    )
    async def test_a_requirement_against_a_constraint(
        self, compiler: Compiler, requirement: str, fact: str
    ) -> None:
        release(compiler.index, "a==1.0")
        release(compiler.index, "a==2.0")
        release(compiler.index, "x==1.0", "a>=2")
        compiler.write("constraints.txt", "# pins\na<2\n")
        text = explanation(await compiler.fail(requirement, constraint_files=["constraints.txt"]))
        assert "empty version range" not in text
        assert fact in text
        assert (
            "there is no version of a>=2 "
            "(1 version is excluded by the constraint a<2 from constraints.txt:2)"
        ) in text


class TestMarkers:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(
            fake_index,
            "app==1.0",
            'old ; python_version < "3.8"',
            'patch ; python_full_version >= "3.7.5"',
            'win ; sys_platform == "win32"',
            'mac ; sys_platform == "darwin"',
            'lin ; sys_platform == "linux" and platform_machine == "x86_64"',
        )
        for name in ("old", "patch", "win", "mac", "lin"):
            release(fake_index, f"{name}==1.0")

    @pytest.mark.parametrize(
        ("python_version", "platform", "expected"),
        [
            pytest.param("3.7", "linux", {"old", "lin"}, id="3.7-linux"),
            pytest.param("3.7.9", "linux", {"old", "patch", "lin"}, id="3.7.9-linux"),
            pytest.param("3.12", "linux", {"patch", "lin"}, id="3.12-linux"),
            pytest.param("3.12", "windows", {"patch", "win"}, id="3.12-windows"),
            pytest.param("3.12", "macos", {"patch", "mac"}, id="3.12-macos"),
        ],
    )
    async def test_dependency_markers_follow_the_target(
        self, compiler: Compiler, python_version: str, platform: str, expected: set[str]
    ) -> None:
        result = await compiler.compile(
            "app", python_version=python_version, python_platform=platform
        )
        assert set(pins(result)) == {"app", *expected}
        assert f"CPython {python_version}" in result.target
        assert f" on {platform} " in result.target

    @pytest.mark.parametrize(
        ("python_version", "expected"),
        [
            pytest.param("3.7", {"lin", "old"}, id="3.7"),
            pytest.param("3.12", {"lin"}, id="3.12"),
        ],
    )
    async def test_markers_of_direct_requirements(
        self, compiler: Compiler, python_version: str, expected: set[str]
    ) -> None:
        result = await compiler.compile(
            "lin ; sys_platform != 'emscripten'",
            "old ; python_version < '3.8'",
            "win ; sys_platform == 'win32'",
            python_version=python_version,
            python_platform="linux",
        )
        assert set(pins(result)) == expected
        markers = {p.name: p.marker for p in result.packages}
        # A marker stays on a pin that only requirements with that marker brought in.
        assert markers["lin"] == 'sys_platform != "emscripten"'
        assert 'lin==1.0 ; sys_platform != "emscripten"\n' in result.output
        if "old" in expected:
            assert markers["old"] == 'python_version < "3.8"'

    async def test_a_marker_is_dropped_when_a_package_also_needs_it(
        self, compiler: Compiler
    ) -> None:
        result = await compiler.compile(
            "app", "old ; python_version < '3.8'", python_version="3.7", python_platform="linux"
        )
        markers = {p.name: p.marker for p in result.packages}
        assert markers["old"] is None
        assert "old==1.0\n" in result.output


class TestPythonVersion:
    @pytest.mark.parametrize(
        ("python_version", "expected"),
        [
            pytest.param("3.7", "1.0", id="3.7-means-3.7.0"),
            pytest.param("3.7.9", "2.0", id="3.7.9"),
            pytest.param("3.12", "2.0", id="3.12"),
        ],
    )
    async def test_requires_python_is_evaluated_for_the_given_version(
        self, compiler: Compiler, python_version: str, expected: str
    ) -> None:
        release(compiler.index, "lib==1.0")
        release(compiler.index, "lib==2.0", python=">=3.7.5")
        assert await compiler.pins("lib", python_version=python_version) == {"lib": expected}

    async def test_the_newest_version_needing_a_newer_python_is_skipped(
        self, compiler: Compiler
    ) -> None:
        index = compiler.index
        release(index, "lib==1.0", python=">=3.7")
        release(index, "lib==2.0", python=">=3.9")
        release(index, "lib==2.1", python=">=3.9")
        assert await compiler.pins("lib", python_version="3.8") == {"lib": "1.0"}
        # The page told: the metadata of the versions it ruled out was never fetched.
        assert not [h for h in index.hits if h.startswith("/files/lib-2")]
        assert await compiler.pins("lib", python_version="3.12") == {"lib": "2.1"}

    async def test_requires_python_only_in_the_metadata(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "lib==1.0")
        release(index, "lib==2.0", python=">=3.9", requires_python=None)
        assert await compiler.pins("lib", python_version="3.8") == {"lib": "1.0"}
        assert index.hits["/files/lib-2.0-py3-none-any.whl.metadata"] == 1

    async def test_explanations_of_requires_python(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "page==2.0", python=">=3.9")
        release(index, "page==2.1", python=">=3.9")
        release(index, "meta==2.0", python=">=3.10", requires_python=None)
        text = explanation(await compiler.fail("page>=2", python_version="3.8"))
        assert "there is no version of page>=2 (2 versions require Python >=3.9)" in text
        text = explanation(await compiler.fail("meta>=2", python_version="3.8"))
        assert "meta==2.0 is unavailable: it requires Python >=3.10" in text

    @pytest.mark.parametrize(
        "value", [pytest.param("three", id="word"), pytest.param("3", id="major")]
    )
    async def test_an_invalid_python_version_is_refused(
        self, compiler: Compiler, value: str
    ) -> None:
        release(compiler.index, "lib==1.0")
        error = await compiler.fail("lib", python_version=value)
        assert error.code == ErrorCode.INTERPRETER_NOT_FOUND
        assert f"--python-version {value}" in error.message


class TestExtras:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(
            fake_index,
            "web==1.0",
            "core",
            'aio ; extra == "async"',
            'uvloop ; extra == "async" and sys_platform == "win32"',
            'legacy ; extra == "old" and python_version < "3.8"',
        )
        release(fake_index, "plain==1.0")
        release(fake_index, "app==1.0", "web[async]>=1")
        for name in ("core", "aio", "uvloop", "legacy"):
            release(fake_index, f"{name}==1.0")

    async def test_an_extra_pulls_its_dependencies(self, compiler: Compiler) -> None:
        result = await compiler.compile("web[async]", python_platform="linux")
        assert pins(result) == {"web": "1.0", "core": "1.0", "aio": "1.0"}
        (web,) = (p for p in result.packages if p.name == "web")
        assert web.extras == ["async"]
        (aio,) = (p for p in result.packages if p.name == "aio")
        assert [(v.kind, v.name) for v in aio.via] == [("package", "web")]
        assert not result.warnings

    async def test_without_the_extra(self, compiler: Compiler) -> None:
        assert await compiler.pins("web") == {"web": "1.0", "core": "1.0"}

    async def test_an_extra_of_a_dependency(self, compiler: Compiler) -> None:
        assert set(await compiler.pins("app", python_platform="windows")) == {
            "app",
            "web",
            "core",
            "aio",
            "uvloop",
        }

    async def test_an_extra_whose_markers_do_not_hold_adds_nothing(
        self, compiler: Compiler
    ) -> None:
        result = await compiler.compile("web[old]", python_version="3.12")
        assert pins(result) == {"web": "1.0", "core": "1.0"}
        assert not result.warnings

    @pytest.mark.parametrize(
        ("requirement", "warning"),
        [
            pytest.param("web[nope]", "web==1.0 has no extra 'nope'", id="declares-others"),
            pytest.param("plain[nope]", "plain==1.0 has no extra 'nope'", id="declares-none"),
        ],
    )
    async def test_an_extra_that_does_not_exist_gives_a_warning(
        self, compiler: Compiler, requirement: str, warning: str
    ) -> None:
        result = await compiler.compile(requirement)
        assert result.warnings == [warning]
        assert "aio" not in pins(result)


class TestPrereleases:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        for pin in ("mixed==1.0", "mixed==2.0b1", "onlypre==1.0a1", "onlypre==1.0b2"):
            release(fake_index, pin)

    @pytest.mark.parametrize(
        ("mode", "requirement", "expected"),
        [
            pytest.param(None, "mixed", "1.0", id="default-stable-first"),
            pytest.param(None, "mixed>=2.0b1", "2.0b1", id="default-explicit"),
            pytest.param(None, "onlypre", "1.0b2", id="default-if-necessary"),
            pytest.param("disallow", "mixed", "1.0", id="disallow"),
            pytest.param("allow", "mixed", "2.0b1", id="allow"),
            pytest.param("allow", "onlypre", "1.0b2", id="allow-onlypre"),
            pytest.param("if-necessary", "mixed", "1.0", id="if-necessary-stable"),
            pytest.param("if-necessary", "onlypre", "1.0b2", id="if-necessary-only-pre"),
            pytest.param("explicit", "mixed", "1.0", id="explicit-stable"),
            pytest.param("explicit", "mixed>=2.0b1", "2.0b1", id="explicit-named"),
            pytest.param("explicit", "onlypre==1.0a1", "1.0a1", id="explicit-pinned"),
        ],
    )
    async def test_modes(
        self, compiler: Compiler, mode: str | None, requirement: str, expected: str
    ) -> None:
        name = re.split("[<>=]", requirement, maxsplit=1)[0]
        assert await compiler.pins(requirement, prerelease=mode) == {name: expected}

    @pytest.mark.parametrize(
        ("mode", "requirement"),
        [
            pytest.param("disallow", "onlypre", id="disallow"),
            pytest.param("explicit", "onlypre", id="explicit-not-named"),
            pytest.param("disallow", "mixed>=2.0b1", id="disallow-even-named"),
        ],
    )
    async def test_modes_that_find_nothing(
        self, compiler: Compiler, mode: str, requirement: str
    ) -> None:
        text = explanation(await compiler.fail(requirement, prerelease=mode))
        assert "only pre-releases match" in text
        assert "--prerelease allow" in text

    async def test_pre_in_a_requirements_file_allows_them(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "--pre\nmixed\n")
        assert await compiler.pins(files=["requirements.in"]) == {"mixed": "2.0b1"}

    async def test_a_constraint_naming_a_prerelease_makes_it_explicit(
        self, compiler: Compiler
    ) -> None:
        compiler.write("constraints.txt", "mixed>=2.0b1\n")
        assert await compiler.pins(
            "mixed", constraint_files=["constraints.txt"], prerelease="explicit"
        ) == {"mixed": "2.0b1"}

    async def test_an_unknown_mode_is_refused(self, compiler: Compiler) -> None:
        error = await compiler.fail("mixed", prerelease="sometimes")
        assert error.code == ErrorCode.INVALID_PARAMS
        assert "--prerelease 'sometimes'" in error.message


class TestYanked:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(fake_index, "lib==1.0")
        release(fake_index, "lib==2.0", yanked="it deletes your files")
        release(fake_index, "app==1.0", "lib==2.0")

    async def test_a_yanked_version_is_skipped(self, compiler: Compiler) -> None:
        result = await compiler.compile("lib")
        assert pins(result) == {"lib": "1.0"}
        assert not result.warnings

    async def test_an_exact_pin_uses_it_with_a_warning(self, compiler: Compiler) -> None:
        result = await compiler.compile("lib==2.0")
        assert pins(result) == {"lib": "2.0"}
        assert result.packages[0].yanked
        assert result.warnings == [
            "lib==2.0 is yanked (it deletes your files); using it because it is pinned with =="
        ]

    async def test_an_exact_constraint_counts_as_a_pin(self, compiler: Compiler) -> None:
        compiler.write("constraints.txt", "lib==2.0\n")
        result = await compiler.compile("lib", constraint_files=["constraints.txt"])
        assert pins(result) == {"lib": "2.0"}
        assert len(result.warnings) == 1

    @pytest.mark.parametrize(
        "requirement",
        [
            pytest.param("lib>=2", id="range"),
            pytest.param("app", id="pinned-by-a-dependency"),
        ],
    )
    async def test_otherwise_it_is_never_chosen(self, compiler: Compiler, requirement: str) -> None:
        text = explanation(await compiler.fail(requirement))
        assert "1 version yanked (allowed only with an exact == pin)" in text


class TestConstraints:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(fake_index, "app==1.0", "lib>=1")
        for version in ("1.0", "2.0", "3.0"):
            release(fake_index, f"lib=={version}")
        release(fake_index, "unrelated==1.0")

    async def test_constraints_narrow_versions_without_adding_packages(
        self, compiler: Compiler
    ) -> None:
        compiler.write("constraints.txt", "lib<3\nunrelated==1.0\n")
        result = await compiler.compile("app", constraint_files=["constraints.txt"])
        assert pins(result) == {"app": "1.0", "lib": "2.0"}
        (lib,) = (p for p in result.packages if p.name == "lib")
        assert {(v.kind, v.name, v.line) for v in lib.via} == {
            ("package", "app", None),
            ("constraint", "constraints.txt", 1),
        }

    async def test_a_constraint_in_a_requirements_file(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "app\n-c constraints.txt\n")
        compiler.write("constraints.txt", "lib==1.0\n")
        assert await compiler.pins(files=["requirements.in"]) == {"app": "1.0", "lib": "1.0"}


class TestOverrides:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(fake_index, "old-app==1.0", "lib<2")
        release(fake_index, "new-app==1.0", "lib>=3")
        for version in ("1.0", "2.0", "3.0", "4.0"):
            release(fake_index, f"lib=={version}")

    async def test_without_an_override_the_bounds_conflict(self, compiler: Compiler) -> None:
        text = explanation(await compiler.fail("old-app", "new-app"))
        assert "lib<2" in text
        assert "lib>=3" in text

    async def test_an_override_replaces_every_dependency_on_the_package(
        self, compiler: Compiler
    ) -> None:
        compiler.write("overrides.txt", "lib>=2,<4\n")
        result = await compiler.compile("old-app", "new-app", override_files=["overrides.txt"])
        assert pins(result) == {"old-app": "1.0", "new-app": "1.0", "lib": "3.0"}
        (lib,) = (p for p in result.packages if p.name == "lib")
        assert ("override", "overrides.txt", 1) in {(v.kind, v.name, v.line) for v in lib.via}
        assert "#   --override overrides.txt (line 1)" in result.output

    async def test_an_override_replaces_a_direct_requirement_too(self, compiler: Compiler) -> None:
        compiler.write("overrides.txt", "lib==2.0\n")
        assert await compiler.pins("lib<2", override_files=["overrides.txt"]) == {"lib": "2.0"}

    async def test_an_override_does_not_add_a_package(self, compiler: Compiler) -> None:
        compiler.write("overrides.txt", "lib==2.0\n")
        assert await compiler.pins("new-app", override_files=["overrides.txt"]) == {
            "new-app": "1.0",
            "lib": "2.0",
        }
        release(compiler.index, "alone==1.0")
        assert await compiler.pins("alone", override_files=["overrides.txt"]) == {"alone": "1.0"}

    async def test_an_override_whose_marker_does_not_hold_removes_the_package(
        self, compiler: Compiler
    ) -> None:
        # uv's reading: the override replaces every requirement on lib, and for this
        # target it says nothing, so nobody requires lib.
        compiler.write("overrides.txt", 'lib==2.0 ; python_version < "3"\n')
        overridden = await compiler.pins("old-app", "lib", override_files=["overrides.txt"])
        assert overridden == {"old-app": "1.0"}
        compiler.write("overrides.txt", 'lib==2.0 ; python_version < "3"\nlib==4.0\n')
        assert await compiler.pins("old-app", override_files=["overrides.txt"]) == {
            "old-app": "1.0",
            "lib": "4.0",
        }


class TestResolutionStrategy:
    @pytest.mark.parametrize(
        ("mode", "expected"),
        [
            pytest.param("highest", {"app": "2.0", "lib": "2.0"}, id="highest"),
            pytest.param("lowest", {"app": "1.0", "lib": "1.0"}, id="lowest"),
            pytest.param("lowest-direct", {"app": "1.0", "lib": "2.0"}, id="lowest-direct"),
        ],
    )
    async def test_modes(self, compiler: Compiler, mode: str, expected: dict[str, str]) -> None:
        for pin in ("app==1.0", "app==2.0"):
            release(compiler.index, pin, "lib>=1")
        for pin in ("lib==0.5", "lib==1.0", "lib==2.0"):
            release(compiler.index, pin)
        assert await compiler.pins("app", resolution=mode) == expected

    async def test_lowest_respects_the_lower_bound(self, compiler: Compiler) -> None:
        for version in ("1.0", "1.5", "2.0"):
            release(compiler.index, f"lib=={version}")
        assert await compiler.pins("lib>1.0", resolution="lowest") == {"lib": "1.5"}

    async def test_an_unknown_mode_is_refused(self, compiler: Compiler) -> None:
        error = await compiler.fail("lib", resolution="random")
        assert error.code == ErrorCode.INVALID_PARAMS
        assert "--resolution 'random'" in error.message


class TestVersions:
    async def test_huge_version_segments(self, compiler: Compiler) -> None:
        for version in ("1.0.9", "1.0.20230101000000", "1.0.20230628214621"):
            release(compiler.index, f"nightly=={version}")
        assert await compiler.pins("nightly") == {"nightly": "1.0.20230628214621"}
        assert await compiler.pins("nightly<1.0.20230628214621") == {
            "nightly": "1.0.20230101000000"
        }
        assert await compiler.pins("nightly==1.0.20230101000000") == {
            "nightly": "1.0.20230101000000"
        }
        assert await compiler.pins("nightly<1.0.20230101000000") == {"nightly": "1.0.9"}

    async def test_versions_are_compared_normalized(self, compiler: Compiler) -> None:
        release(compiler.index, "lib==1.0")
        release(compiler.index, "lib==1.0.post1")
        assert await compiler.pins("lib==1.0") == {"lib": "1.0"}
        assert await compiler.pins("lib>=1.0.post0") == {"lib": "1.0.post1"}
        # PEP 440: ">1.0" excludes the post-releases of 1.0.
        assert await compiler.pins("lib", "lib>0.9") == {"lib": "1.0.post1"}
        assert "there is no version of lib>1.0" in explanation(await compiler.fail("lib>1.0"))
        assert await compiler.pins("lib===1.0") == {"lib": "1.0"}


class TestExcludeNewer:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        release(fake_index, "lib==1.0", upload_time=datetime(2020, 6, 1, tzinfo=UTC))
        release(fake_index, "lib==2.0", upload_time=datetime(2022, 6, 1, 12, tzinfo=UTC))

    @pytest.mark.parametrize(
        ("cutoff", "expected"),
        [
            pytest.param(None, "2.0", id="none"),
            pytest.param("2021-01-01", "1.0", id="date"),
            pytest.param("2022-06-01T11:59:59Z", "1.0", id="just-before"),
            pytest.param("2022-06-01T12:00:01Z", "2.0", id="just-after"),
            pytest.param("2022-06-01T14:00:01+02:00", "2.0", id="offset"),
        ],
    )
    async def test_files_uploaded_later_are_ignored(
        self, compiler: Compiler, cutoff: str | None, expected: str
    ) -> None:
        assert await compiler.pins("lib", exclude_newer=cutoff) == {"lib": expected}

    async def test_explanation(self, compiler: Compiler) -> None:
        text = explanation(await compiler.fail("lib>=2", exclude_newer="2021-01-01"))
        assert "1 version uploaded after --exclude-newer" in text

    async def test_an_index_without_upload_times_is_kept_with_a_warning(
        self, compiler: Compiler
    ) -> None:
        compiler.index.pep700 = False  # an old mirror: no upload-time in its pages
        result = await compiler.compile("lib", exclude_newer="2021-01-01")
        assert pins(result) == {"lib": "2.0"}
        assert result.warnings == [
            f"{compiler.index.simple_url}/ gives no upload times, so --exclude-newer cannot "
            "judge its files and keeps them"
        ]
        dated = await compiler.compile("lib")
        assert dated.warnings == []

    async def test_an_invalid_date_is_refused(self, compiler: Compiler) -> None:
        error = await compiler.fail("lib", exclude_newer="last tuesday")
        assert error.code == ErrorCode.INVALID_PARAMS
        assert error.data == {"path": "$.exclude_newer"}
        assert "--exclude-newer 'last tuesday' is not a date" in error.message


class TestNoDeps:
    async def test_only_the_requirements_are_pinned(self, compiler: Compiler) -> None:
        release(compiler.index, "app==1.0", "lib", "other")
        release(compiler.index, "lib==1.0")
        assert await compiler.pins("app", no_deps=True) == {"app": "1.0"}
        assert await compiler.pins("app", "lib", no_deps=True) == {"app": "1.0", "lib": "1.0"}
        # Nothing of the dependencies was even looked up.
        assert "/simple/other/" not in compiler.index.hits

    async def test_an_extra_adds_no_packages_either(self, compiler: Compiler) -> None:
        release(compiler.index, "web==1.0", "core", 'aio ; extra == "async"')
        release(compiler.index, "aio==1.0")
        result = await compiler.compile("web[async]", no_deps=True)
        assert pins(result) == {"web": "1.0"}
        assert result.packages[0].extras == ["async"]


class TestWheelTags:
    async def test_a_version_with_only_wheels_for_another_python_is_unusable(
        self, compiler: Compiler
    ) -> None:
        release(compiler.index, "native==2.0", tag="cp312-cp312-manylinux_2_17_x86_64")
        text = explanation(
            await compiler.fail("native", python_version="3.11", python_platform="linux")
        )
        assert "there is no version of native" in text
        assert "1 version has no wheel for CPython 3.11.0 on linux x86_64" in text
        result = await compiler.compile("native", python_version="3.12", python_platform="linux")
        assert result.packages[0].filename == "native-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"

    async def test_an_older_version_with_a_compatible_wheel_is_used(
        self, compiler: Compiler
    ) -> None:
        release(compiler.index, "native==1.0")
        release(compiler.index, "native==2.0", tag="cp312-cp312-manylinux_2_17_x86_64")
        assert await compiler.pins("native", python_version="3.11") == {"native": "1.0"}

    @pytest.mark.parametrize(
        ("platform", "filename"),
        [
            pytest.param(
                "x86_64-manylinux_2_28",
                "native-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                id="linux",
            ),
            pytest.param("windows", "native-1.0-cp312-cp312-win_amd64.whl", id="windows"),
            pytest.param("macos", "native-1.0-cp312-cp312-macosx_11_0_arm64.whl", id="macos"),
            pytest.param(
                "aarch64-unknown-linux-musl", "native-1.0-py3-none-any.whl", id="fallback"
            ),
        ],
    )
    async def test_the_best_wheel_for_the_platform_is_chosen(
        self, compiler: Compiler, platform: str, filename: str
    ) -> None:
        for tag in (
            "py3-none-any",
            "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "cp312-cp312-win_amd64",
            "cp312-cp312-macosx_11_0_arm64",
        ):
            release(compiler.index, "native==1.0", tag=tag)
        result = await compiler.compile("native", python_version="3.12", python_platform=platform)
        assert result.packages[0].filename == filename


class TestSourceDistributions:
    async def test_static_metadata_of_an_sdist_only_version(self, compiler: Compiler) -> None:
        index = compiler.index
        index.add(DistSpec("src", "1.0", requires_dist=["lib>=2"]), wheel=False, sdist=True)
        release(index, "lib==1.0")
        release(index, "lib==2.0")
        result = await compiler.compile("src")
        assert pins(result) == {"src": "1.0", "lib": "2.0"}
        assert result.packages[1].filename == "src-1.0.tar.gz"

    async def test_a_wheel_is_preferred_to_the_sdist(self, compiler: Compiler) -> None:
        compiler.index.add(DistSpec("both", "1.0"), sdist=True)
        result = await compiler.compile("both")
        assert result.packages[0].filename == "both-1.0-py3-none-any.whl"

    async def test_no_binary_takes_the_sdist(self, compiler: Compiler) -> None:
        compiler.index.add(DistSpec("both", "1.0"), sdist=True)
        result = await compiler.compile("both", no_binary=["both"])
        assert result.packages[0].filename == "both-1.0.tar.gz"

    async def test_only_binary_skips_sdist_only_versions(self, compiler: Compiler) -> None:
        release(compiler.index, "mixed==1.0")
        compiler.index.add(DistSpec("mixed", "2.0"), wheel=False, sdist=True)
        assert await compiler.pins("mixed") == {"mixed": "2.0"}
        assert await compiler.pins("mixed", only_binary=[":all:"]) == {"mixed": "1.0"}
        # A name given to --no-binary wins over --only-binary :all: (pip's rule).
        assert await compiler.pins("mixed", only_binary=[":all:"], no_binary=["mixed"]) == {
            "mixed": "2.0"
        }

    async def test_only_binary_explains_a_sdist_only_project(self, compiler: Compiler) -> None:
        compiler.index.add(DistSpec("srconly", "1.0"), wheel=False, sdist=True)
        error = await compiler.fail("srconly", only_binary=["srconly"])
        assert error.code == ErrorCode.RESOLUTION_IMPOSSIBLE
        assert "--only-binary" in error.message

    async def test_dynamic_metadata_is_built(self, compiler: Compiler) -> None:
        compiler.index.add(
            DistSpec("dyn", "1.0", requires_dist=["lib"]),
            wheel=False,
            sdist=True,
            static_metadata=False,
        )
        release(compiler.index, "lib==1.0")
        assert await compiler.pins("dyn") == {"dyn": "1.0", "lib": "1.0"}

    async def test_a_backend_the_index_lacks_fails_the_build_naming_it(
        self, compiler: Compiler
    ) -> None:
        compiler.index.add(
            DistSpec("dyn", "1.0", requires_dist=["lib"]),
            wheel=False,
            sdist=True,
            static_metadata=False,
            backend="setup.py",
        )
        error = await compiler.fail("dyn")
        assert error.code == ErrorCode.BUILD_FAILED
        assert error.message.startswith("building dyn-1.0.tar.gz failed")
        assert "setuptools>=40.8.0" in error.message
        assert "'setuptools' was not found" in error.message

    async def test_no_build_passes_over_versions_without_a_wheel(self, compiler: Compiler) -> None:
        # As in uv: a version with only an sdist is unavailable, so an older one with a
        # wheel is chosen instead of the resolution ending at the first sdist.
        release(compiler.index, "dyn==1.0")
        compiler.index.add(DistSpec("dyn", "2.0"), wheel=False, sdist=True, static_metadata=False)
        assert await compiler.pins("dyn", build=BuildOptions(no_build=True)) == {"dyn": "1.0"}
        error = await compiler.fail("dyn>=2", build=BuildOptions(no_build=True))
        assert error.code == ErrorCode.RESOLUTION_IMPOSSIBLE
        assert "has no wheel, and --no-build forbids building one" in error.message


class TestReviewFindings:
    async def test_disallow_wins_over_a_prerelease_pin_of_the_output_file(
        self, compiler: Compiler
    ) -> None:
        release(compiler.index, "lib==1.0")
        release(compiler.index, "lib==2.0b1")
        compiler.write("out.txt", "lib==2.0b1\n")
        result = await compiler.compile(
            "lib", prerelease="disallow", output_file="out.txt", dry_run=True
        )
        assert pins(result) == {"lib": "1.0"}

    async def test_exclude_newer_judges_each_file(self, compiler: Compiler) -> None:
        py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        release(compiler.index, "lib==1.0", upload_time=datetime(2020, 1, 1, tzinfo=UTC))
        release(
            compiler.index,
            "lib==1.0",
            tag=f"{py}-none-any",
            upload_time=datetime(2023, 1, 1, tzinfo=UTC),
        )
        result = await compiler.compile("lib", exclude_newer="2021-01-01")
        (lib,) = result.packages
        # The cp wheel, added to the release later, did not exist at the cut-off.
        assert lib.filename == "lib-1.0-py3-none-any.whl"

    async def test_an_abandoned_prefetch_logs_no_lost_exception(
        self, compiler: Compiler, caplog: pytest.LogCaptureFixture
    ) -> None:
        # app's dependencies are added (missingpkg prefetched), then the conflict on lib ends
        # the solve with no await in between; the orphaned page load ends in a 404.
        release(compiler.index, "app==1.0", "lib>=2", "missingpkg")
        release(compiler.index, "lib==1.0")
        release(compiler.index, "lib==2.0")
        caplog.set_level(logging.ERROR, logger="asyncio")
        await compiler.fail("app", "lib<2")
        await asyncio.sleep(0.5)
        gc.collect()
        lost = [r.getMessage().splitlines()[0] for r in caplog.records if r.name == "asyncio"]
        assert not lost


class TestPrefetch:
    async def test_dependencies_of_the_likely_version_load_while_the_solver_waits(
        self, compiler: Compiler
    ) -> None:
        # The solver decides the pinned ``slow`` first and waits a second for its page;
        # meanwhile the prefetch walks a -> b -> c on its own, from each likely version's
        # metadata, instead of one level per solver step.
        release(compiler.index, "slow==1.0")
        release(compiler.index, "a==1.0", "b")
        release(compiler.index, "b==1.0", "c")
        release(compiler.index, "c==1.0")
        compiler.index.fault("/simple/slow/", "hang", seconds=1.0)
        assert await compiler.pins("slow==1.0", "a") == {
            "slow": "1.0",
            "a": "1.0",
            "b": "1.0",
            "c": "1.0",
        }
        order = [r.path for r in compiler.index.requests]
        assert order.index("/simple/c/") < order.index("/simple/slow/")

    async def test_no_deps_prefetches_no_dependency(self, compiler: Compiler) -> None:
        release(compiler.index, "a==1.0", "b")
        release(compiler.index, "b==1.0", "c")
        assert await compiler.pins("a", no_deps=True) == {"a": "1.0"}
        await asyncio.sleep(0.2)
        assert "/simple/b/" not in [r.path for r in compiler.index.requests]
