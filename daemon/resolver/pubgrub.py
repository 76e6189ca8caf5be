"""The PubGrub version solver, pure and generator-driven, with human failure explanations.

This is Natalie Weizenbaum's PubGrub algorithm (Dart pub's ``doc/solver.md``; the same one the
Rust ``pubgrub`` crate implements for uv): incompatibilities over terms on :class:`VersionSet`\\ s,
a partial solution with decision levels, unit propagation, conflict-driven learning with
backjumping, and decision making. It is hand-written because no maintained Python PubGrub
library fits: the solver must be pure (no I/O, no asyncio) so the daemon can fetch package
data however it likes between steps, it must never enumerate a package's versions itself, and
when it fails it must explain why in sentences a person can act on.

The solver is a generator. It yields a request whenever it needs data and expects the answer
through ``send()``:

* :class:`ChooseVersion` -> the best acceptable ``Version`` in ``allowed`` (pre-release policy,
  yanked files and preferences are the caller's), or :class:`NoVersion`;
* :class:`GetDependencies` -> a mapping of dependencies to version sets, or
  :class:`Unavailable` when that version cannot be used at all.

It returns the solution (``StopIteration.value``) or raises :class:`NoSolution`, whose
``explanation`` follows pub's report format with ``you`` standing for the root. For callers
without I/O, :func:`resolve_sync` drives it from in-memory data.
"""

from __future__ import annotations

import enum
import heapq
from bisect import bisect_left
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar

from msgspec import Struct
from packaging.version import Version

from burrowd.daemon.resolver.ranges import VersionSet

__all__ = [
    "Answer",
    "ChooseVersion",
    "Dependencies",
    "GetDependencies",
    "Incompatibility",
    "IncompatibilityKind",
    "NoSolution",
    "NoVersion",
    "Request",
    "Term",
    "Unavailable",
    "resolve_sync",
    "solve",
]

P = TypeVar("P", bound=Hashable)


class ChooseVersion(Struct, Generic[P], frozen=True):
    """Ask for the best acceptable version of ``package`` in ``allowed``."""

    package: P
    allowed: VersionSet


class NoVersion(Struct, frozen=True):
    """Answer a :class:`ChooseVersion`: no acceptable version exists in the allowed set.

    ``reason`` is shown in the explanation, e.g. ``only pre-releases match; pass
    --prerelease allow``.
    """

    reason: str | None = None


class GetDependencies(Struct, Generic[P], frozen=True):
    """Ask for the dependencies of ``package`` at ``version``."""

    package: P
    version: Version


class Unavailable(Struct, frozen=True):
    """Answer a :class:`GetDependencies`: this version cannot be used, for ``reason``."""

    reason: str


Dependencies: TypeAlias = Mapping[P, VersionSet]
Request: TypeAlias = ChooseVersion[P] | GetDependencies[P]
Answer: TypeAlias = Version | NoVersion | Mapping[P, VersionSet] | Unavailable


class Term(NamedTuple):
    """A statement about one package: selected within ``versions``, or (negative) not.

    A negative term also holds when the package is not selected at all.
    """

    positive: bool
    versions: VersionSet

    def __str__(self) -> str:
        return str(self.versions) if self.positive else f"not {self.versions}"


def _term(positive: bool, versions: VersionSet) -> Term:
    # NamedTuple's generated __new__ is a Python-level lambda; this is the hot path.
    return tuple.__new__(Term, (positive, versions))


def _negate(term: Term) -> Term:
    return _term(not term[0], term[1])


def _intersect(a: Term, b: Term) -> Term:
    if a[0]:
        if b[0]:
            return _term(True, a[1].intersection(b[1]))
        return _term(True, a[1].difference(b[1]))
    if b[0]:
        return _term(True, b[1].difference(a[1]))
    return _term(False, a[1].union(b[1]))


def _union(a: Term, b: Term) -> Term:
    if a[0]:
        if b[0]:
            return _term(True, a[1].union(b[1]))
        return _term(False, b[1].difference(a[1]))
    if b[0]:
        return _term(False, a[1].difference(b[1]))
    return _term(False, a[1].intersection(b[1]))


def _satisfies(known: Term, term: Term) -> bool:
    """Return whether ``known`` being true makes ``term`` true."""
    if known.positive:
        if term.positive:
            return known.versions.is_subset(term.versions)
        return known.versions.is_disjoint(term.versions)
    return not term.positive and term.versions.is_subset(known.versions)


def _is_any(term: Term) -> bool:
    return not term.positive and term.versions.is_empty()


class IncompatibilityKind(enum.Enum):
    """Where an incompatibility comes from."""

    ROOT = "root"
    DEPENDENCY = "dependency"
    NO_VERSIONS = "no_versions"
    UNAVAILABLE = "unavailable"
    DERIVED = "derived"


class Incompatibility(Generic[P]):
    """A set of terms that cannot all be true, and why.

    External incompatibilities record a fact: ``dependency`` is ``(depender, its versions,
    dependency, required versions)``, ``reason`` the caller's words for a missing or unusable
    version. Derived ones record the two incompatibilities they were resolved from.
    """

    __slots__ = ("causes", "dependency", "kind", "reason", "terms")

    def __init__(
        self,
        terms: dict[P, Term],
        kind: IncompatibilityKind,
        *,
        causes: tuple[Incompatibility[P], Incompatibility[P]] | None = None,
        reason: str | None = None,
        dependency: tuple[P, VersionSet, P, VersionSet] | None = None,
    ) -> None:
        self.terms = terms
        self.kind = kind
        self.causes = causes
        self.reason = reason
        self.dependency = dependency

    def __repr__(self) -> str:
        inner = ", ".join(f"{package} {term}" for package, term in self.terms.items())
        return f"<Incompatibility {self.kind.value} {{{inner}}}>"


class NoSolution(Exception):
    """No set of versions satisfies the requirements.

    ``incompatibility`` is the root-cause incompatibility the solver derived,
    ``explanation`` the human report and ``tree`` the same derivation as JSON-ready dicts:
    ``{"text", "causes": [node, node]}`` for a derived step and ``{"text", "kind"}`` for an
    external fact (``kind`` one of ``dependency``, ``no_versions``, ``unavailable``,
    ``root``). A derived step that appears more than once is given in full the first time,
    with an ``"id"``, and later as ``{"text", "causes": [], "ref": id}``. Below a depth of
    400 a step is cut short as ``{"text", "causes": [], "truncated": true}`` so the tree
    stays serializable with ``json``'s default recursion limit.
    """

    def __init__(self, incompatibility: Incompatibility[Any], root: Hashable) -> None:
        report = _Report(incompatibility, root)
        self.incompatibility = incompatibility
        self.explanation: str = report.explanation()
        self.tree: dict[str, Any] = report.tree()
        super().__init__(self.explanation)


# The solver ------------------------------------------------------------------------------


class _Assignment(Generic[P]):
    """One entry of the partial solution: a decision (no cause) or a derivation."""

    __slots__ = ("accumulated", "cause", "index", "level", "package", "term")

    def __init__(
        self,
        package: P,
        term: Term,
        level: int,
        index: int,
        *,
        cause: Incompatibility[P] | None,
        accumulated: Term,
    ) -> None:
        self.package = package
        self.term = term
        self.level = level
        self.index = index
        self.cause = cause
        # Intersection of every assignment of this package up to and including this one.
        self.accumulated = accumulated


_SATISFIED = 0
_ALMOST = 1
_CONTRADICTED = 2
_INCONCLUSIVE = 3


class _State(Generic[P]):
    """The partial solution, the incompatibilities and the decision queue."""

    def __init__(
        self,
        root: P,
        root_version: Version,
        priority: Callable[[P, VersionSet], Any] | None,
    ) -> None:
        self.root = root
        self.root_version = root_version
        self.priority = priority
        self.by_package: dict[P, list[Incompatibility[P]]] = {}
        self.history: dict[P, list[_Assignment[P]]] = {}
        self.known: dict[P, Term] = {}
        self.trail: list[_Assignment[P]] = []
        self.decisions: dict[P, Version] = {}
        self.level = 0
        self.counter = 0
        # Incompatibility -> decision level at which it was found contradicted: it stays so
        # until we backtrack below that level, so propagation can skip it until then.
        self.contradicted: dict[Incompatibility[P], int] = {}
        self.discovered: dict[P, int] = {root: 0}
        # (package, version) -> its decision term and its dependency incompatibilities.
        self.fetched: dict[tuple[P, Version], tuple[Term, list[Incompatibility[P]]]] = {}
        # (depender, dependency, range) -> the one incompatibility saying so, all versions.
        self.merged: dict[tuple[P, P, VersionSet], Incompatibility[P]] = {}
        self.queue: list[tuple[Any, int, int, P]] = []
        self.stamps: dict[P, int] = {}
        self.outdated: set[P] = set()
        self.add(
            Incompatibility(
                {root: _term(False, VersionSet.exact(root_version))}, IncompatibilityKind.ROOT
            )
        )

    # Incompatibilities and assignments ---------------------------------------------------

    def add(self, incompatibility: Incompatibility[P]) -> None:
        for package in incompatibility.terms:
            self.by_package.setdefault(package, []).append(incompatibility)

    def assign(self, package: P, term: Term, cause: Incompatibility[P] | None) -> None:
        previous = self.known.get(package)
        accumulated = term if previous is None else _intersect(previous, term)
        assignment = _Assignment(
            package, term, self.level, self.counter, cause=cause, accumulated=accumulated
        )
        self.counter += 1
        self.trail.append(assignment)
        self.history.setdefault(package, []).append(assignment)
        self.known[package] = accumulated
        self.outdated.add(package)

    def backtrack(self, level: int) -> None:
        trail = self.trail
        while trail and trail[-1].level > level:
            assignment = trail.pop()
            package = assignment.package
            history = self.history[package]
            history.pop()
            if history:
                self.known[package] = history[-1].accumulated
            else:
                del self.history[package]
                del self.known[package]
            if assignment.cause is None:
                del self.decisions[package]
            self.outdated.add(package)
        self.level = level
        self.contradicted = {
            incompatibility: at for incompatibility, at in self.contradicted.items() if at <= level
        }

    def relation(self, incompatibility: Incompatibility[P]) -> tuple[int, P | None]:
        """Return how the partial solution relates to ``incompatibility``.

        ``(_ALMOST, package)`` names the one term left inconclusive.
        """
        unsatisfied: P | None = None
        known = self.known
        for package, term in incompatibility.terms.items():
            current = known.get(package)
            if current is not None:
                # Satisfaction and contradiction tests, inlined: this is the solver's inner loop.
                have, want = current[1], term[1]
                if current[0]:
                    if term[0]:
                        if have.is_subset(want):
                            continue
                        contradicted = have.is_disjoint(want)
                    else:
                        if have.is_disjoint(want):
                            continue
                        contradicted = have.is_subset(want)
                elif not term[0]:
                    if want.is_subset(have):
                        continue
                    contradicted = False
                else:
                    contradicted = want.is_subset(have)
                if contradicted:
                    self.contradicted[incompatibility] = self.level
                    return _CONTRADICTED, None
            if unsatisfied is not None:
                return _INCONCLUSIVE, None
            unsatisfied = package
        if unsatisfied is None:
            return _SATISFIED, None
        return _ALMOST, unsatisfied

    # Unit propagation and conflict resolution --------------------------------------------

    def propagate(self, package: P) -> None:
        changed: dict[P, None] = {package: None}
        while changed:
            current, _ = changed.popitem()
            incompatibilities = self.by_package.get(current, [])
            # Newest first: learned incompatibilities are the most general ones.
            for position in range(len(incompatibilities) - 1, -1, -1):
                incompatibility = incompatibilities[position]
                if incompatibility in self.contradicted:
                    continue
                relation, unsatisfied = self.relation(incompatibility)
                if relation == _SATISFIED:
                    learned = self.resolve_conflict(incompatibility)
                    relation, unsatisfied = self.relation(learned)
                    if relation != _ALMOST or unsatisfied is None:
                        raise RuntimeError("conflict resolution left no term to derive")
                    self.assign(unsatisfied, _negate(learned.terms[unsatisfied]), learned)
                    changed = {unsatisfied: None}
                    break
                if relation == _ALMOST and unsatisfied is not None:
                    self.assign(
                        unsatisfied, _negate(incompatibility.terms[unsatisfied]), incompatibility
                    )
                    changed[unsatisfied] = None

    def is_terminal(self, incompatibility: Incompatibility[P]) -> bool:
        terms = incompatibility.terms
        if not terms:
            return True
        if len(terms) > 1:
            return False
        term = terms.get(self.root)
        return term is not None and term.positive and self.root_version in term.versions

    def resolve_conflict(self, incompatibility: Incompatibility[P]) -> Incompatibility[P]:
        """Backjump to where ``incompatibility``'s root cause is almost satisfied; return it."""
        learned_new = False
        while True:
            if self.is_terminal(incompatibility):
                raise NoSolution(incompatibility, self.root)
            satisfier, previous_level = self.find_satisfier(incompatibility)
            if satisfier.cause is None or previous_level < satisfier.level:
                self.backtrack(previous_level)
                if learned_new:
                    self.add(incompatibility)
                return incompatibility
            # Resolve on the satisfier's package: {t1, q} and {t2, r} give {t1 or t2, q, r},
            # where t2 is the term the satisfier was derived from.
            cause = satisfier.cause
            package = satisfier.package
            terms = {p: t for p, t in incompatibility.terms.items() if p != package}
            for other, term in cause.terms.items():
                if other != package:
                    existing = terms.get(other)
                    terms[other] = term if existing is None else _intersect(existing, term)
            merged = _union(incompatibility.terms[package], cause.terms[package])
            if not _is_any(merged):
                terms[package] = merged
            incompatibility = Incompatibility(
                terms, IncompatibilityKind.DERIVED, causes=(incompatibility, cause)
            )
            learned_new = True

    def find_satisfier(self, incompatibility: Incompatibility[P]) -> tuple[_Assignment[P], int]:
        """Return the satisfier of ``incompatibility`` and the previous satisfier's level.

        A package's accumulated term only narrows along its history, so "satisfied from
        here on" is monotone and found by bisection: one package can collect hundreds of
        assignments when its versions are ruled out one by one.
        """
        satisfiers: dict[P, tuple[int, _Assignment[P]]] = {}
        for package, term in incompatibility.terms.items():
            history = self.history[package]
            position = bisect_left(
                range(len(history)), True, key=lambda i: _satisfies(history[i].accumulated, term)
            )
            if position == len(history):
                raise RuntimeError(f"{incompatibility!r} is not satisfied")
            satisfiers[package] = (position, history[position])
        position, satisfier = max(satisfiers.values(), key=lambda found: found[1].index)
        package = satisfier.package
        previous_level = 1
        for other, (_, assignment) in satisfiers.items():
            if other != package:
                previous_level = max(previous_level, assignment.level)
        term = incompatibility.terms[package]
        if not _satisfies(satisfier.term, term):
            # The satisfier only completes the term together with earlier assignments.
            history = self.history[package]
            own = satisfier.term
            earlier = bisect_left(
                range(position),
                True,
                key=lambda i: _satisfies(_intersect(history[i].accumulated, own), term),
            )
            if earlier < position:
                previous_level = max(previous_level, history[earlier].level)
        return satisfier, previous_level

    # Decision making ---------------------------------------------------------------------

    def next_package(self) -> P | None:
        """Return the undecided required package to decide next, or ``None`` when done."""
        known = self.known
        decisions = self.decisions
        for package in self.outdated:
            term = known.get(package)
            if term is None or not term.positive or package in decisions:
                continue
            stamp = self.stamps.get(package, 0) + 1
            self.stamps[package] = stamp
            if self.priority is not None:
                key: Any = self.priority(package, term.versions)
            else:
                key = 0 if term.versions.pinned() is not None else 1
            heapq.heappush(self.queue, (key, self.discovered[package], stamp, package))
        self.outdated.clear()
        queue = self.queue
        while queue:
            _, _, stamp, package = queue[0]
            term = known.get(package)
            if (
                self.stamps[package] == stamp
                and term is not None
                and term.positive
                and package not in decisions
            ):
                # Left queued: if the choice fails, the package changes and is requeued.
                return package
            heapq.heappop(queue)
        return None

    def add_dependencies(
        self, package: P, version: Version, dependencies: Mapping[P, VersionSet]
    ) -> None:
        depender = VersionSet.exact(version)
        positive = _term(True, depender)
        added: list[Incompatibility[P]] = []
        discovered = self.discovered
        by_package = self.by_package
        for dependency, versions in dependencies.items():
            if not isinstance(versions, VersionSet):
                raise TypeError(
                    f"dependency {dependency} of {package} {version} is not a VersionSet"
                )
            if dependency == package:
                if version in versions:
                    continue
                # Depending on another version of itself rules this version out.
                terms = {package: positive}
            elif versions.is_empty():
                terms = {package: positive}
            else:
                terms = {package: positive, dependency: _term(False, versions)}
            if dependency not in discovered:
                discovered[dependency] = len(discovered)
            if len(terms) == 2:
                incompatibility = self._merge_dependency(package, depender, dependency, versions)
            else:
                incompatibility = Incompatibility(
                    terms,
                    IncompatibilityKind.DEPENDENCY,
                    dependency=(package, depender, dependency, versions),
                )
                for other in terms:
                    by_package.setdefault(other, []).append(incompatibility)
            added.append(incompatibility)
        self.fetched[(package, version)] = (positive, added)

    def _merge_dependency(
        self, package: P, depender: VersionSet, dependency: P, versions: VersionSet
    ) -> Incompatibility[P]:
        """Add "``package`` in ``depender`` needs ``dependency`` in ``versions``".

        As pubgrub-rs does, the fact is merged with an earlier one of the same package
        needing the same range of the same dependency: "foo 1.0 and foo 1.1 need bar>=2"
        becomes one incompatibility for both versions, which replaces the earlier one.
        Logically the same, it makes an explanation say "foo>=1.0,<=1.1 depends on
        bar>=2" once instead of deriving it one version at a time.
        """
        by_package = self.by_package
        key = (package, dependency, versions)
        past = self.merged.get(key)
        if past is not None:
            assert past.dependency is not None
            depender = past.dependency[1].union(depender)
            for other in (package, dependency):
                watched = by_package[other]
                for i in range(len(watched) - 1, -1, -1):
                    if watched[i] is past:
                        del watched[i]
                        break
        merged = self.merged[key] = Incompatibility(
            {package: _term(True, depender), dependency: _term(False, versions)},
            IncompatibilityKind.DEPENDENCY,
            dependency=(package, depender, dependency, versions),
        )
        by_package.setdefault(package, []).append(merged)
        by_package.setdefault(dependency, []).append(merged)
        return merged

    def add_unavailable(self, package: P, version: Version, reason: str) -> None:
        positive = _term(True, VersionSet.exact(version))
        self.add(
            Incompatibility({package: positive}, IncompatibilityKind.UNAVAILABLE, reason=reason)
        )
        self.fetched[(package, version)] = (positive, [])

    def try_decide(self, package: P, version: Version) -> None:
        """Decide ``version`` unless one of its dependencies already conflicts."""
        known = self.known
        decision, incompatibilities = self.fetched[(package, version)]
        for incompatibility in incompatibilities:
            for other, term in incompatibility.terms.items():
                if other == package:
                    continue
                current = known.get(other)
                if current is None or not _satisfies(current, term):
                    break
            else:
                # Deciding would satisfy it; propagation derives "not this version" instead.
                return
        self.level += 1
        self.assign(package, decision, None)
        self.decisions[package] = version


def solve(
    root: P,
    root_version: Version,
    *,
    priority: Callable[[P, VersionSet], Any] | None = None,
) -> Generator[Request[P], Answer[P], dict[P, Version]]:
    """Resolve the dependencies of ``root`` at ``root_version``, asking for data as needed.

    Drive it with ``send()``: answer each :class:`ChooseVersion` with a ``Version`` from its
    ``allowed`` set or a :class:`NoVersion`, each :class:`GetDependencies` with a mapping of
    ``package -> VersionSet`` or an :class:`Unavailable`. The root's dependencies are asked
    for first. The generator returns ``{package: version}`` including the root, or raises
    :class:`NoSolution`.

    Undecided packages are decided in order of ``priority(package, allowed)`` (smallest
    first), ties broken by discovery order; by default, packages pinned to one version come
    first, then the earliest discovered.
    """
    state: _State[P] = _State(root, root_version, priority)
    state.propagate(root)
    # The root is decided first, outside the queue: the priority function never sees it.
    if (yield from _fetch(state, root, root_version)):
        state.try_decide(root, root_version)
    next_package = root
    while True:
        state.propagate(next_package)
        package = state.next_package()
        if package is None:
            return dict(state.decisions)
        next_package = package
        allowed = state.known[package].versions
        choice = yield ChooseVersion(package, allowed)
        if isinstance(choice, NoVersion):
            state.add(
                Incompatibility(
                    {package: _term(True, allowed)},
                    IncompatibilityKind.NO_VERSIONS,
                    reason=choice.reason,
                )
            )
            continue
        if not isinstance(choice, Version):
            raise TypeError(f"expected a Version or NoVersion for {package}, got {choice!r}")
        if choice not in allowed:
            raise ValueError(f"{package} {choice} is not in the allowed set {allowed}")
        if (package, choice) in state.fetched or (yield from _fetch(state, package, choice)):
            state.try_decide(package, choice)


def _fetch(
    state: _State[P], package: P, version: Version
) -> Generator[Request[P], Answer[P], bool]:
    """Ask for the dependencies of ``package`` ``version``; return whether it is usable."""
    dependencies = yield GetDependencies(package, version)
    if isinstance(dependencies, Unavailable):
        state.add_unavailable(package, version, dependencies.reason)
        return False
    if not isinstance(dependencies, Mapping):
        raise TypeError(
            f"expected dependencies or Unavailable for {package} {version}, got {dependencies!r}"
        )
    state.add_dependencies(package, version, dependencies)
    return True


def resolve_sync(
    root: P,
    root_version: Version,
    versions: Mapping[P, Sequence[Version]],
    deps: Mapping[tuple[P, Version], Mapping[P, VersionSet]],
    *,
    unavailable: Mapping[tuple[P, Version], str] | None = None,
    no_version_reasons: Mapping[P, str] | None = None,
) -> dict[P, Version]:
    """Resolve from in-memory data, always choosing the highest allowed version.

    ``versions`` lists each package's versions; a version missing from ``deps`` has no
    dependencies. ``unavailable`` marks versions that cannot be used, with the reason, and
    ``no_version_reasons`` explains why a package may lack acceptable versions.
    """
    solver = solve(root, root_version)
    answer: Answer[P] | None = None
    while True:
        try:
            request = solver.send(answer) if answer is not None else next(solver)
        except StopIteration as done:
            result: dict[P, Version] = done.value
            return result
        if isinstance(request, ChooseVersion):
            candidates = [v for v in versions.get(request.package, ()) if v in request.allowed]
            if candidates:
                answer = max(candidates)
            else:
                reasons = no_version_reasons or {}
                answer = NoVersion(reasons.get(request.package))
        else:
            key = (request.package, request.version)
            reason = (unavailable or {}).get(key)
            answer = Unavailable(reason) if reason is not None else deps.get(key, {})


# Failure reports -------------------------------------------------------------------------


class _Node:
    """A step of the derivation shown to people: an incompatibility, possibly rewritten."""

    __slots__ = ("causes", "dependency", "kind", "reason", "shared", "terms")

    def __init__(
        self,
        terms: Mapping[Any, Term],
        kind: IncompatibilityKind,
        causes: tuple[_Node, _Node] | None,
        reason: str | None,
        dependency: tuple[Any, VersionSet, Any, VersionSet] | None,
    ) -> None:
        self.terms = terms
        self.kind = kind
        self.causes = causes
        self.reason = reason
        self.dependency = dependency
        self.shared = False


_UNSATISFIED = "your requirements are unsatisfiable"
_MAX_TREE_DEPTH = 400
_Steps: TypeAlias = Generator["_Node", None, None]
_UNSATISFIABLE = f"we can conclude that {_UNSATISFIED}"


def _compact(versions: VersionSet) -> str:
    return str(versions).replace(", ", ",")


class _Report:
    """Turn a derivation into pub-style sentences and a JSON tree."""

    def __init__(self, incompatibility: Incompatibility[Any], root: Hashable) -> None:
        self.root = root
        self.gaps = self._find_gaps(incompatibility)
        self.simplest: dict[tuple[Any, VersionSet], VersionSet] = {}
        self.top = self._collapse(incompatibility)
        self._mark_shared()
        self.lines: list[str] = []
        self.references = 0
        self.line_of: dict[int, int] = {}

    # Shaping the tree --------------------------------------------------------------------

    @staticmethod
    def _find_gaps(incompatibility: Incompatibility[Any]) -> dict[Any, VersionSet]:
        """Return, per package, the versions the caller said do not exist."""
        gaps: dict[Any, VersionSet] = {}
        seen: set[int] = set()
        stack = [incompatibility]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            if current.kind is IncompatibilityKind.NO_VERSIONS and current.reason is None:
                for package, term in current.terms.items():
                    known = gaps.get(package)
                    gaps[package] = term.versions if known is None else known.union(term.versions)
            if current.causes is not None:
                stack.extend(current.causes)
        return gaps

    def _collapse(self, incompatibility: Incompatibility[Any]) -> _Node:
        """Build the report tree, folding in "no version in this range" facts.

        When the solver tries versions one by one, every failure ends with the caller
        saying there is nothing left in some range. Such a fact (without a reason of its
        own) only widens what the sibling step says about that package: "foo==1.0 depends
        on bar" plus "no other foo in >=1.0,<2.0" reads as "foo>=1.0,<2.0 depends on bar".
        """
        memo: dict[int, _Node] = {}
        pending: list[tuple[Incompatibility[Any], bool]] = [(incompatibility, False)]
        while pending:
            current, causes_done = pending.pop()
            if id(current) in memo:
                continue
            if current.causes is None:
                memo[id(current)] = _Node(
                    current.terms, current.kind, None, current.reason, current.dependency
                )
                continue
            if not causes_done:
                pending.append((current, True))
                pending.extend((cause, False) for cause in current.causes)
                continue
            first, second = (memo[id(cause)] for cause in current.causes)
            memo[id(current)] = self._fold_no_versions(current, first, second) or _Node(
                current.terms, IncompatibilityKind.DERIVED, (first, second), None, None
            )
        return memo[id(incompatibility)]

    def _fold_no_versions(
        self, incompatibility: Incompatibility[Any], first: _Node, second: _Node
    ) -> _Node | None:
        for missing, other in ((first, second), (second, first)):
            if missing.kind is not IncompatibilityKind.NO_VERSIONS or missing.reason is not None:
                continue
            ((package, gap),) = missing.terms.items()
            term = other.terms.get(package)
            if term is not None and term.positive:
                # The other step rules versions of the package out; non-existent ones can be
                # added without changing anything a reader needs to know.
                if other.kind is IncompatibilityKind.DEPENDENCY and other.dependency is not None:
                    depender, versions, dependency, required = other.dependency
                    if depender == package:
                        widened = (depender, versions.union(gap.versions), dependency, required)
                        return _Node(
                            incompatibility.terms,
                            IncompatibilityKind.DEPENDENCY,
                            None,
                            None,
                            widened,
                        )
                elif other.kind is IncompatibilityKind.NO_VERSIONS and other.reason is None:
                    return _Node(
                        incompatibility.terms, IncompatibilityKind.NO_VERSIONS, None, None, None
                    )
                elif other.causes is not None:
                    return other
            # Otherwise the fact narrows a requirement, which matters to the argument, unless
            # it reads the same either way (typically "==1.0" minus its local versions).
            if self._reads_the_same(incompatibility.terms, other.terms):
                return other
        return None

    def _reads_the_same(self, terms: Mapping[Any, Term], others: Mapping[Any, Term]) -> bool:
        if terms.keys() != others.keys():
            return False
        for package, term in terms.items():
            other = others[package]
            if term.positive != other.positive:
                return False
            if term.positive:
                mine = self._simplest(package, term.versions)
                theirs = self._simplest(package, other.versions)
            else:
                mine, theirs = term.versions, other.versions
            if str(mine) != str(theirs):
                return False
        return True

    def _mark_shared(self) -> None:
        parents: dict[int, int] = {}
        seen: set[int] = set()
        stack = [self.top]
        while stack:
            node = stack.pop()
            if id(node) in seen or node.causes is None:
                continue
            seen.add(id(node))
            for cause in node.causes:
                if cause.causes is not None:
                    parents[id(cause)] = parents.get(id(cause), 0) + 1
                    if parents[id(cause)] > 1:
                        cause.shared = True
                    stack.append(cause)

    # Sentences ---------------------------------------------------------------------------

    def _name(self, package: Any, versions: VersionSet) -> str:
        return str(package) if versions.is_full() else f"{package}{_compact(versions)}"

    def _simplest(self, package: Any, versions: VersionSet) -> VersionSet:
        """Return the fewest-intervals equivalent of a set of versions being ruled out.

        Versions the caller said do not exist may be added or dropped without changing what
        a sentence means; after trying versions one at a time that turns
        ``foo!=1.2,!=1.3`` into ``foo==1.1`` and ``foo==1.1 | ==1.2 | ==1.3`` into
        ``foo<1.4``, while keeping ``foo>=1.0,<2.0`` as written.
        """
        gap = self.gaps.get(package)
        if gap is None:
            return versions
        known = self.simplest.get((package, versions))
        if known is not None:
            return known
        best = versions
        if versions.interval_count() > 1:
            # The bare list of remaining versions reads best when it is as short as the
            # fewest-intervals form; the original spelling when nothing is shorter.
            for candidate in (versions.difference(gap), versions.simplify(gap)):
                if not candidate.is_empty() and candidate.interval_count() < best.interval_count():
                    best = candidate
        self.simplest[(package, versions)] = best
        return best

    def _depender(self, package: Any, versions: VersionSet) -> tuple[str, str]:
        """Return the subject and verb for "<subject> <verb> <dependency>"."""
        if package == self.root:
            return "you", "require"
        versions = self._simplest(package, versions)
        if versions.is_full():
            return f"every version of {package}", "depends on"
        return self._name(package, versions), "depends on"

    def _requirement(self, package: Any, versions: VersionSet) -> str:
        if versions.is_empty():
            return f"{package} with an empty version range"
        return self._name(package, versions)

    def external(self, node: _Node) -> str:
        """Describe an external fact."""
        if node.kind is IncompatibilityKind.DEPENDENCY and node.dependency is not None:
            depender, versions, dependency, required = node.dependency
            subject, verb = self._depender(depender, versions)
            return f"{subject} {verb} {self._requirement(dependency, required)}"
        ((package, term),) = node.terms.items()
        if node.kind is IncompatibilityKind.NO_VERSIONS:
            text = f"there is no version of {self._name(package, term.versions)}"
            return f"{text} ({node.reason})" if node.reason else text
        if node.kind is IncompatibilityKind.UNAVAILABLE:
            return f"{self._name(package, term.versions)} is unavailable: {node.reason}"
        return f"{package} {term.versions} is the package being resolved"

    def conclusion(self, node: _Node) -> str:
        """Describe what a derived step establishes."""
        positives: list[tuple[Any, VersionSet]] = []
        negatives: list[str] = []
        for package, term in node.terms.items():
            if package == self.root:
                # Root terms always hold (the root is always selected at its version).
                continue
            if term.positive:
                positives.append((package, self._simplest(package, term.versions)))
            else:
                negatives.append(self._name(package, term.versions))
        if not positives and not negatives:
            return _UNSATISFIED
        subjects = [self._name(package, versions) for package, versions in positives]
        if not negatives:
            if len(positives) > 1:
                return f"{_join(subjects, 'and')} are incompatible"
            package, versions = positives[0]
            if versions.is_full():
                return f"no version of {package} can be used"
            return f"{subjects[0]} cannot be used"
        required = _join(negatives, "or")
        if not positives:
            return f"you require {required}"
        if len(positives) > 1:
            return f"{_join(subjects, 'and')} together require {required}"
        package, versions = positives[0]
        subject = f"every version of {package}" if versions.is_full() else subjects[0]
        return f"{subject} requires {required}"

    def _concluding(self, node: _Node) -> str:
        text = self.conclusion(node)
        return _UNSATISFIABLE if text == _UNSATISFIED else text

    def _pair(self, first: _Node, second: _Node) -> str:
        """Describe two external facts, chaining them the way pub does when they connect."""
        one, two = first.dependency, second.dependency
        if (
            first.kind is IncompatibilityKind.DEPENDENCY
            and second.kind is IncompatibilityKind.DEPENDENCY
            and one is not None
            and two is not None
        ):
            if one[0] == two[0] and one[1] == two[1] and one[2] != two[2]:
                subject, verb = self._depender(one[0], one[1])
                both = "" if one[0] == self.root else "both "
                return (
                    f"{subject} {verb} {both}{self._requirement(one[2], one[3])}"
                    f" and {self._requirement(two[2], two[3])}"
                )
            for a, b, a_node in ((one, two, first), (two, one, second)):
                if (
                    a[2] == b[0]
                    and b[0] != self.root
                    and not a[3].is_empty()
                    and a[3].is_subset(b[1])
                    and b[2] != b[0]
                ):
                    return (
                        f"{self.external(a_node)} which depends on {self._requirement(b[2], b[3])}"
                    )
        return f"{self.external(first)} and {self.external(second)}"

    def _reference(self, node: _Node) -> int | None:
        return self.line_of.get(id(node)) if node.shared else None

    def _number_last_line(self) -> int:
        self.references += 1
        self.lines[-1] = f"{self.lines[-1]} ({self.references})"
        return self.references

    # Derivations can be thousands of steps deep (one per version tried), so the sentence
    # writer is a set of generators driven by an explicit stack rather than recursion:
    # ``yield node`` means "explain that step first, then carry on here".

    def _explain(self, node: _Node) -> _Steps:
        yield from self._explain_step(node)
        if node.shared and id(node) not in self.line_of:
            self.line_of[id(node)] = self._number_last_line()

    def _explain_step(self, node: _Node) -> _Steps:
        assert node.causes is not None
        first, second = node.causes
        conclusion = self._concluding(node)
        if first.causes is None and second.causes is None:
            self.lines.append(f"Because {self._pair(first, second)}, {conclusion}.")
        elif first.causes is None or second.causes is None:
            derived, external = (second, first) if first.causes is None else (first, second)
            yield from self._explain_with_external(derived, external, conclusion)
        else:
            yield from self._explain_two_derived(node, first, second, conclusion)

    def _explain_with_external(self, derived: _Node, external: _Node, conclusion: str) -> _Steps:
        reference = self._reference(derived)
        if reference is not None:
            self.lines.append(
                f"Because {self.conclusion(derived)} ({reference}) and "
                f"{self.external(external)}, {conclusion}."
            )
            return
        assert derived.causes is not None
        prior_first, prior_second = derived.causes
        if not derived.shared and (prior_first.causes is None) != (prior_second.causes is None):
            # Skip the intermediate step: "And because <its fact> and <this fact>, ...".
            prior_derived, prior_external = (
                (prior_second, prior_first)
                if prior_first.causes is None
                else (prior_first, prior_second)
            )
            yield prior_derived
            self.lines.append(f"And because {self._pair(prior_external, external)}, {conclusion}.")
            return
        yield derived
        self.lines.append(f"And because {self.external(external)}, {conclusion}.")

    def _explain_two_derived(
        self, node: _Node, first: _Node, second: _Node, conclusion: str
    ) -> _Steps:
        first_ref, second_ref = self._reference(first), self._reference(second)
        if first_ref is not None and second_ref is not None:
            self.lines.append(
                f"Because {self.conclusion(first)} ({first_ref}) and "
                f"{self.conclusion(second)} ({second_ref}), {conclusion}."
            )
        elif first_ref is not None or second_ref is not None:
            explained, fresh = (first, second) if first_ref is not None else (second, first)
            yield fresh
            self.lines.append(
                f"And because {self.conclusion(explained)} ({self._reference(explained)}),"
                f" {conclusion}."
            )
        elif first.shared:
            yield first
            self.lines.append("")
            yield from self._explain_step(node)
        else:
            yield first
            reference = self._number_last_line()
            self.lines.append("")
            yield second
            self.lines.append(f"And because {self.conclusion(first)} ({reference}), {conclusion}.")

    def explanation(self) -> str:
        """Return the report as lines of text, pub style."""
        top = self.top
        if top.causes is None:
            return f"Because {self.external(top)}, {_UNSATISFIABLE}."
        self.lines = []
        self.references = 0
        self.line_of = {}
        pending = [self._explain(top)]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
            else:
                pending.append(self._explain(step))
        last = self.lines[-1]
        if last.startswith("And because "):
            self.lines[-1] = "So, because " + last[len("And because ") :]
        return "\n".join(self.lines)

    def tree(self) -> dict[str, Any]:
        """Return the report tree as JSON-ready dicts (see :class:`NoSolution`)."""
        ids: dict[int, int] = {}
        top: dict[str, Any] = {}
        pending: list[tuple[_Node, dict[str, Any], int]] = [(self.top, top, 0)]
        while pending:
            node, entry, depth = pending.pop()
            if node.causes is None:
                entry.update(text=self.external(node), kind=node.kind.value)
                continue
            entry["text"] = self.conclusion(node)
            if depth >= _MAX_TREE_DEPTH:
                # Deeper nesting would break json.dumps at its default recursion limit.
                entry.update(causes=[], truncated=True)
                continue
            if node.shared:
                if id(node) in ids:
                    entry.update(causes=[], ref=ids[id(node)])
                    continue
                ids[id(node)] = entry["id"] = len(ids) + 1
            causes: list[dict[str, Any]] = [{}, {}]
            entry["causes"] = causes
            # First cause on top of the stack: ids are handed out in document order.
            pending.append((node.causes[1], causes[1], depth + 1))
            pending.append((node.causes[0], causes[0], depth + 1))
        return top


def _join(items: list[str], word: str) -> str:
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {word} {items[-1]}"
