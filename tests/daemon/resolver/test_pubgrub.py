"""Tests for the PubGrub solver: pub's worked examples, the generator protocol, reports."""

from __future__ import annotations

import itertools
import json
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from burrowd.daemon.resolver.pubgrub import (
    ChooseVersion,
    GetDependencies,
    IncompatibilityKind,
    NoSolution,
    NoVersion,
    Unavailable,
    resolve_sync,
    solve,
)
from burrowd.daemon.resolver.ranges import VersionSet

ROOT = "root"
ROOT_VERSION = Version("1.0.0")
CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))

Index = dict[str, dict[Version, dict[str, VersionSet]]]


def versions_of(text: str) -> VersionSet:
    return VersionSet.full() if text == "*" else VersionSet.from_specifiers(text)


def parse_index(case: Mapping[str, Any]) -> Index:
    index: Index = {
        package: {
            Version(version): {name: versions_of(spec) for name, spec in dependencies.items()}
            for version, dependencies in releases.items()
        }
        for package, releases in case["index"].items()
    }
    index[ROOT] = {ROOT_VERSION: {name: versions_of(spec) for name, spec in case["root"].items()}}
    return index


def resolve_case(case: Mapping[str, Any]) -> dict[str, Version]:
    index = parse_index(case)
    unavailable = {
        (package, Version(version)): reason
        for package, versions in case.get("unavailable", {}).items()
        for version, reason in versions.items()
    }
    return resolve_sync(
        ROOT,
        ROOT_VERSION,
        {package: list(releases) for package, releases in index.items() if package != ROOT},
        {
            (package, version): dependencies
            for package, releases in index.items()
            for version, dependencies in releases.items()
        },
        unavailable=unavailable,
        no_version_reasons=case.get("no_version_reasons"),
    )


def assert_valid(index: Index, solution: Mapping[str, Version]) -> None:
    """Check that every selected version's dependencies are selected and in range."""
    assert solution[ROOT] == ROOT_VERSION
    for package, version in solution.items():
        for dependency, versions in index[package][version].items():
            assert dependency in solution, f"{package} {version} needs {dependency}"
            assert solution[dependency] in versions, f"{package} {version} needs {versions}"


class Driver:
    """Answer the solver's requests from an index, recording them."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.requests: list[ChooseVersion[str] | GetDependencies[str]] = []

    def run(self, **options: Any) -> dict[str, Version]:
        solver = solve(ROOT, ROOT_VERSION, **options)
        answer: Any = None
        while True:
            try:
                request = solver.send(answer) if self.requests else next(solver)
            except StopIteration as done:
                result: dict[str, Version] = done.value
                return result
            self.requests.append(request)
            if isinstance(request, ChooseVersion):
                releases = self.index.get(request.package, {})
                matching = [version for version in releases if version in request.allowed]
                answer = max(matching) if matching else NoVersion()
            else:
                answer = self.index[request.package][request.version]

    def chosen(self) -> list[str]:
        return [r.package for r in self.requests if isinstance(r, ChooseVersion)]


def index_from(releases: Mapping[str, Mapping[str, Mapping[str, str]]]) -> Index:
    root = releases[ROOT]["1.0.0"]
    packages = {name: dict(versions) for name, versions in releases.items() if name != ROOT}
    return parse_index({"index": packages, "root": root})


class TestCases:
    @pytest.mark.parametrize(
        "case", [pytest.param(json.loads(path.read_text()), id=path.stem) for path in CASES]
    )
    def test_case(self, case: dict[str, Any]) -> None:
        if "expect" in case:
            solution = resolve_case(case)
            assert_valid(parse_index(case), solution)
            expected = {package: Version(version) for package, version in case["expect"].items()}
            assert {p: v for p, v in solution.items() if p != ROOT} == expected
            return
        with pytest.raises(NoSolution) as failure:
            resolve_case(case)
        explanation = failure.value.explanation
        for fragment in case.get("error", []):
            assert fragment in explanation
        if "explanation" in case:
            assert explanation.splitlines() == case["explanation"]

    def test_every_case_states_an_outcome(self) -> None:
        assert len(CASES) >= 12
        for path in CASES:
            case = json.loads(path.read_text())
            assert ("expect" in case) != ("error" in case or "explanation" in case), path.name


class TestGeneratorProtocol:
    def test_root_dependencies_are_asked_for_first(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        assert next(solver) == GetDependencies(ROOT, ROOT_VERSION)
        with pytest.raises(StopIteration) as done:
            solver.send({})
        assert done.value.value == {ROOT: ROOT_VERSION}

    def test_choose_version_gets_the_allowed_set(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        request = solver.send(
            {"foo": VersionSet.from_specifiers(">=1.0"), "bar": VersionSet.from_specifiers("<3")}
        )
        assert request == ChooseVersion("foo", VersionSet.from_specifiers(">=1.0"))
        assert solver.send(Version("2.0")) == GetDependencies("foo", Version("2.0"))
        request = solver.send({"bar": VersionSet.from_specifiers(">=2")})
        assert request == ChooseVersion("bar", VersionSet.from_specifiers(">=2,<3"))
        assert solver.send(Version("2.5")) == GetDependencies("bar", Version("2.5"))
        with pytest.raises(StopIteration) as done:
            solver.send({})
        assert done.value.value == {
            ROOT: ROOT_VERSION,
            "foo": Version("2.0"),
            "bar": Version("2.5"),
        }

    def test_version_outside_the_allowed_set_is_rejected(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        solver.send({"foo": VersionSet.from_specifiers(">=1.0")})
        with pytest.raises(ValueError, match="not in the allowed set"):
            solver.send(Version("0.5"))

    def test_wrong_answer_types_are_rejected(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        solver.send({"foo": VersionSet.full()})
        with pytest.raises(TypeError, match="expected a Version or NoVersion"):
            solver.send("1.0")  # type: ignore[arg-type]

        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        with pytest.raises(TypeError, match="expected dependencies or Unavailable"):
            solver.send([("foo", VersionSet.full())])  # type: ignore[arg-type]

        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        with pytest.raises(TypeError, match="is not a VersionSet"):
            solver.send({"foo": ">=1"})  # type: ignore[dict-item]

    def test_root_is_never_chosen_and_dependencies_are_fetched_once(self) -> None:
        case = json.loads(
            (Path(__file__).parent / "cases" / "backjumping_over_many_versions.json").read_text()
        )
        driver = Driver(parse_index(case))
        driver.run()
        assert ROOT not in driver.chosen()
        fetched = [
            (r.package, r.version) for r in driver.requests if isinstance(r, GetDependencies)
        ]
        assert len(fetched) == len(set(fetched))

    def test_unavailable_versions_are_not_offered_again(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        assert solver.send({"foo": VersionSet.full()}) == ChooseVersion("foo", VersionSet.full())
        solver.send(Version("2.0"))
        request = solver.send(Unavailable("requires a build"))
        assert request == ChooseVersion("foo", ~VersionSet.exact(Version("2.0")))
        solver.send(Version("1.0"))
        with pytest.raises(StopIteration) as done:
            solver.send({})
        assert done.value.value["foo"] == Version("1.0")

    def test_package_identities_can_be_any_hashable(self) -> None:
        solver = solve(("root", 0), ROOT_VERSION)
        next(solver)
        request = solver.send({("foo", 1): VersionSet.full()})
        assert request == ChooseVersion(("foo", 1), VersionSet.full())
        solver.send(Version("1"))
        with pytest.raises(StopIteration) as done:
            solver.send({})
        assert done.value.value == {("root", 0): ROOT_VERSION, ("foo", 1): Version("1")}


class TestDecisionOrder:
    def test_earliest_discovered_first(self) -> None:
        index = index_from(
            {
                ROOT: {"1.0.0": {"a": "*", "b": "*"}},
                "a": {"1.0": {"c": "*"}},
                "b": {"1.0": {}},
                "c": {"1.0": {}},
            }
        )
        driver = Driver(index)
        driver.run()
        assert driver.chosen() == ["a", "b", "c"]

    def test_pinned_packages_first(self) -> None:
        index = index_from(
            {ROOT: {"1.0.0": {"a": ">=1", "b": "==1.0"}}, "a": {"1.0": {}}, "b": {"1.0": {}}}
        )
        driver = Driver(index)
        driver.run()
        assert driver.chosen() == ["b", "a"]

    def test_custom_priority(self) -> None:
        index = index_from(
            {
                ROOT: {"1.0.0": {"a": "*", "b": "*", "c": "==1.0"}},
                "a": {"1.0": {}},
                "b": {"1.0": {}},
                "c": {"1.0": {}},
            }
        )
        driver = Driver(index)
        seen: list[tuple[str, VersionSet]] = []

        def priority(package: str, allowed: VersionSet) -> int:
            seen.append((package, allowed))
            return {"a": 1, "b": 0, "c": 1}[package]

        driver.run(priority=priority)
        # b first, then a and c in discovery order: the custom key replaces "pinned first".
        assert driver.chosen() == ["b", "a", "c"]
        assert ("c", VersionSet.from_specifiers("==1.0")) in seen


class TestReports:
    def failure(self, name: str) -> NoSolution:
        case = json.loads((Path(__file__).parent / "cases" / f"{name}.json").read_text())
        with pytest.raises(NoSolution) as failure:
            resolve_case(case)
        return failure.value

    def test_message_is_the_explanation(self) -> None:
        failure = self.failure("linear_error_reporting")
        assert str(failure) == failure.explanation

    def test_root_cause_is_terminal(self) -> None:
        failure = self.failure("branching_error_reporting")
        terms = failure.incompatibility.terms
        assert set(terms) <= {ROOT}
        assert failure.incompatibility.kind is IncompatibilityKind.DERIVED

    def test_tree_mirrors_the_derivation(self) -> None:
        tree = self.failure("linear_error_reporting").tree
        assert json.loads(json.dumps(tree)) == tree
        assert tree["text"] == "your requirements are unsatisfiable"
        assert tree["causes"][1] == {
            "text": "you require baz>=1.0.0,<2.0.0",
            "kind": "dependency",
        }
        chain = tree["causes"][0]["causes"][0]
        assert chain["text"] == "foo>=1.0.0,<2.0.0 requires baz>=3.0.0,<4.0.0"
        assert [cause["text"] for cause in chain["causes"]] == [
            "foo>=1.0.0,<2.0.0 depends on bar>=2.0.0,<3.0.0",
            "bar>=2.0.0,<3.0.0 depends on baz>=3.0.0,<4.0.0",
        ]

    def test_tree_kinds(self) -> None:
        tree = self.failure("no_matching_version_with_reason").tree
        assert [cause["kind"] for cause in tree["causes"]] == ["no_versions", "dependency"]
        assert "only pre-releases match" in tree["causes"][0]["text"]
        tree = self.failure("unavailable_only_version").tree
        assert {cause["kind"] for cause in tree["causes"][0]["causes"]} == {
            "no_versions",
            "unavailable",
        }

    def test_root_depending_on_itself(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        with pytest.raises(NoSolution) as failure:
            solver.send({ROOT: VersionSet.from_specifiers(">=2")})
        assert failure.value.explanation == (
            "Because you require root>=2, we can conclude that your requirements are unsatisfiable."
        )
        assert failure.value.tree == {"text": "you require root>=2", "kind": "dependency"}

    def test_dependency_on_an_empty_set(self) -> None:
        solver = solve(ROOT, ROOT_VERSION)
        next(solver)
        with pytest.raises(NoSolution) as failure:
            solver.send({"foo": VersionSet.from_specifiers(">=2,<1")})
        assert failure.value.explanation == (
            "Because you require foo with an empty version range, we can conclude that your "
            "requirements are unsatisfiable."
        )


def check_tree(node: dict[str, Any], ids: set[int]) -> None:
    assert isinstance(node["text"], str)
    assert node["text"]
    if "kind" in node:
        assert node["kind"] in {"dependency", "no_versions", "unavailable", "root"}
        return
    if "ref" in node:
        assert node["ref"] in ids
        assert node["causes"] == []
        return
    if node.get("truncated"):
        assert node["causes"] == []
        return
    if "id" in node:
        ids.add(node["id"])
    assert len(node["causes"]) == 2
    for cause in node["causes"]:
        check_tree(cause, ids)


PACKAGES = ["a", "b", "c", "d"]
RELEASES = ["1.0", "2.0", "3.0"]
REQUIREMENTS = ["*", ">=2.0", "<2.0", "==1.0", "!=2.0", ">=3.0", ">=2,<1", "==4.0"]


@st.composite
def universes(draw: st.DrawFn) -> Index:
    releases: dict[str, dict[str, dict[str, str]]] = {}
    for package in PACKAGES:
        versions = draw(st.lists(st.sampled_from(RELEASES), min_size=0, max_size=3, unique=True))
        releases[package] = {
            version: draw(
                st.dictionaries(
                    st.sampled_from(PACKAGES), st.sampled_from(REQUIREMENTS), max_size=2
                )
            )
            for version in versions
        }
    root = draw(
        st.dictionaries(
            st.sampled_from(PACKAGES), st.sampled_from(REQUIREMENTS), min_size=1, max_size=3
        )
    )
    return index_from({ROOT: {"1.0.0": root}, **releases})


def brute_force_solvable(index: Index) -> bool:
    """Try every selection: each package absent or at one of its versions."""
    packages = [p for p in index if p != ROOT]
    choices = [[None, *index[p]] for p in packages]
    for selection in itertools.product(*choices):
        chosen: dict[str, Version] = {
            p: v for p, v in zip(packages, selection, strict=True) if v is not None
        }
        chosen[ROOT] = ROOT_VERSION
        if all(
            dependency in chosen and chosen[dependency] in versions
            for package, version in chosen.items()
            for dependency, versions in index[package][version].items()
        ):
            return True
    return False


class TestAgainstBruteForce:
    @settings(max_examples=200, deadline=None)
    @given(universes())
    def test_solver_is_sound_and_complete(self, index: Index) -> None:
        if brute_force_solvable(index):
            assert_valid(index, Driver(index).run())
            return
        with pytest.raises(NoSolution) as failure:
            Driver(index).run()
        assert failure.value.explanation.endswith("your requirements are unsatisfiable.")
        check_tree(json.loads(json.dumps(failure.value.tree)), set())


class TestScale:
    def test_a_large_graph_resolves(self) -> None:
        rng = random.Random(7)
        names = [f"pkg{n}" for n in range(120)]
        releases: dict[str, dict[str, dict[str, str]]] = {}
        for position, name in enumerate(names):
            later = names[position + 1 :]
            releases[name] = {
                f"{major}.{minor}.0": {
                    dependency: rng.choice([">=1.0", ">=1.2,<4", "!=2.1.0", "*"])
                    for dependency in rng.sample(later, min(5, len(later)))
                }
                for major in (1, 2, 3)
                for minor in range(5)
            }
        index = index_from({ROOT: {"1.0.0": dict.fromkeys(names[:10], ">=1.0")}, **releases})
        driver = Driver(index)
        solution = driver.run()
        assert_valid(index, solution)
        assert len(solution) > 100
        # Conflict-free: one choice and one dependency fetch per package.
        assert len(driver.requests) == 2 * (len(solution) - 1) + 1

    def test_a_long_failure_chain_needs_no_deep_recursion(self) -> None:
        # Every version of foo fails on its own: the derivation is hundreds of steps deep.
        count = 250
        releases: dict[str, dict[str, dict[str, str]]] = {
            "foo": {f"1.{n}": {"bar": f"=={n}.0"} for n in range(count)},
            "bar": {f"{n}.0": {"baz": ">=2"} for n in range(count)},
            "baz": {"1.0": {}, "2.0": {}},
        }
        index = index_from({ROOT: {"1.0.0": {"baz": "<2", "foo": "*"}}, **releases})
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(200)
        try:
            with pytest.raises(NoSolution) as failure:
                Driver(index).run()
        finally:
            sys.setrecursionlimit(limit)
        lines = failure.value.explanation.splitlines()
        assert len(lines) == count + 1
        assert lines[100] == (
            "And because foo==1.100 depends on bar==100.0 which depends on baz>=2, "
            "foo<1.101 requires baz>=2."
        )
        # Serializable with json's default recursion limit: very deep trees are cut short.
        text = json.dumps(failure.value.tree)
        assert '"truncated": true' in text
