"""What a build starts from: a source distribution, a project directory or a git checkout.

A :class:`Source` names one buildable thing and where its built wheels live in
``built-wheels-v0``. The revision is what makes a new build necessary when the source
changes: an sdist's sha256, a local archive's mtime and size, a project directory's
``pyproject.toml``/``setup.py``/``setup.cfg`` mtimes, a git commit.
"""

from __future__ import annotations

import enum
import hashlib
import os
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from msgspec import Struct
from msgspec.structs import replace
from packaging.utils import canonicalize_name

from burrowd.daemon.builder.git import parse_git_url
from burrowd.daemon.cache.layout import Bucket, digest, url_digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.index.client import DIRECT, is_local, local_path
from burrowd.daemon.index.http import redact
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import split_hash
from burrowd.daemon.inputs.model import RequirementEntry

__all__ = [
    "FRESHNESS_FILES",
    "Source",
    "SourceKind",
    "direct_source",
    "directory_revision",
    "pinned_url",
    "sdist_source",
]

#: The files whose mtimes stand for a project directory's revision (as uv keys it).
FRESHNESS_FILES: Final = ("pyproject.toml", "setup.py", "setup.cfg")


class SourceKind(enum.Enum):
    """Where a source comes from."""

    REGISTRY = "index"  # an sdist listed on an index
    URL = "url"  # an sdist named by a direct URL
    ARCHIVE = "archive"  # a local sdist file
    DIRECTORY = "directory"  # a local project directory
    GIT = "git"  # a git repository at a commit


class Source(Struct, frozen=True):
    """One buildable source.

    :param name: the canonical project name the requirement gives.
    :param url: the sdist's URL, the ``file://`` URL of a path, or the repository URL
        (``git+https://host/repo``, without ``@ref`` and fragment).
    :param filename: the sdist's filename (registry, URL, archive).
    :param location: the index the sdist was found on (registry).
    :param sha256: the sdist's digest when known before downloading it.
    :param path: the local archive or directory, or a git checkout once made.
    :param commit: the git commit (``ref`` resolved).
    """

    kind: SourceKind
    name: str
    url: str
    filename: str = ""
    location: str = ""
    sha256: str | None = None
    path: Path | None = None
    ref: str | None = None
    commit: str | None = None
    subdirectory: str | None = None
    editable: bool = False
    #: sha256 digests ``--hash`` allows for the source archive (empty: unchecked).
    pins: frozenset[str] = frozenset()
    #: The revision a build used (a directory's), recorded with what is installed.
    revision: str | None = None

    def describe(self) -> str:
        """Return what to call the source in messages."""
        if self.kind is SourceKind.GIT:
            at = f"@{self.commit or self.ref}" if (self.commit or self.ref) else ""
            sub = f"#subdirectory={self.subdirectory}" if self.subdirectory else ""
            return f"{redact(self.url)}{at}{sub}"
        if self.kind in (SourceKind.REGISTRY, SourceKind.URL):
            return self.filename or redact(self.url)
        if self.path is not None:
            return str(self.path)
        return self.filename or redact(self.url)

    def base_dir(self, cache: Cache) -> Path:
        """Return the directory of this source's revisions in ``built-wheels-v0``."""
        if self.kind is SourceKind.REGISTRY:
            return cache.path(
                Bucket.BUILT_WHEELS, "index", digest(self.location), self.name, self.filename
            )
        if self.kind is SourceKind.URL:
            return cache.path(Bucket.BUILT_WHEELS, "url", url_digest(self.url))
        if self.kind is SourceKind.GIT:
            assert self.commit is not None, "a git source is resolved to a commit first"
            sub = digest(self.subdirectory) if self.subdirectory else "root"
            return cache.path(
                Bucket.BUILT_WHEELS, "git", url_digest(self.url), f"{self.commit}-{sub}"
            )
        assert self.path is not None
        return cache.path(Bucket.BUILT_WHEELS, "path", digest(str(self.path)))


def directory_revision(directory: Path) -> str:
    """Return a project directory's revision: a digest of its build files' mtimes.

    A file that is missing counts as such, so adding a ``setup.cfg`` is a change too.
    """
    h = hashlib.blake2b(digest_size=8)
    for name in FRESHNESS_FILES:
        try:
            st = os.stat(directory / name)
        except FileNotFoundError:
            h.update(f"{name}:-;".encode())
            continue
        h.update(f"{name}:{st.st_mtime_ns}:{st.st_size};".encode())
    return h.hexdigest()


def sdist_source(file: IndexFile, location: str, name: str) -> Source:
    """Return the build source of an sdist found on an index or named by a direct reference."""
    if location != DIRECT:
        return Source(
            SourceKind.REGISTRY,
            canonicalize_name(name),
            file.url,
            filename=file.filename,
            location=location,
            sha256=file.sha256,
        )
    if is_local(file.url):
        return Source(
            SourceKind.ARCHIVE,
            canonicalize_name(name),
            file.url,
            filename=file.filename,
            path=local_path(file.url),
        )
    return Source(
        SourceKind.URL,
        canonicalize_name(name),
        file.url,
        filename=file.filename,
        sha256=file.sha256,
    )


def direct_source(entry: RequirementEntry) -> Source:
    """Return the build source of a direct reference that needs a build to be known."""
    url = entry.requirement.url or ""
    if entry.path is not None and entry.path.is_dir():
        return Source(
            SourceKind.DIRECTORY,
            entry.name,
            url,
            path=entry.path,
            editable=entry.editable,
        )
    if url.startswith("git+"):
        ref = parse_git_url(url)
        if entry.editable:
            raise InvalidRequirement(
                f"-e {redact(url)}: an editable install needs a directory of your own; clone "
                "the repository and install it with -e ./DIRECTORY",
                file=entry.origin.file,
                line=entry.origin.line,
            )
        return Source(
            SourceKind.GIT,
            entry.name,
            ref.url,
            ref=ref.ref,
            subdirectory=ref.subdirectory,
            editable=entry.editable,
        )
    clean, hashes = split_hash(url)
    filename = unquote(clean.rstrip("/").rsplit("/", 1)[-1])
    file = IndexFile(filename=filename, url=clean, hashes=hashes)
    pinned = {h.partition(":")[2] for h in entry.hashes if h.startswith("sha256:")}
    source = sdist_source(file, DIRECT, entry.name)
    return replace(source, pins=frozenset(pinned)) if pinned else source


def pinned_url(source: Source, entry: RequirementEntry) -> str:
    """Return the URL a resolved source is pinned as: a git one at its commit."""
    if source.kind is SourceKind.GIT and source.commit is not None:
        return parse_git_url(
            source.url + (f"#subdirectory={source.subdirectory}" if source.subdirectory else "")
        ).pinned(source.commit)
    return split_hash(entry.requirement.url or source.url)[0]
