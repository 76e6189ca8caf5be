"""Reuse the last resolution of unchanged inputs while the pages it used are unchanged.

A warm ``compile`` whose inputs, options, preferences and target are those of a recent one
gives the same pins as long as the index pages the resolution read say the same: the
resolver need not run again. Before a resolution is reused, every page it used is read again
the way any request reads it (from memory while fresh, revalidated once stale, all of them
in parallel; local indexes by mtime), and compared with the page the resolution saw. One
page that differs, and the request resolves as usual.

The caller decides what may be kept: only resolutions of index packages, since a direct
reference (a local project, a URL) has metadata no page vouches for, and each kept with the
pages as that resolution saw them. ``cache clean`` forgets every resolution: it is how a user
asks for everything to be read again.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Generic, TypeVar

from msgspec import Struct

__all__ = ["MEMO_SIZE", "Memo", "ResolutionMemo"]

T = TypeVar("T")
P = TypeVar("P")

#: Resolutions kept: one per input a user or an editor compiles repeatedly.
MEMO_SIZE: Final = 16

PageKey = tuple[str, str]


class Memo(Struct, Generic[T, P], frozen=True):
    """A resolution, with the pages it used as it saw them."""

    value: T
    pages: Mapping[PageKey, P | None]


class ResolutionMemo(Generic[T, P]):
    """The last resolutions, by a digest of everything that decides them."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._entries: collections.OrderedDict[bytes, Memo[T, P]] = collections.OrderedDict()
        #: Reused / resolved again because a page changed (for tests and ``status``).
        self.hits = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, key: bytes, read_page: Callable[[str, str], Awaitable[P | None]]
    ) -> Memo[T, P] | None:
        """Return the memo of ``key`` if every page it used reads the same now."""
        memo = self._entries.get(key)
        if memo is None:
            return None
        now = await asyncio.gather(*(read_page(loc, name) for loc, name in memo.pages))
        for old, new in zip(memo.pages.values(), now, strict=True):
            if new is not old and new != old:
                self._entries.pop(key, None)
                self.stale += 1
                return None
        self._entries.move_to_end(key)
        self.hits += 1
        return memo

    def clear(self) -> None:
        """Forget every resolution (after ``cache clean``)."""
        self._entries.clear()

    def put(self, key: bytes, memo: Memo[T, P]) -> None:
        """Keep ``memo`` for ``key``, forgetting the least recently used beyond the size."""
        self._entries[key] = memo
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
