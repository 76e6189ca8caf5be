"""The distributions installed in an environment, read from its site directories.

A scan lists ``*.dist-info`` directories (and legacy ``*.egg-info`` ones) and takes name and
version from their names, as uv does: a no-op sync reads no ``METADATA``. Only
``direct_url.json`` (PEP 610) is opened for each, since it decides whether a direct
reference is still satisfied. Everything else (``RECORD``, ``INSTALLER``, ``METADATA``) is
read when asked for.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import msgspec
from msgspec import Struct
from packaging.utils import NormalizedName, canonicalize_name

from burrowd.daemon.metadata import CoreMetadata, parse_metadata

__all__ = [
    "ArchiveInfo",
    "DirInfo",
    "DirectUrl",
    "InstalledDist",
    "SitePackages",
    "scan",
]

DIRECT_URL: Final = "direct_url.json"


class ArchiveInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """PEP 610 ``archive_info``: the archive's hashes (``hash`` is the legacy single one)."""

    hash: str | None = None
    hashes: dict[str, str] | None = None

    def sha256(self) -> str | None:
        """Return the archive's sha256 when recorded."""
        if self.hashes and "sha256" in self.hashes:
            return self.hashes["sha256"]
        if self.hash and self.hash.startswith("sha256="):
            return self.hash[len("sha256=") :]
        return None


class DirInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """PEP 610 ``dir_info``: a local directory, maybe installed editable."""

    editable: bool = False


class VcsInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """PEP 610 ``vcs_info``."""

    vcs: str
    commit_id: str
    requested_revision: str | None = None


class DirectUrl(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``direct_url.json``: where a distribution installed from a URL or path came from."""

    url: str
    archive_info: ArchiveInfo | None = None
    dir_info: DirInfo | None = None
    vcs_info: VcsInfo | None = None
    subdirectory: str | None = None

    @property
    def editable(self) -> bool:
        """Return whether this is an editable install."""
        return self.dir_info is not None and self.dir_info.editable

    def to_json(self) -> bytes:
        """Return the JSON pip writes (``json.dumps`` with sorted keys)."""
        return json.dumps(msgspec.to_builtins(self), sort_keys=True).encode("utf-8")


_direct_url_decoder: Final = msgspec.json.Decoder(DirectUrl)


def read_direct_url(dist_info: Path) -> DirectUrl | None:
    """Return the parsed ``direct_url.json`` of a distribution, if it has a valid one."""
    try:
        data = (dist_info / DIRECT_URL).read_bytes()
    except OSError:
        return None
    try:
        return _direct_url_decoder.decode(data)
    except msgspec.DecodeError:
        return None


class InstalledDist(Struct):
    """One installed distribution."""

    name: NormalizedName
    version: str
    #: The ``.dist-info`` directory (or ``.egg-info`` directory or file).
    path: Path
    kind: Literal["dist-info", "egg-info"] = "dist-info"
    direct_url: DirectUrl | None = None
    _metadata: CoreMetadata | None = None

    @property
    def site(self) -> Path:
        """Return the directory the distribution is installed in."""
        return self.path.parent

    @property
    def editable(self) -> bool:
        """Return whether it is an editable install."""
        return self.direct_url is not None and self.direct_url.editable

    def read_text(self, name: str) -> str | None:
        """Return a file of the metadata directory, or ``None``."""
        try:
            return (self.path / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    @property
    def installer(self) -> str:
        """Return the tool that installed it (``INSTALLER``), or ``""``."""
        return (self.read_text("INSTALLER") or "").strip()

    @property
    def requested(self) -> bool:
        """Return whether it was asked for directly (``REQUESTED``)."""
        return (self.path / "REQUESTED").exists()

    def metadata(self) -> CoreMetadata | None:
        """Return its parsed core metadata, or ``None`` when it is unreadable."""
        if self._metadata is None:
            name = "METADATA" if self.kind == "dist-info" else "PKG-INFO"
            source = self.path / name if self.path.is_dir() else self.path
            try:
                data = source.read_bytes()
                self._metadata = parse_metadata(data, str(source))
            except (OSError, ValueError):
                return None
        return self._metadata

    def files(self) -> list[str] | None:
        """Return the paths it owns relative to :attr:`site`, or ``None`` without a record.

        ``RECORD`` for a wheel install; a legacy ``.egg-info`` directory lists them in
        ``installed-files.txt`` relative to itself, and also owns its own directory.
        """
        if self.kind == "dist-info":
            rows = self.record_rows()
            return None if rows is None else [path for path, _ in rows]
        if not self.path.is_dir():
            return None
        text = self.read_text("installed-files.txt")
        if text is None:
            return None
        base = self.path.name
        out = [os.path.normpath(f"{base}/{line.strip()}") for line in text.splitlines()]
        return [p for p in out if p and p != "."]

    def record_rows(self) -> list[tuple[str, str]] | None:
        """Return ``(path, hash)`` of each file RECORD lists; ``None`` without a usable one.

        A legacy ``.egg-info`` records no hashes: its files come with empty ones.
        """
        if self.kind != "dist-info":
            files = self.files()
            return None if files is None else [(f, "") for f in files]
        text = self.read_text("RECORD")
        if text is None:
            return None
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error:
            return None  # unreadable: as unknown as a missing one
        return [(row[0], row[1] if len(row) > 1 else "") for row in rows if row and row[0]]

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


class SitePackages:
    """The installed distributions of one environment, by canonical name."""

    def __init__(self, dists: list[InstalledDist]) -> None:
        self.by_name: dict[NormalizedName, list[InstalledDist]] = {}
        for dist in dists:
            self.by_name.setdefault(dist.name, []).append(dist)

    def __iter__(self) -> Iterator[InstalledDist]:
        for dists in self.by_name.values():
            yield from dists

    def __len__(self) -> int:
        return sum(len(d) for d in self.by_name.values())

    def get(self, name: str) -> list[InstalledDist]:
        """Return every installed distribution of ``name`` (more than one is broken)."""
        return self.by_name.get(canonicalize_name(name), [])


def _split_dist_info(stem: str) -> tuple[str, str] | None:
    name, sep, version = stem.rpartition("-")
    if not sep or not name or not version:
        return None
    return name, version


def _split_egg_info(stem: str) -> tuple[str, str | None]:
    # ``name-version`` or ``name-version-pyX.Y`` (setuptools); a bare ``name`` for develop.
    parts = stem.split("-")
    if len(parts) == 1:
        return parts[0], None
    return parts[0], parts[1]


def scan(site_dirs: list[Path]) -> SitePackages:
    """Return what is installed in ``site_dirs`` (missing directories hold nothing)."""
    dists: list[InstalledDist] = []
    for site in site_dirs:
        try:
            entries = list(os.scandir(site))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.endswith(".dist-info"):
                parts = _split_dist_info(name[: -len(".dist-info")])
                if parts is None or not entry.is_dir():
                    continue
                path = Path(entry.path)
                dists.append(
                    InstalledDist(
                        name=canonicalize_name(parts[0]),
                        version=parts[1],
                        path=path,
                        direct_url=read_direct_url(path),
                    )
                )
            elif name.endswith(".egg-info"):
                project, version = _split_egg_info(name[: -len(".egg-info")])
                dist = InstalledDist(
                    name=canonicalize_name(project),
                    version=version or "",
                    path=Path(entry.path),
                    kind="egg-info",
                )
                if version is None:
                    meta = dist.metadata()
                    if meta is None:
                        continue
                    dist.version = meta.version
                dists.append(dist)
    return SitePackages(dists)
