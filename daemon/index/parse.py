"""Parse project pages: PEP 691 JSON, PEP 503 HTML, and find-links pages and directories.

HTML pages are read with a small regular-expression scanner rather than ``html.parser``:
simple-API pages are flat lists of anchors, and the scanner is several times faster on
pages with thousands of files (which private mirrors without JSON serve).
"""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import msgspec
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from burrowd.daemon.index.models import IndexFile, JsonFile, ProjectPage

__all__ = [
    "DIST_SUFFIXES",
    "SDIST_SUFFIXES",
    "PageFiles",
    "filename_project",
    "page_listing",
    "parse_html_page",
    "parse_json_page",
    "parse_sdist",
    "scan_directory",
    "sdist_suffix",
    "sdist_version",
    "split_hash",
]

log = logging.getLogger(__name__)

#: Source archives that are candidates, as for pip and uv: PEP 625's ``.tar.gz``, and the
#: formats of releases uploaded before it (``.zip``, ``.tar.bz2``...) that Python's ``tarfile``
#: and ``zipfile`` read. Longer suffixes first: :func:`sdist_suffix` takes the first match.
SDIST_SUFFIXES: Final = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".txz", ".tar", ".zip")
DIST_SUFFIXES: Final = (".whl", *SDIST_SUFFIXES)

_ANCHOR: Final = re.compile(rb"<a\s([^>]*)>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_ATTR: Final = re.compile(
    rb"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
_BASE: Final = re.compile(rb"<base\s[^>]*href\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


def split_hash(url: str) -> tuple[str, dict[str, str]]:
    """Return ``url`` without its fragment, and the hash the fragment names."""
    parts = urlsplit(url)
    hashes: dict[str, str] = {}
    if parts.fragment:
        for item in parts.fragment.split("&"):
            algorithm, sep, value = item.partition("=")
            if sep and algorithm.lower() in _HASH_ALGORITHMS:
                hashes[algorithm.lower()] = value.lower()
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")), hashes


_HASH_ALGORITHMS: Final = frozenset({"sha256", "sha384", "sha512", "sha224", "md5", "sha1"})


def _metadata_attr(value: str | None) -> dict[str, str] | None:
    """Interpret ``data-core-metadata``: absent, "true", "false" or ``algo=digest``."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() == "false":
        return None
    if value.lower() == "true" or "=" not in value:
        return {}
    algorithm, _, digest = value.partition("=")
    return {algorithm.lower(): digest.lower()}


def filename_project(filename: str, project: str | None = None) -> tuple[str, str] | None:
    """Return ``(canonical name, version)`` of a wheel or sdist filename, or ``None``.

    Given the canonical ``project`` a page is for, an sdist whose version holds a dash
    (``foo-1.0-1.tar.gz``: 1.0.post1) is split after that name, as pip and uv do.
    """
    try:
        if filename.endswith(".whl"):
            name, version, _b, _t = parse_wheel_filename(filename)
            return name, str(version)
        if filename.endswith(SDIST_SUFFIXES):
            try:
                name, version = parse_sdist(filename)
            except InvalidSdistFilename:
                if project is None:
                    raise
            else:
                if project is None or name == project:
                    return name, str(version)
            stem = _sdist_stem(filename)
            raw = sdist_version(stem, project)
            if raw is not None:
                return project, str(Version(raw))
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion, ValueError):
        return None
    return None


def sdist_suffix(filename: str) -> str | None:
    """Return the suffix of :data:`SDIST_SUFFIXES` that ``filename`` ends with, if any."""
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            return suffix
    return None


def _sdist_stem(filename: str) -> str:
    """Return an sdist filename (one of :data:`SDIST_SUFFIXES`) without its suffix."""
    return filename[: -len(sdist_suffix(filename) or "")]


def parse_sdist(filename: str) -> tuple[NormalizedName, Version]:
    """Return the name and version of an sdist filename, split at its last dash as
    packaging's ``parse_sdist_filename`` does, for every suffix of :data:`SDIST_SUFFIXES`
    (packaging knows ``.tar.gz`` and ``.zip`` only). Raise :class:`InvalidSdistFilename`.
    """
    suffix = sdist_suffix(filename)
    if suffix is None:
        raise InvalidSdistFilename(
            f"Invalid sdist filename (extension must be one of {', '.join(SDIST_SUFFIXES)}): "
            f"{filename!r}"
        )
    name_part, sep, version_part = filename[: -len(suffix)].rpartition("-")
    if not sep:
        raise InvalidSdistFilename(f"Invalid sdist filename: {filename!r}")
    try:
        version = Version(version_part)
    except InvalidVersion as exc:
        raise InvalidSdistFilename(
            f"Invalid sdist filename (invalid version): {filename!r}"
        ) from exc
    return canonicalize_name(name_part), version


def sdist_version(stem: str, name: str) -> str | None:
    """Return the version part of the sdist filename ``stem`` (no suffix) of project
    ``name``, split right after the name, or ``None`` if it is not ``name``'s.

    Splitting at the last dash would lose a version that holds one (``foo-1.0-1``, a
    legacy post-release; ``foo-2.0-rc1``), which pip and uv read.
    """
    at = stem.find("-")
    while at != -1:
        if canonicalize_name(stem[:at]) == name:
            return stem[at + 1 :] or None
        at = stem.find("-", at + 1)
    return None


def _lower_keys(d: dict[str, str]) -> dict[str, str]:
    """Return ``d`` with lowercase keys and values, reusing it when it already is."""
    for k, v in d.items():
        if not (k.islower() and (v.islower() or v.isdigit())):
            return {k.lower(): v.lower() for k, v in d.items()}
    return d


class _RawJsonPage(msgspec.Struct, frozen=True):
    """A PEP 691 page with each file entry left as its JSON text."""

    name: str
    files: list[msgspec.Raw]


class _Filename(msgspec.Struct, frozen=True, gc=False):
    filename: str


_raw_page_decoder: Final = msgspec.json.Decoder(_RawJsonPage)
_filename_decoder: Final = msgspec.json.Decoder(_Filename)
_file_decoder: Final = msgspec.json.Decoder(JsonFile)


class PageFiles:
    """The files of one page by position: every filename at once, each file when asked.

    For a PEP 691 page the file entries stay JSON text until :meth:`get` builds one (then
    it is kept): grouping a project by version needs only the names, and a resolution then
    looks at the files of a version or two. An entry that names a file but has no usable
    URL is skipped (:meth:`skipped` says why, for the resolver to warn); the rest of the
    page stays usable. Concurrent :meth:`get` calls of one entry build equal files, so
    worker threads may share a listing.
    """

    __slots__ = ("_broken", "_files", "_groups", "_raws", "_url", "filenames")

    def __init__(
        self,
        filenames: list[str],
        files: list[IndexFile | None],
        raws: list[msgspec.Raw] | None = None,
        url: str = "",
    ) -> None:
        #: The filename of each entry, in page order.
        self.filenames = filenames
        self._files = files
        self._raws = raws
        self._url = url
        #: Why each entry skipped as unreadable was skipped, by position.
        self._broken: dict[int, str] = {}
        self._groups: tuple[str, dict[str, list[int]]] | None = None

    @classmethod
    def of(cls, files: list[IndexFile]) -> PageFiles:
        """Return the listing of files already built."""
        return cls([f.filename for f in files], list(files))

    @classmethod
    def from_json(cls, raw: _RawJsonPage, page_url: str) -> PageFiles:
        """Return the listing of a PEP 691 page; only the filenames are read now."""
        decode = _filename_decoder.decode
        filenames = [decode(entry).filename for entry in raw.files]
        return cls(filenames, [None] * len(filenames), raw.files, page_url)

    def __len__(self) -> int:
        return len(self.filenames)

    def get(self, i: int) -> IndexFile | None:
        """Return entry ``i`` (built on first use), ``None`` if it cannot be read."""
        f = self._files[i]
        if f is not None or self._raws is None or i in self._broken:
            return f
        try:
            f = _index_file(_file_decoder.decode(self._raws[i]), self._url)
        except (msgspec.DecodeError, ValueError) as exc:  # ValueError: a URL urljoin refuses
            self._broken[i] = str(exc)
            log.warning(
                "skipping %s on the page %s: its entry cannot be read (%s)",
                self.filenames[i],
                self._url,
                exc,
            )
            return None
        self._files[i] = f
        return f

    def skipped(self, i: int) -> str | None:
        """Return why entry ``i`` was skipped as unreadable, ``None`` if it was not (yet)."""
        return self._broken.get(i)

    def built(self) -> int:
        """Return how many entries have been built so far."""
        return len(self._files) - self._files.count(None)

    def all(self) -> list[IndexFile]:
        """Return every readable file, in page order."""
        return [f for i in range(len(self.filenames)) if (f := self.get(i)) is not None]

    def grouped(self, name: str) -> bool:
        """Return whether :meth:`groups` for ``name`` is ready (no work left)."""
        return self._groups is not None and self._groups[0] == name

    def groups(self, name: str) -> dict[str, list[int]]:
        """Return the positions of project ``name``'s distributions by the version string
        in their filenames (other files, and other projects', are left out).

        Built once per name with plain string operations, then kept, so every target and
        request shares it. This is the hot loop of a cold resolve (a popular project lists
        tens of thousands of files): it keeps only positions, since a tuple per file costs
        as much again (the cycle collector tracks tuples), and a wheel's tags are split
        when its version is looked at.
        """
        cached = self._groups
        if cached is not None and cached[0] == name:
            return cached[1]
        groups: dict[str, list[int]] = {}
        # Each distinct name in a filename is judged once.
        same_name: dict[str, bool] = {name.replace("-", "_"): True}
        for i, filename in enumerate(self.filenames):
            if filename.endswith(".whl"):
                if not 4 <= filename.count("-") <= 5:
                    continue  # not name-version-[build-]python-abi-platform
                parts = filename.split("-", 2)
                fname = parts[0]
                raw = parts[1]
            elif filename.endswith(SDIST_SUFFIXES):
                stem = _sdist_stem(filename)
                fname, sep, raw = stem.rpartition("-")
                if not sep:
                    continue
            else:
                continue
            ok = same_name.get(fname)
            if ok is None:
                ok = same_name[fname] = canonicalize_name(fname) == name
            if not ok:
                if filename.endswith(".whl") or "-" not in fname:
                    continue
                found_raw = sdist_version(stem, name)  # a version holding a dash
                if found_raw is None:
                    continue
                raw = found_raw
            found = groups.get(raw)
            if found is None:
                groups[raw] = [i]
            else:
                found.append(i)
        self._groups = (name, groups)
        return groups


def _index_file(f: JsonFile, page_url: str) -> IndexFile:
    """Return the :class:`IndexFile` of a PEP 691 file entry.

    A value of the wrong type counts as absent, as pip reads it (``"yanked": null`` is not
    yanked, a ``size`` that is no number is unknown, a hash that is no string is left out).
    The common case (an absolute URL without a fragment, hashes already lowercase, nothing
    yanked, no metadata file) takes a short path: ``urljoin`` alone costs microseconds.
    """
    url = f.url
    if url.startswith(("https://", "http://")) and "#" not in url:
        hashes = _hash_dict(f.hashes)
    else:
        url, fragment_hashes = split_hash(urljoin(page_url, url))
        hashes = _hash_dict(f.hashes) or fragment_hashes
    meta = f.core_metadata if f.core_metadata is not None else f.dist_info_metadata
    core: dict[str, str] | None
    if meta is True:
        core = {}
    elif isinstance(meta, dict):
        core = _hash_dict(meta)
    else:  # absent, false, or not a value PEP 691 allows: no metadata file to rely on
        core = None
    yanked = f.yanked
    if isinstance(yanked, str):
        reason: str | None = yanked  # "" too: yanked without a reason, as uv reads it
    else:
        reason = "" if yanked else None
    requires_python = f.requires_python
    size = f.size
    return IndexFile(
        f.filename,
        url,
        hashes,
        requires_python if isinstance(requires_python, str) and requires_python else None,
        reason,
        f.upload_time if isinstance(f.upload_time, str) else None,
        size if type(size) is int and size >= 0 else None,
        core,
    )


def _hash_dict(value: object) -> dict[str, str]:
    """Return the digests of a ``hashes`` (or metadata) object, lowercase; only those
    whose digest is a string."""
    if not isinstance(value, dict) or not value:
        return {}
    if not all(isinstance(v, str) for v in value.values()):
        value = {k: v for k, v in value.items() if isinstance(v, str)}
    return _lower_keys(value)


def parse_json_page(data: bytes, page_url: str, index_url: str) -> ProjectPage:
    """Parse a PEP 691 JSON project page; relative URLs resolve against ``page_url``.

    Only the page's name and its filenames are read now (raising
    :class:`msgspec.DecodeError` for a page without them), and grouped by version; see
    :class:`PageFiles`.
    """
    raw = _raw_page_decoder.decode(data)
    page = ProjectPage(
        name=canonicalize_name(raw.name),
        index_url=index_url,
        parsed=[],
        json=bytes(data),
        json_url=page_url,
    )
    listing = page.__dict__["_listing"] = PageFiles.from_json(raw, page_url)
    listing.groups(page.name)
    return page


def page_listing(page: ProjectPage) -> PageFiles:
    """Return the listing of ``page`` (a stored JSON page is read again from its body)."""
    if page.json is None:
        listing = PageFiles.of(page.parsed)
    else:
        listing = PageFiles.from_json(_raw_page_decoder.decode(page.json), page.json_url)
    if page.name:  # not a find-links page of many projects
        listing.groups(page.name)
    return listing


def _attrs(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        key = m.group(1).decode("ascii", "replace").lower()
        value = m.group(2) or m.group(3) or m.group(4)
        out[key] = html.unescape(value.decode("utf-8", "replace")) if value is not None else ""
    return out


def parse_html_page(
    data: bytes,
    page_url: str,
    index_url: str,
    project: str,
    *,
    only_project: bool = False,
) -> ProjectPage:
    """Parse a PEP 503 page (or a find-links page when ``only_project``).

    With ``only_project``, anchors whose filename is not a distribution of ``project`` are
    skipped, since a find-links page lists files of many projects.
    """
    base_match = _BASE.search(data)
    base = urljoin(page_url, base_match.group(1).decode()) if base_match else page_url
    files: list[IndexFile] = []
    for m in _ANCHOR.finditer(data):
        attrs = _attrs(m.group(1))
        href = attrs.get("href")
        if not href:
            continue
        url, hashes = split_hash(urljoin(base, href))
        # The name is the path's: a signed mirror's link ends with a query (pip does this).
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not filename.endswith(DIST_SUFFIXES):
            continue
        if only_project:
            parsed = filename_project(filename, project)
            if parsed is None or parsed[0] != project:
                continue
        yanked = attrs.get("data-yanked")
        core = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        files.append(
            IndexFile(
                filename=filename,
                url=url,
                hashes=hashes,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                upload_time=None,
                size=None,
                core_metadata=_metadata_attr(core),
            )
        )
    return ProjectPage(name=project, index_url=index_url, parsed=files)


def scan_directory(directory: Path, project: str, index_url: str) -> ProjectPage:
    """List the distributions of ``project`` in a local find-links directory."""
    files: list[IndexFile] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.endswith(DIST_SUFFIXES) or not entry.is_file():
            continue
        parsed = filename_project(entry.name, project)
        if parsed is None or parsed[0] != project:
            continue
        files.append(
            IndexFile(
                filename=entry.name,
                url=Path(entry.path).absolute().as_uri(),
                hashes={},
                size=entry.stat().st_size,
            )
        )
    files.sort(key=lambda f: f.filename)
    return ProjectPage(name=project, index_url=index_url, parsed=files)
