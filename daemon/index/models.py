"""Simple-API data as structs: project pages, their files, and HTTP cache policy.

Pages are stored in ``simple-v0`` as msgpack of these structs (array-like, so a page with
thousands of files decodes in a fraction of a millisecond).

The per-file structs are ``gc=False``: a cold resolve creates hundreds of thousands of
them, and while the cycle collector tracked them it spent a seventh of a cold resolve
walking them. They hold only strings, numbers and string dicts, so no cycle can pass
through one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from burrowd.daemon.index.parse import PageFiles

__all__ = [
    "CachePolicy",
    "CachedPage",
    "IndexFile",
    "JsonFile",
    "ProjectPage",
]


class IndexFile(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One file of a project page, with its URL made absolute."""

    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = None
    #: ``None`` when not yanked, else the reason (possibly empty).
    yanked: str | None = None
    #: ISO 8601 upload time (PEP 700), when the index says.
    upload_time: str | None = None
    size: int | None = None
    #: PEP 658/714: hashes of the ``.metadata`` file ({} when offered without hashes).
    core_metadata: dict[str, str] | None = None

    @property
    def is_wheel(self) -> bool:
        """Return whether this is a wheel."""
        return self.filename.endswith(".whl")

    @property
    def sha256(self) -> str | None:
        """Return the sha256 the index gives, if any."""
        return self.hashes.get("sha256")


class ProjectPage(msgspec.Struct, frozen=True, array_like=True, dict=True):
    """All files of one project on one index (or find-links location).

    A PEP 691 page keeps its body (``json``, with the URL it came from for relative links)
    and is read one file at a time: a popular project lists tens of thousands of files and
    a resolution looks at a version or two, so building every :class:`IndexFile` up front
    cost more than anything else between a large page's arrival and the next request.
    :attr:`listing` has every filename at once and each file when asked. Pages read whole
    (HTML, find-links, directories) keep their files in ``parsed``.
    """

    name: str
    index_url: str
    parsed: list[IndexFile]
    json: bytes | None = None
    json_url: str = ""

    @property
    def listing(self) -> PageFiles:
        """Return this page's files by position (built once; thread-safe to call)."""
        listing: PageFiles | None = self.__dict__.get("_listing")
        if listing is None:
            # parse.py builds listings and imports this module: import it when first needed.
            from burrowd.daemon.index.parse import page_listing  # noqa: PLC0415

            listing = self.__dict__["_listing"] = page_listing(self)
        return listing

    @property
    def files(self) -> list[IndexFile]:
        """Return every file of the page (building each; the resolver uses :attr:`listing`)."""
        return self.listing.all()


class CachePolicy(msgspec.Struct, frozen=True, array_like=True):
    """How long a stored response stays fresh and how to revalidate it."""

    #: Wall-clock time the response was received or last revalidated.
    stored_at: float
    #: Freshness lifetime in seconds (from headers or the heuristic TTL).
    lifetime: float
    #: Where the lifetime came from: "max-age", "expires", "heuristic", "mtime", "no-cache".
    source: str
    etag: str | None = None
    last_modified: str | None = None
    #: For ``file://`` pages: the file's mtime in ns when read.
    mtime_ns: int | None = None

    def age(self, now: float) -> float:
        """Return the age of the stored response."""
        return max(0.0, now - self.stored_at)

    def is_fresh(self, now: float) -> bool:
        """Return whether the response may be used without revalidation."""
        return self.source != "no-cache" and self.age(now) < self.lifetime


class CachedPage(msgspec.Struct, frozen=True, array_like=True):
    """A project page with its cache policy, as stored on disk and kept in memory."""

    policy: CachePolicy
    page: ProjectPage | None  # None: the project is not on this index (a cached 404)
    #: The URL the page was fetched from after redirects (relative links resolve against it).
    url: str = ""


# -- PEP 691 JSON, as served --------------------------------------------------------------


class JsonFile(msgspec.Struct, frozen=True, rename="kebab", gc=False):
    """A file entry of a PEP 691 project page.

    Only ``filename`` and ``url`` must have their types: an entry without them cannot be
    used. The other keys are read as pip reads them, whatever JSON they hold
    (``_index_file`` in :mod:`~burrowd.daemon.index.parse` keeps the values of the right type):
    a ``"yanked": null`` or a ``"size": "123"`` must not drop the file, which would make a
    resolution quietly pick another version.
    """

    filename: str
    url: str
    hashes: Any = None
    requires_python: Any = None
    yanked: Any = False
    upload_time: Any = None
    size: Any = None
    core_metadata: Any = None
    dist_info_metadata: Any = None
