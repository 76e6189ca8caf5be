"""Sets of PEP 440 versions with exact set algebra, for the resolver.

The solver reasons about *sets* of versions: it intersects a package's constraints, takes
complements when it learns that a range is impossible, and asks subset and disjointness
questions on every propagation step. ``packaging``'s ``SpecifierSet`` only answers membership
and keeps its interval machinery private, so this module builds its own.

A ``VersionSet`` is a sorted tuple of *cuts*: points on the version line that sit between
versions. Membership flips at every cut; the first cut may be the bottom of the line, and a
set with an odd number of cuts extends to infinity. Every cut is a total-order key built from
the public ``Version`` attributes (never packaging's private comparison key, whose shape
changed in packaging 26), plus a side: "just below version V" or "just above V".

Two facts make the representation canonical, so equal sets compare and hash equal:

* between two distinct versions there is always another one (a local label can be extended
  forever), so no two different cuts are adjacent unless we make them so on purpose;
* the places where PEP 440 needs a boundary *after a family* of versions ("after 1.0 and its
  local versions", "after 1.0a1 and its post-releases") either have a least successor, in
  which case the cut is stored as "just below that successor", or they get a sentinel key
  that sorts above the whole family ("after 1.0, its locals and its post-releases").

Each cut also carries the ``Version`` it was written with and how it was written, only so
``str()`` can print ``>=1.0, <2.0`` rather than ``>=1.0, <2.0.dev0``; equality and hashing
ignore it.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Final

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["VersionSet"]

_LocalKey = tuple[tuple[int, int | str], ...]
# (epoch, trimmed release, pre, post, dev, local), each part ordered like PEP 440:
#   pre:  (0,) dev-only release < (1, rank, n) a/b/rc < (2,) no pre-release
#   post: (0,) none < (1, n) < (2,) sentinel "above every post-release"
#   dev:  (0, n) < (1,) none
#   local: () none < ((0, str) | (1, int), ...) with strings before numbers
_VKey = tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], _LocalKey]
# A cut: (version key, side) where side 0 is "just below" and 1 "just above" the version.
_CutKey = tuple[_VKey, int]
# A cut with its display: (key, how it was written, the version it was written with).
_Cut = tuple[_CutKey, int, Version]

# How a cut prints. As a lower / upper bound of an interval:
_BELOW: Final = 0  # >=v / <v
_BELOW_DEV0: Final = 1  # >=v.dev0 / <v  (PEP 440 "<v" for a final v stops before v.dev0)
_AFTER: Final = 2  # >v / <=v

_PRE_RANK: Final = {"a": 0, "b": 1, "rc": 2}

_cut_key: Final = itemgetter(0)


def _vkey_parts(
    epoch: int,
    release: tuple[int, ...],
    *,
    pre: tuple[str, int] | None,
    post: int | None,
    dev: int | None,
    local: str | None,
) -> _VKey:
    """Build the total-order key of a version from its public parts."""
    end = len(release)
    while end and release[end - 1] == 0:
        end -= 1
    trimmed = release if end == len(release) else release[:end]
    if pre is None:
        # A dev release of a final version sorts before all its pre-releases.
        pre_key: tuple[int, ...] = (0,) if post is None and dev is not None else (2,)
    else:
        pre_key = (1, _PRE_RANK[pre[0]], pre[1])
    post_key = (0,) if post is None else (1, post)
    dev_key = (1,) if dev is None else (0, dev)
    local_key: _LocalKey = (
        ()
        if local is None
        else tuple((1, int(part)) if part.isdigit() else (0, part) for part in local.split("."))
    )
    return (epoch, trimmed, pre_key, post_key, dev_key, local_key)


@functools.lru_cache(maxsize=32768)
def _vkey(version: Version) -> _VKey:
    """Return the total-order key of ``version`` (equal versions give equal keys)."""
    return _vkey_parts(
        version.epoch,
        version.release,
        pre=version.pre,
        post=version.post,
        dev=version.dev,
        local=version.local,
    )


def _after_locals_key(key: _VKey) -> _VKey:
    """Return the least version above ``key`` and every local variant of it.

    ``key`` must have no local segment. 1.0 -> 1.0.post0.dev0, 1.0.dev3 -> 1.0.dev4,
    1.0.post2 -> 1.0.post3.dev0: nothing but ``key``'s locals lies in between.
    """
    epoch, release, pre_key, post_key, dev_key, _ = key
    if dev_key[0] == 0:
        return (epoch, release, pre_key, post_key, (0, dev_key[1] + 1), ())
    if post_key[0] == 1:
        return (epoch, release, pre_key, (1, post_key[1] + 1), (0, 0), ())
    return (epoch, release, pre_key, (1, 0), (0, 0), ())


def _after_posts_key(key: _VKey) -> _CutKey:
    """Return the cut above ``key``, its locals and its post-releases (no dev/post in key).

    For a pre-release 1.0a1 that is just below 1.0a2.dev0. A final 1.0 has no least
    successor (1.0.0.1, 1.0.0.0.1, ... keep getting closer), so it gets a sentinel whose
    post part sorts above every real post-release of 1.0.
    """
    epoch, release, pre_key, _, _, _ = key
    if pre_key[0] == 1:
        return ((epoch, release, (1, pre_key[1], pre_key[2] + 1), (0,), (0, 0), ()), 0)
    return ((epoch, release, (2,), (2,), (0, 0), ()), 0)


_MIN_VERSION: Final = Version("0.dev0")
# Nothing sorts below 0.dev0, so "just below 0.dev0" is the bottom of the version line.
_NEG_KEY: Final[_CutKey] = (_vkey(_MIN_VERSION), 0)
_NEG_CUT: Final[_Cut] = (_NEG_KEY, _BELOW, _MIN_VERSION)


def _below(version: Version) -> _Cut:
    return ((_vkey(version), 0), _BELOW, version)


def _above(version: Version) -> _Cut:
    return ((_vkey(version), 1), _AFTER, version)


def _below_dev0(version: Version) -> _Cut:
    """Return the cut below ``version.dev0``, printed as ``<version`` when it ends a set."""
    key = _vkey_parts(
        version.epoch, version.release, pre=version.pre, post=version.post, dev=0, local=None
    )
    return ((key, 0), _BELOW_DEV0, version)


def _after_locals(version: Version) -> _Cut:
    return ((_after_locals_key(_vkey(version)), 0), _AFTER, version)


def _after_posts(version: Version) -> _Cut:
    return (_after_posts_key(_vkey(version)), _AFTER, version)


def _release_version(epoch: int, release: tuple[int, ...]) -> Version:
    text = ".".join(map(str, release))
    return Version(f"{epoch}!{text}" if epoch else text)


class VersionSet:
    """An immutable, hashable set of versions: a union of disjoint intervals.

    Build one with :meth:`full`, :meth:`empty`, :meth:`exact` or :meth:`from_specifiers`,
    then combine with :meth:`union`, :meth:`intersection`, :meth:`complement` and
    :meth:`difference` (also ``|``, ``&``, ``~`` and ``-``). Every operation is linear in the
    number of intervals.
    """

    __slots__ = ("_cuts", "_hash", "_text")

    _cuts: tuple[_Cut, ...]
    _hash: int | None
    _text: str | None

    def __init__(self) -> None:
        raise TypeError("use VersionSet.full(), .empty(), .exact() or .from_specifiers()")

    @classmethod
    def _make(cls, cuts: tuple[_Cut, ...]) -> VersionSet:
        result = object.__new__(cls)
        object.__setattr__(result, "_cuts", cuts)
        object.__setattr__(result, "_hash", None)
        object.__setattr__(result, "_text", None)
        return result

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VersionSet is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("VersionSet is immutable")

    def __reduce__(self) -> tuple[object, tuple[tuple[_Cut, ...]]]:
        return (_unpickle, (self._cuts,))

    # Construction ------------------------------------------------------------------------

    @classmethod
    def full(cls) -> VersionSet:
        """Return the set of every version."""
        return _FULL

    @classmethod
    def empty(cls) -> VersionSet:
        """Return the set without any version."""
        return _EMPTY

    @classmethod
    def exact(cls, version: Version) -> VersionSet:
        """Return the set holding ``version`` only (not its local variants)."""
        key = _vkey(version)
        return cls._make((((key, 0), _BELOW, version), ((key, 1), _AFTER, version)))

    @classmethod
    def from_specifiers(cls, spec: SpecifierSet | str) -> VersionSet:
        """Return the versions ``spec`` contains, pre-releases included.

        ``v in VersionSet.from_specifiers(s)`` is ``SpecifierSet(s).contains(v,
        prereleases=True)``; choosing whether a pre-release may be picked is the caller's
        business. A string is parsed as a ``SpecifierSet`` (``""`` is every version) and
        raises ``packaging.specifiers.InvalidSpecifier`` when it is not one.
        """
        return _from_specifier_set(spec if isinstance(spec, str) else str(spec))

    # Set algebra -------------------------------------------------------------------------

    def union(self, other: VersionSet) -> VersionSet:
        """Return the versions in either set."""
        a, b = self._cuts, other._cuts
        if not b or a == b:
            return self
        if not a:
            return other
        if len(b) <= 2:
            return VersionSet._make(_splice(a, b, keep_inside=True))
        if len(a) <= 2:
            return VersionSet._make(_splice(b, a, keep_inside=True))
        result: list[_Cut] = []
        i = j = 0
        in_a = in_b = inside = False
        len_a, len_b = len(a), len(b)
        while i < len_a or j < len_b:
            if j >= len_b or (i < len_a and a[i][0] < b[j][0]):
                cut = a[i]
                i += 1
                in_a = not in_a
            elif i >= len_a or b[j][0] < a[i][0]:
                cut = b[j]
                j += 1
                in_b = not in_b
            else:
                cut = a[i]
                i += 1
                j += 1
                in_a = not in_a
                in_b = not in_b
            if (in_a or in_b) is not inside:
                inside = not inside
                result.append(cut)
        return VersionSet._make(tuple(result))

    def intersection(self, other: VersionSet) -> VersionSet:
        """Return the versions in both sets."""
        a, b = self._cuts, other._cuts
        if not a or a == b:
            return self
        if not b:
            return other
        if len(a) == 1 and a[0][0] == _NEG_KEY:
            return other
        if len(b) == 1 and b[0][0] == _NEG_KEY:
            return self
        if len(b) <= 2:
            return VersionSet._make(_clip(a, b))
        if len(a) <= 2:
            return VersionSet._make(_clip(b, a))
        result: list[_Cut] = []
        i = j = 0
        in_a = in_b = inside = False
        len_a, len_b = len(a), len(b)
        while i < len_a and j < len_b:
            key_a, key_b = a[i][0], b[j][0]
            if key_a < key_b:
                cut = a[i]
                i += 1
                in_a = not in_a
            elif key_b < key_a:
                cut = b[j]
                j += 1
                in_b = not in_b
            else:
                cut = a[i]
                i += 1
                j += 1
                in_a = not in_a
                in_b = not in_b
            if (in_a and in_b) is not inside:
                inside = not inside
                result.append(cut)
        # Past its last cut a set stays constant: if it ends inside, the rest follows the other.
        if i == len_a and in_a:
            result.extend(b[j:])
        elif j == len_b and in_b:
            result.extend(a[i:])
        return VersionSet._make(tuple(result))

    def complement(self) -> VersionSet:
        """Return every version not in this set."""
        cuts = self._cuts
        if cuts and cuts[0][0] == _NEG_KEY:
            return VersionSet._make(cuts[1:])
        return VersionSet._make((_NEG_CUT, *cuts))

    def difference(self, other: VersionSet) -> VersionSet:
        """Return the versions in this set but not in ``other``."""
        if not other._cuts or not self._cuts:
            return self
        if len(other._cuts) <= 2:
            return VersionSet._make(_splice(self._cuts, other._cuts, keep_inside=False))
        return self.intersection(other.complement())

    def simplify(self, dont_care: VersionSet) -> VersionSet:
        """Return the set with the fewest intervals that agrees with this one outside ``dont_care``.

        Versions in ``dont_care`` (say, ones known not to exist) may go either way, so
        ``==1.1 | ==1.2 | ==1.3`` with nothing else published below 1.4 becomes ``<1.4``.
        """
        required = self.difference(dont_care)
        if required.is_empty():
            return self
        allowed = self.union(dont_care)._cuts
        needed = required._cuts
        kept: list[_Cut] = []
        # Every interval of ``allowed`` holding a required version is kept whole; the
        # first required cut at or after its start is the start of such a version's run.
        for start in range(0, len(allowed), 2):
            lower = allowed[start]
            upper = allowed[start + 1] if start + 1 < len(allowed) else None
            index = bisect_left(needed, lower[0], key=_cut_key)
            if index < len(needed) and (upper is None or needed[index][0] < upper[0]):
                kept.append(lower)
                if upper is not None:
                    kept.append(upper)
        return VersionSet._make(tuple(kept))

    __or__ = union
    __and__ = intersection
    __sub__ = difference
    __invert__ = complement

    # Queries -----------------------------------------------------------------------------

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, Version):
            return False
        cuts = self._cuts
        if not cuts:
            return False
        key = (_vkey(version), 0)
        if len(cuts) <= 2:
            # Most sets are one interval: two comparisons beat building a key list.
            if key < cuts[0][0]:
                return False
            return len(cuts) == 1 or key < cuts[1][0]
        return bisect_right(cuts, key, key=_cut_key) % 2 == 1

    def is_empty(self) -> bool:
        """Return whether the set holds no version."""
        return not self._cuts

    def is_full(self) -> bool:
        """Return whether the set holds every version."""
        cuts = self._cuts
        return len(cuts) == 1 and cuts[0][0] == _NEG_KEY

    def is_subset(self, other: VersionSet) -> bool:
        """Return whether every version of this set is in ``other``."""
        a, b = self._cuts, other._cuts
        if not a or a == b:
            return True
        if not b:
            return False
        if len(b) == 1 and b[0][0] == _NEG_KEY:
            return True
        if len(a) <= 2:
            # One interval [lower, upper): it must start inside an interval of ``other``
            # that ends no earlier than it does.
            lower = a[0][0]
            index = bisect_right(b, lower, key=_cut_key)
            if index % 2 == 0:
                return False
            return index == len(b) or (len(a) == 2 and b[index][0] >= a[1][0])
        i = j = 0
        in_a = in_b = False
        len_a, len_b = len(a), len(b)
        while i < len_a or j < len_b:
            if j >= len_b or (i < len_a and a[i][0] < b[j][0]):
                i += 1
                in_a = not in_a
            elif i >= len_a or b[j][0] < a[i][0]:
                j += 1
                in_b = not in_b
            else:
                i += 1
                j += 1
                in_a = not in_a
                in_b = not in_b
            # The region up to the next cut holds versions (the cuts are canonical).
            if in_a and not in_b:
                return False
        return True

    def is_disjoint(self, other: VersionSet) -> bool:
        """Return whether no version is in both sets."""
        a, b = self._cuts, other._cuts
        if not a or not b:
            return True
        if len(b) <= 2 < len(a):
            a, b = b, a
        if len(a) <= 2:
            # One interval [lower, upper): it must start outside ``other`` and end before
            # ``other``'s next interval starts.
            index = bisect_right(b, a[0][0], key=_cut_key)
            if index % 2 == 1:
                return False
            return index == len(b) or (len(a) == 2 and b[index][0] >= a[1][0])
        i = j = 0
        in_a = in_b = False
        len_a, len_b = len(a), len(b)
        while i < len_a and j < len_b:
            key_a, key_b = a[i][0], b[j][0]
            if key_a < key_b:
                i += 1
                in_a = not in_a
            elif key_b < key_a:
                j += 1
                in_b = not in_b
            else:
                i += 1
                j += 1
                in_a = not in_a
                in_b = not in_b
            if in_a and in_b:
                return False
        # One list is exhausted: the sets meet only if the other is still open and the
        # exhausted one extends to infinity.
        return not ((in_a and j < len_b) or (in_b and i < len_a))

    def interval_count(self) -> int:
        """Return how many disjoint intervals make up the set."""
        return (len(self._cuts) + 1) // 2

    def singleton(self) -> Version | None:
        """Return the only version of the set, or ``None`` if it has none or several."""
        cuts = self._cuts
        if len(cuts) == 2:
            (key, side), _, _ = cuts[0]
            if side == 0 and cuts[1][0] == (key, 1):
                return _point(cuts[0])
        return None

    def pinned(self) -> Version | None:
        """Return ``v`` when the set is ``==v``: one public version and its local variants.

        A strict :meth:`singleton` too. The solver decides pinned packages first.
        """
        cuts = self._cuts
        if len(cuts) == 2 and _is_point(cuts[0], cuts[1]):
            return _point(cuts[0])
        return None

    # Identity and display ----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionSet):
            return NotImplemented
        a, b = self._cuts, other._cuts
        return len(a) == len(b) and all(x[0] == y[0] for x, y in zip(a, b, strict=True))

    def __hash__(self) -> int:
        cached = self._hash
        if cached is None:
            cached = hash(tuple(cut[0] for cut in self._cuts))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __repr__(self) -> str:
        return f"<VersionSet {self}>"

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._render()
            object.__setattr__(self, "_text", text)
        return text

    def _render(self) -> str:
        cuts = self._cuts
        if not cuts:
            return "∅"
        if self.is_full():
            return "*"
        bounds: list[tuple[_Cut, _Cut | None]] = [
            (cuts[i], cuts[i + 1] if i + 1 < len(cuts) else None) for i in range(0, len(cuts), 2)
        ]
        runs: list[str] = []
        lower = bounds[0][0]
        holes: list[str] = []
        for index, (_, upper) in enumerate(bounds):
            following = bounds[index + 1][0] if index + 1 < len(bounds) else None
            if upper is not None and following is not None:
                hole = _hole(upper, following)
                if hole is not None:
                    holes.append(hole)
                    continue
            runs.append(_run(lower, upper, holes))
            holes = []
            if following is not None:
                lower = following
        return " | ".join(runs)


def _splice(
    cuts: tuple[_Cut, ...], interval: tuple[_Cut, ...], *, keep_inside: bool
) -> tuple[_Cut, ...]:
    """Return ``cuts`` with one interval added (``keep_inside``) or removed.

    The cuts before and after the interval are copied as slices, so excluding one version
    from a set with hundreds of holes costs two bisections and a copy.
    """
    lower = interval[0]
    start = bisect_left(cuts, lower[0], key=_cut_key)
    inside_before = start % 2 == 1
    middle: list[_Cut] = []
    if inside_before is not keep_inside:
        middle.append(lower)
    if len(interval) == 1:
        return (*cuts[:start], *middle)
    upper = interval[1]
    end = bisect_right(cuts, upper[0], key=_cut_key)
    if (end % 2 == 1) is not keep_inside:
        middle.append(upper)
    return (*cuts[:start], *middle, *cuts[end:])


def _clip(cuts: tuple[_Cut, ...], interval: tuple[_Cut, ...]) -> tuple[_Cut, ...]:
    """Return ``cuts`` restricted to one interval."""
    lower = interval[0]
    start = bisect_right(cuts, lower[0], key=_cut_key)
    head = (lower,) if start % 2 == 1 else ()
    if len(interval) == 1:
        return (*head, *cuts[start:])
    upper = interval[1]
    end = bisect_left(cuts, upper[0], key=_cut_key)
    tail = (upper,) if end % 2 == 1 else ()
    return (*head, *cuts[start:end], *tail)


def _unpickle(cuts: tuple[_Cut, ...]) -> VersionSet:
    return VersionSet._make(cuts)


_PRE_LETTER: Final = {rank: letter for letter, rank in _PRE_RANK.items()}


def _point(cut: _Cut) -> Version:
    """Return the version a "just below" cut sits under."""
    (key, _), kind, version = cut
    if kind == _BELOW:
        return version
    if kind == _BELOW_DEV0:
        return Version(f"{version}.dev0")
    # An "after" bound stored as "just below its successor" ("<=1.0" ends below
    # 1.0.post0.dev0): rebuild that successor, keeping the label's spelling of the release.
    epoch, release, pre_key, post_key, dev_key, local_key = key
    if version.epoch == epoch and _vkey(_release_version(epoch, version.release))[1] == release:
        release = version.release
    text = ".".join(map(str, release or (0,)))
    if epoch:
        text = f"{epoch}!{text}"
    if pre_key[0] == 1:
        text += f"{_PRE_LETTER[pre_key[1]]}{pre_key[2]}"
    if post_key[0] == 1:
        text += f".post{post_key[1]}"
    if dev_key[0] == 0:
        text += f".dev{dev_key[1]}"
    if local_key:
        text += "+" + ".".join(str(part) for _, part in local_key)
    return Version(text)


def _is_point(lower: _Cut, upper: _Cut) -> bool:
    """Return whether [lower, upper) is one public version, with or without its locals."""
    (key, side), _, _ = lower
    # Sentinel keys (post part (2,)) sit above a whole family, never under a version.
    if side != 0 or key[3][0] == 2:
        return False
    upper_key = upper[0]
    return upper_key == (key, 1) or (not key[5] and upper_key == (_after_locals_key(key), 0))


def _hole(upper: _Cut, following: _Cut) -> str | None:
    """Return ``!=v`` or ``!=v.*`` when the gap between two intervals is one of those."""
    _, kind, version = upper
    if _is_point(upper, following):
        return f"!={_point(upper)}"
    if kind == _BELOW_DEV0 and following[1] == _BELOW_DEV0:
        prefix = _wildcard_prefix(version, following[2])
        if prefix is not None:
            return f"!={prefix}.*"
    return None


def _wildcard_prefix(lower: Version, upper: Version) -> str | None:
    """Return ``lower`` when [lower.dev0, upper.dev0) is exactly ``==lower.*``."""
    if (
        lower.epoch == upper.epoch
        and len(lower.release) == len(upper.release)
        and lower.release[:-1] == upper.release[:-1]
        and lower.release[-1] + 1 == upper.release[-1]
        and lower.pre is None
        and lower.post is None
        and upper.pre is None
        and upper.post is None
    ):
        return str(lower)
    return None


def _run(lower: _Cut, upper: _Cut | None, holes: list[str]) -> str:
    """Print one interval (or several joined by single-point holes)."""
    _, lower_kind, lower_version = lower
    if upper is not None:
        _, upper_kind, upper_version = upper
        if not holes and _is_point(lower, upper):
            return f"=={_point(lower)}"
        (key, side), _, _ = lower
        if not holes and side == 1 and upper[0] == (_after_locals_key(key), 0) and not key[5]:
            # What is left of "==1.0" once the plain 1.0 is ruled out: its local versions.
            return f"=={lower_version}+*"
        if lower_kind == _BELOW_DEV0 and upper_kind == _BELOW_DEV0:
            prefix = _wildcard_prefix(lower_version, upper_version)
            if prefix is not None:
                return ", ".join([f"=={prefix}.*", *holes])
    parts: list[str] = []
    if lower[0] != _NEG_KEY:
        if lower_kind == _BELOW:
            parts.append(f">={lower_version}")
        elif lower_kind == _BELOW_DEV0:
            parts.append(f">={lower_version}.dev0")
        else:
            parts.append(f">{lower_version}")
    parts.extend(holes)
    if upper is not None:
        parts.append(f"<={upper[2]}" if upper[1] == _AFTER else f"<{upper[2]}")
    return ", ".join(parts) if parts else "*"


def _single_specifier(operator: str, text: str) -> VersionSet:
    """Return the versions one specifier contains, mirroring packaging 26's ranges."""
    make = VersionSet._make
    if operator == "===":
        # Approximation: packaging compares the candidate's *string* case-insensitively, so
        # "===1.0" matches the string "1.0" but not "1.0.0". Sets are keyed by PEP 440
        # equality and cannot tell those apart; we keep every version equal to the parsed
        # one, and nothing when the string is not a valid version.
        try:
            return VersionSet.exact(Version(text))
        except InvalidVersion:
            return _EMPTY
    if text.endswith(".*"):
        base = Version(text[:-2])
        prefix = _release_version(base.epoch, base.release)
        following = _release_version(base.epoch, (*base.release[:-1], base.release[-1] + 1))
        inside = make((_below_dev0(prefix), _below_dev0(following)))
        return inside if operator == "==" else inside.complement()
    version = Version(text)
    if operator == ">=":
        return make((_below(version),))
    if operator == "<=":
        # Specifier syntax forbids a local label here; "<=1.0" admits 1.0+anything.
        return make((_NEG_CUT, _after_locals(version)))
    if operator == ">":
        if version.dev is not None or version.post is not None:
            # ">1.0.dev1" starts at 1.0.dev2 and ">1.0.post1" at 1.0.post2.dev0: past the
            # bound's own locals, which is exactly where "after its locals" lands.
            return make((_after_locals(version),))
        # ">1.0" excludes 1.0's local versions and post-releases (PEP 440).
        return make((_after_posts(version),))
    if operator == "<":
        # "<1.0" excludes 1.0's pre-releases and dev releases unless 1.0 is one itself.
        upper = _below(version) if version.is_prerelease else _below_dev0(version)
        if upper[0] <= _NEG_KEY:
            return _EMPTY
        return make((_NEG_CUT, upper))
    if operator == "~=":
        following = _release_version(
            version.epoch, (*version.release[:-2], version.release[-2] + 1)
        )
        return make((_below(version), _below_dev0(following)))
    # "==" and "!=": without a local label in the specifier, every local variant matches.
    upper = _above(version) if version.local is not None else _after_locals(version)
    inside = make((_below(version), upper))
    if operator == "==":
        return inside
    if operator == "!=":
        return inside.complement()
    raise ValueError(f"unknown specifier operator {operator!r}")


_from_single = functools.lru_cache(maxsize=8192)(_single_specifier)


@functools.lru_cache(maxsize=8192)
def _from_specifier_set(text: str) -> VersionSet:
    result = _FULL
    for specifier in SpecifierSet(text):
        result = result.intersection(_from_single(specifier.operator, specifier.version))
    return result


_FULL: Final = VersionSet._make((_NEG_CUT,))
_EMPTY: Final = VersionSet._make(())
