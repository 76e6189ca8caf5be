"""Tests for ``VersionSet``: agreement with packaging's specifiers, and exact set algebra."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from burrowd.daemon.resolver.ranges import VersionSet

# Versions that sit on the edges PEP 440 cares about: dev-only before pre-releases, locals
# after their public version, post-releases, trailing zeros, epochs and huge segments.
TRICKY = [
    "0",
    "0.dev0",
    "0a0",
    "0.0.1",
    "1.0.dev0",
    "1.0.dev0+x",
    "1.0.dev1",
    "1.0a1.dev0",
    "1.0a1",
    "1.0a1+x",
    "1.0a1.post1.dev2",
    "1.0a1.post1",
    "1.0a2.dev0",
    "1.0b1",
    "1.0rc1",
    "1.0",
    "1.0.0",
    "1.0+local",
    "1.0+local.7",
    "1.0+7",
    "1.0.post0.dev0",
    "1.0.post1",
    "1.0.post1+x",
    "1.0.post2.dev0",
    "1.0.0.5",
    "1.0.1",
    "1.1.dev0",
    "1.1a1",
    "1.1",
    "1.2",
    "1.2.0.5",
    "1.2a1",
    "1.2.post1",
    "1.3.dev0",
    "1.4.5",
    "1.4.5a1",
    "1.4.99",
    "1.5.dev0",
    "2.0.dev0",
    "2.0a1",
    "2.0",
    "1!0.5",
    "1!1.0",
    "1.0.20230628214621",
    "1.0.20230628214622",
    f"1.{2**70}",
    f"{2**80}.0",
]
TRICKY_VERSIONS = [Version(text) for text in TRICKY]

SPECIFIERS = [
    "",
    ">=1.0",
    ">1.0",
    "<1.0",
    "<=1.0",
    "==1.0",
    "!=1.0",
    "==1.0+local",
    "!=1.0+local",
    "==1.0.*",
    "!=1.0.*",
    "==1.2.*",
    "==1.*",
    "==0.*",
    "~=1.4.5",
    "~=1.4",
    "~=1.4.5a1",
    ">1.0a1",
    "<1.0a1",
    "<=1.0a1",
    ">1.0.post1",
    "<1.0.post1",
    ">1.0.dev0",
    "<1.0.dev0",
    ">=1.0.dev0",
    "<0.dev0",
    "<0",
    ">=0.dev0",
    ">=1.0,<2.0",
    ">=1.0,!=1.5,<2.0",
    ">=1.0,!=1.2.*,<2.0",
    "==1.0.20230628214621",
    ">1.0.20230628214621",
    "<1!0",
    ">=1!0.5",
    f">=1.{2**70}",
    ">=2.0,<1.0",
]

SEGMENT = st.sampled_from([0, 0, 1, 1, 2, 5, 10, 20230628214621, 2**70])
RELEASE = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: ".".join(map(str, parts)))
PRE = st.sampled_from(["", "", "", "a0", "a1", "b2", "rc1"])
POST = st.sampled_from(["", "", "", ".post0", ".post1"])
DEV = st.sampled_from(["", "", "", ".dev0", ".dev1"])
LOCAL = st.sampled_from(["", "", "", "", "+local", "+1", "+a.1", "+ubuntu.2"])
EPOCH = st.sampled_from(["", "", "", "", "1!"])


@st.composite
def version_texts(draw: st.DrawFn, *, local: bool = True, suffixes: bool = True) -> str:
    text = draw(EPOCH) + draw(RELEASE)
    if suffixes:
        text += draw(PRE) + draw(POST) + draw(DEV)
    if local:
        text += draw(LOCAL)
    return text


VERSIONS = st.one_of(st.sampled_from(TRICKY_VERSIONS), version_texts().map(Version))


@st.composite
def specifier_texts(draw: st.DrawFn) -> str:
    operator = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "~=", "==*", "!=*"]))
    if operator.endswith("*"):
        return f"{operator[:2]}{draw(EPOCH)}{draw(RELEASE)}.*"
    if operator == "~=":
        release = draw(st.lists(SEGMENT, min_size=2, max_size=4))
        suffix = draw(PRE) + draw(POST) + draw(DEV)
        return f"~={draw(EPOCH)}{'.'.join(map(str, release))}{suffix}"
    return operator + draw(version_texts(local=operator in {"==", "!="}))


SPECIFIER_SETS = st.lists(specifier_texts(), min_size=1, max_size=3).map(",".join)
BASE_SETS = st.one_of(
    SPECIFIER_SETS.map(VersionSet.from_specifiers),
    VERSIONS.map(VersionSet.exact),
    st.sampled_from([VersionSet.full(), VersionSet.empty()]),
)
SETS = st.recursive(
    BASE_SETS,
    lambda children: st.one_of(
        st.tuples(children, children).map(lambda pair: pair[0] | pair[1]),
        st.tuples(children, children).map(lambda pair: pair[0] - pair[1]),
        children.map(VersionSet.complement),
    ),
    max_leaves=4,
)


def contains(specifiers: str, version: Version) -> bool:
    return SpecifierSet(specifiers).contains(version, prereleases=True)


class TestFromSpecifiers:
    @pytest.mark.parametrize("specifiers", SPECIFIERS)
    def test_tricky_versions_agree_with_packaging(self, specifiers: str) -> None:
        versions = VersionSet.from_specifiers(specifiers)
        for version in TRICKY_VERSIONS:
            assert (version in versions) == contains(specifiers, version), version

    @settings(max_examples=400, deadline=None)
    @given(SPECIFIER_SETS, st.lists(VERSIONS, min_size=1, max_size=10))
    def test_membership_agrees_with_packaging(
        self, specifiers: str, versions: list[Version]
    ) -> None:
        result = VersionSet.from_specifiers(specifiers)
        # Versions written in the specifiers are where the boundaries are.
        probes = list(versions)
        for specifier in SpecifierSet(specifiers):
            if specifier.operator != "===":
                probes.append(Version(specifier.version.removesuffix(".*")))
        for version in probes:
            assert (version in result) == contains(specifiers, version), version

    @pytest.mark.parametrize(
        ("specifiers", "inside", "outside"),
        [
            ("<1.0", ["0.9", "0.9.post1+x"], ["1.0.dev0", "1.0a1", "1.0"]),
            ("<1.0a2", ["1.0a1", "1.0a2.dev0", "1.0.dev5"], ["1.0a2"]),
            (">1.0", ["1.0.0.1", "1.1a1"], ["1.0", "1.0+local", "1.0.post1", "1.0.post1.dev0"]),
            (">1.0.post1", ["1.0.post2", "1.0.post2.dev0"], ["1.0.post1+x"]),
            (">1.0a1", ["1.0a2.dev0", "1.0a2+x", "1.0"], ["1.0a1.post1", "1.0a1+x"]),
            ("<=1.0", ["1.0+anything", "1.0"], ["1.0.post0.dev0"]),
            ("==1.0", ["1.0+anything", "1.0.0"], ["1.0.post1"]),
            ("==1.0+abc", ["1.0+abc"], ["1.0", "1.0+abd"]),
            ("==1.2.*", ["1.2a1", "1.2.dev0", "1.2.0.5", "1.2.post3"], ["1.3.dev0", "1.1.9"]),
            ("==1.0.*", ["1", "1.0.0.5"], ["1.1.dev0"]),
            ("~=1.4.5", ["1.4.5", "1.4.99"], ["1.5.dev0", "1.4.5a1", "1.5"]),
            ("==1.0.20230628214621", ["1.0.20230628214621"], ["1.0.20230628214622"]),
        ],
    )
    def test_pep440_edges(self, specifiers: str, inside: list[str], outside: list[str]) -> None:
        versions = VersionSet.from_specifiers(specifiers)
        for text in inside:
            assert Version(text) in versions, text
            assert contains(specifiers, Version(text)), text
        for text in outside:
            assert Version(text) not in versions, text
            assert not contains(specifiers, Version(text)), text

    def test_empty_string_is_every_version(self) -> None:
        assert VersionSet.from_specifiers("").is_full()

    def test_specifier_set_and_string_give_equal_sets(self) -> None:
        assert VersionSet.from_specifiers(SpecifierSet(">=1.0,<2")) == VersionSet.from_specifiers(
            "<2, >=1.0"
        )

    def test_invalid_specifier_raises(self) -> None:
        with pytest.raises(InvalidSpecifier):
            VersionSet.from_specifiers(">=1.0,lolwat")

    def test_arbitrary_equality_is_approximated_by_version_equality(self) -> None:
        versions = VersionSet.from_specifiers("===1.0")
        assert Version("1.0") in versions
        assert Version("1.0+x") not in versions
        # packaging compares strings here, so "1.0.0" would not match; we cannot tell.
        assert Version("1.0.0") in versions
        assert VersionSet.from_specifiers("===not-a-version").is_empty()

    def test_results_are_cached(self) -> None:
        assert VersionSet.from_specifiers(">=1.0,<2") is VersionSet.from_specifiers(">=1.0,<2")


class TestAlgebra:
    @settings(max_examples=200, deadline=None)
    @given(SETS, SETS, st.lists(VERSIONS, max_size=8))
    def test_operations_agree_with_membership(
        self, a: VersionSet, b: VersionSet, versions: list[Version]
    ) -> None:
        union, both, inverse, rest = a | b, a & b, ~a, a - b
        for version in [*versions, *TRICKY_VERSIONS]:
            in_a, in_b = version in a, version in b
            assert (version in union) == (in_a or in_b)
            assert (version in both) == (in_a and in_b)
            assert (version in inverse) == (not in_a)
            assert (version in rest) == (in_a and not in_b)

    @settings(max_examples=300, deadline=None)
    @given(SETS, SETS)
    def test_relations_and_identities(self, a: VersionSet, b: VersionSet) -> None:
        assert a.is_subset(b) == ((a & b) == a) == (a - b).is_empty()
        assert a.is_disjoint(b) == (a & b).is_empty() == b.is_disjoint(a)
        assert a.is_subset(a | b)
        assert (a & b).is_subset(a)
        assert ~~a == a
        assert ~(a | b) == (~a & ~b)
        assert (a | b) == (b | a)
        assert (a & b) == (b & a)
        assert (a | ~a).is_full()
        assert (a & ~a).is_empty()
        assert hash(a | b) == hash(b | a)

    @settings(max_examples=300, deadline=None)
    @given(SETS)
    def test_single_versions_and_display_agree_with_membership(self, a: VersionSet) -> None:
        single, pinned = a.singleton(), a.pinned()
        if single is not None:
            assert a == VersionSet.exact(single)
            assert str(a) == f"=={single}"
        if pinned is not None:
            assert pinned in a
            assert a.is_subset(VersionSet.from_specifiers(f"=={pinned}"))
            assert str(a) == f"=={pinned}"
        if str(a).startswith("!=") and "," not in str(a) and "*" not in str(a):
            # A lone "!=v" is the complement of v (and maybe its locals).
            excluded = Version(str(a)[2:])
            assert excluded not in a
            assert (~a).pinned() == excluded

    @settings(max_examples=200, deadline=None)
    @given(SPECIFIER_SETS, SPECIFIER_SETS)
    def test_equal_sets_are_equal_whatever_their_spelling(self, left: str, right: str) -> None:
        a, b = VersionSet.from_specifiers(left), VersionSet.from_specifiers(right)
        rebuilt = (a - b) | (a & b)
        assert rebuilt == a
        assert hash(rebuilt) == hash(a)

    @settings(max_examples=150, deadline=None)
    @given(SETS, SETS, st.lists(VERSIONS, max_size=8))
    def test_simplify_only_changes_dont_care_versions(
        self, a: VersionSet, dont_care: VersionSet, versions: list[Version]
    ) -> None:
        simpler = a.simplify(dont_care)
        assert (simpler - a).is_subset(dont_care)
        assert (a - simpler).is_subset(dont_care)
        assert simpler.interval_count() <= a.interval_count()
        for version in [*versions, *TRICKY_VERSIONS]:
            if version not in dont_care:
                assert (version in simpler) == (version in a)

    def test_simplify_merges_across_missing_versions(self) -> None:
        published = [Version(f"1.{minor}") for minor in range(1, 8)]
        missing = VersionSet.full()
        for version in published:
            missing -= VersionSet.exact(version)
        tried = VersionSet.empty()
        for version in published[:3]:
            tried |= VersionSet.exact(version)
        assert str(tried) == "==1.1 | ==1.2 | ==1.3"
        assert str(tried.simplify(missing)) == "<1.4"
        # Nothing is published outside 1.1-1.7, so any range around them is as good as "*".
        assert VersionSet.from_specifiers(">=1.0,<2").simplify(missing).is_full()

    def test_canonical_boundaries(self) -> None:
        # Nothing lies between "after 1.0a1 and its post-releases" and 1.0a2.dev0, nor
        # between "after 1.0 and its locals" and 1.0.post0.dev0.
        assert VersionSet.from_specifiers(">1.0a1") == VersionSet.from_specifiers(">=1.0a2.dev0")
        assert VersionSet.from_specifiers("<=1.0") == VersionSet.from_specifiers("<1.0.post0.dev0")
        assert VersionSet.from_specifiers("<0.dev0").is_empty()
        assert VersionSet.from_specifiers(">=0.dev0").is_full()
        assert VersionSet.from_specifiers("==1.0.*") == VersionSet.from_specifiers("==1.*") - (
            VersionSet.from_specifiers(">=1.1.dev0")
        )

    def test_full_and_empty(self) -> None:
        full, empty = VersionSet.full(), VersionSet.empty()
        assert full.is_full()
        assert not full.is_empty()
        assert empty.is_empty()
        assert ~full == empty
        assert Version("0.dev0") in full
        assert Version("1.0") not in empty
        assert empty.is_subset(full)
        assert not full.is_subset(empty)

    def test_many_intervals(self) -> None:
        holes = VersionSet.empty()
        for minor in range(0, 40, 2):
            holes |= VersionSet.from_specifiers(f"=={minor}.*")
        assert holes.interval_count() == 20
        assert Version("4.5") in holes
        assert Version("5.5") not in holes
        assert (holes & ~holes).is_empty()
        assert VersionSet.exact(Version("6.1")).is_subset(holes)
        assert VersionSet.exact(Version("7.1")).is_disjoint(holes)


class TestVersionOrder:
    @settings(max_examples=500, deadline=None)
    @given(VERSIONS, VERSIONS)
    def test_order_matches_pep440(self, a: Version, b: Version) -> None:
        at_least = VersionSet.from_specifiers(f">={a.public}")
        if a.local is None:
            assert (b in at_least) == (b >= a)
        assert (b in VersionSet.exact(a)) == (b == a)
        assert VersionSet.exact(a).is_subset(VersionSet.exact(b)) == (a == b)

    def test_tricky_versions_sort_like_packaging(self) -> None:
        for a in TRICKY_VERSIONS:
            exact = VersionSet.exact(a)
            at_least = VersionSet.from_specifiers(f">={a}") if a.local is None else None
            for b in TRICKY_VERSIONS:
                assert (b in exact) == (a == b), (a, b)
                if at_least is not None:
                    assert (b in at_least) == (b >= a), (a, b)


class TestSingleVersions:
    def test_exact_is_a_singleton(self) -> None:
        version = Version("1.0.20230628214621")
        assert VersionSet.exact(version).singleton() is version
        assert VersionSet.exact(version).pinned() is version

    def test_specifier_equality_is_pinned_but_not_a_singleton(self) -> None:
        versions = VersionSet.from_specifiers("==1.0")
        assert versions.singleton() is None
        assert versions.pinned() == Version("1.0")
        assert VersionSet.from_specifiers("==1.0+abc").singleton() == Version("1.0+abc")

    @pytest.mark.parametrize("specifiers", ["", ">=1.0", "==1.*", "!=1.0", "<0.dev0"])
    def test_ranges_are_not_single_versions(self, specifiers: str) -> None:
        versions = VersionSet.from_specifiers(specifiers)
        assert versions.singleton() is None
        assert versions.pinned() is None


class TestDisplay:
    @pytest.mark.parametrize(
        ("versions", "text"),
        [
            (VersionSet.full(), "*"),
            (VersionSet.empty(), "∅"),
            (VersionSet.from_specifiers(""), "*"),
            (VersionSet.from_specifiers("==1.0"), "==1.0"),
            (VersionSet.exact(Version("1.0+abc")), "==1.0+abc"),
            (VersionSet.from_specifiers(">=1.0,<2.0"), ">=1.0, <2.0"),
            (VersionSet.from_specifiers("!=1.5"), "!=1.5"),
            (~VersionSet.exact(Version("1.5")), "!=1.5"),
            (VersionSet.from_specifiers(">=1.0,!=1.5,<2.0"), ">=1.0, !=1.5, <2.0"),
            (
                VersionSet.from_specifiers("<1.0") | VersionSet.from_specifiers(">=2.0"),
                "<1.0 | >=2.0",
            ),
            (~VersionSet.from_specifiers(">=1.0,<2.0"), "<1.0 | >=2.0.dev0"),
            (VersionSet.from_specifiers("==1.2.*"), "==1.2.*"),
            (VersionSet.from_specifiers("!=1.2.*"), "!=1.2.*"),
            (VersionSet.from_specifiers("~=1.4.5"), ">=1.4.5, <1.5"),
            (VersionSet.from_specifiers(">1.0"), ">1.0"),
            (VersionSet.from_specifiers("<=1.0"), "<=1.0"),
            (VersionSet.from_specifiers("<1.0a1"), "<1.0a1"),
            (VersionSet.from_specifiers("==1.0") - VersionSet.exact(Version("1.0")), "==1.0+*"),
            (
                VersionSet.from_specifiers("<=1.0") | VersionSet.from_specifiers(">1.0.post0.dev0"),
                "!=1.0.post0.dev0",
            ),
            (
                VersionSet.from_specifiers(">=1.0.0,<2.0.0")
                - VersionSet.exact(Version("1.0.0"))
                - VersionSet.exact(Version("1.1.0")),
                ">1.0.0, !=1.1.0, <2.0.0",
            ),
        ],
    )
    def test_str(self, versions: VersionSet, text: str) -> None:
        assert str(versions) == text

    def test_repr(self) -> None:
        assert repr(VersionSet.from_specifiers(">=1")) == "<VersionSet >=1>"


class TestValueSemantics:
    def test_immutable(self) -> None:
        versions = VersionSet.full()
        with pytest.raises(AttributeError):
            versions._cuts = ()

    def test_not_constructible_directly(self) -> None:
        with pytest.raises(TypeError):
            VersionSet()

    def test_pickle_round_trip(self) -> None:
        versions = VersionSet.from_specifiers(">=1.0,!=1.5,<2.0")
        restored = pickle.loads(pickle.dumps(versions))
        assert restored == versions
        assert str(restored) == str(versions)

    def test_usable_as_dict_key(self) -> None:
        a = VersionSet.from_specifiers(">=1.0,<2")
        b = VersionSet.from_specifiers(">=1.0") & VersionSet.from_specifiers("<2")
        assert {a: 1}[b] == 1

    def test_contains_rejects_non_versions(self) -> None:
        assert "1.0" not in VersionSet.full()
