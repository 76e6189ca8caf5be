"""Parse project pages: PEP 691 JSON, PEP 503 HTML, and find-links pages and directories.

HTML pages are read with a small regular-expression scanner rather than ``html.parser``:
simple-API pages are flat lists of anchors, and the scanner is several times faster on
pages with thousands of files (which private mirrors without JSON serve).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import msgspec
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from burrowd.daemon.index.models import IndexFile, JsonProjectPage, ProjectPage

__all__ = [
    "DIST_SUFFIXES",
    "filename_project",
    "parse_html_page",
    "parse_json_page",
    "scan_directory",
    "split_hash",
]

DIST_SUFFIXES: Final = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar")

_ANCHOR: Final = re.compile(rb"<a\s([^>]*)>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_ATTR: Final = re.compile(
    rb"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
_BASE: Final = re.compile(rb"<base\s[^>]*href\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_json_decoder: Final = msgspec.json.Decoder(JsonProjectPage)


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


def filename_project(filename: str) -> tuple[str, str] | None:
    """Return ``(canonical name, version)`` of a wheel or sdist filename, or ``None``."""
    try:
        if filename.endswith(".whl"):
            name, version, _b, _t = parse_wheel_filename(filename)
            return name, str(version)
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return name, str(version)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    return None


def _lower_keys(d: dict[str, str]) -> dict[str, str]:
    """Return ``d`` with lowercase keys and values, reusing it when it already is."""
    for k, v in d.items():
        if not (k.islower() and (v.islower() or v.isdigit())):
            return {k.lower(): v.lower() for k, v in d.items()}
    return d


def parse_json_page(data: bytes, page_url: str, index_url: str) -> ProjectPage:
    """Parse a PEP 691 JSON project page; relative URLs resolve against ``page_url``.

    A popular project's page lists tens of thousands of files, so the common case (an
    absolute URL without a fragment, hashes already lowercase, nothing yanked, no
    metadata file) takes a short path: ``urljoin`` alone would cost several microseconds
    a file.
    """
    raw = _json_decoder.decode(data)
    files: list[IndexFile] = []
    append = files.append
    for f in raw.files:
        url = f.url
        if url.startswith(("https://", "http://")) and "#" not in url:
            hashes = _lower_keys(f.hashes)
        else:
            url, fragment_hashes = split_hash(urljoin(page_url, url))
            hashes = _lower_keys(f.hashes) or fragment_hashes
        meta = f.core_metadata if f.core_metadata is not None else f.dist_info_metadata
        core: dict[str, str] | None
        if meta is None or meta is False:
            core = None
        elif meta is True:
            core = {}
        else:
            assert isinstance(meta, dict)
            core = _lower_keys(meta)
        yanked = f.yanked
        append(
            IndexFile(
                f.filename,
                url,
                hashes,
                f.requires_python or None,
                None if yanked is False else ("" if yanked is True else str(yanked)),
                f.upload_time,
                f.size,
                core,
            )
        )
    return ProjectPage(name=canonicalize_name(raw.name), index_url=index_url, files=files)


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
        filename = unquote(url.rsplit("/", 1)[-1])
        if not filename.endswith(DIST_SUFFIXES):
            continue
        if only_project:
            parsed = filename_project(filename)
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
    return ProjectPage(name=project, index_url=index_url, files=files)


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
        parsed = filename_project(entry.name)
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
    return ProjectPage(name=project, index_url=index_url, files=files)
