"""Core metadata (``METADATA`` / ``PKG-INFO``): the fields resolution needs, parsed fast.

The headers are parsed by hand instead of with ``email.parser``: the resolver reads hundreds
of these per request and the email package is about ten times slower on them, while the
format it needs is small (``Key: value`` lines, continuation lines that start with
whitespace, a body after the first blank line).
"""

from __future__ import annotations

import msgspec
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from burrowd.daemon.errors import InvalidDistribution

__all__ = ["CoreMetadata", "check_identity", "parse_metadata"]


class CoreMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a distribution's core metadata that resolution and install use."""

    name: str
    version: str
    requires_dist: list[str] = []
    requires_python: str | None = None
    provides_extra: list[str] = []
    dynamic: list[str] = []
    metadata_version: str = ""


def _headers(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in text.split("\n"):
        # Only an empty line ends the headers: a line of spaces continues a folded value
        # (setuptools writes multi-line License fields that way).
        if not line:
            break
        if line[:1] in (" ", "\t"):
            if out:
                key, value = out[-1]
                out[-1] = (key, f"{value}\n{line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if sep:
            out.append((key.strip().lower(), value.strip()))
    return out


def parse_metadata(data: bytes, source: str) -> CoreMetadata:
    """Parse ``METADATA`` bytes; raise :class:`InvalidDistribution` naming ``source``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n")
    name = version = ""
    requires_python: str | None = None
    metadata_version = ""
    requires: list[str] = []
    extras: list[str] = []
    dynamic: list[str] = []
    for key, value in _headers(text):
        if key == "requires-dist":
            requires.append(value)
        elif key == "provides-extra":
            extras.append(value)
        elif key == "name":
            name = value
        elif key == "version":
            version = value
        elif key == "requires-python":
            requires_python = value or None
        elif key == "metadata-version":
            metadata_version = value
        elif key == "dynamic":
            dynamic.append(value.lower())
    if not name or not version:
        raise InvalidDistribution(source, "its METADATA has no Name or no Version")
    return CoreMetadata(
        name=name,
        version=version,
        requires_dist=requires,
        requires_python=requires_python,
        provides_extra=extras,
        dynamic=dynamic,
        metadata_version=metadata_version,
    )


def check_identity(meta: CoreMetadata, name: str, version: str, source: str) -> None:
    """Raise :class:`InvalidDistribution` if ``meta`` names another project or version."""
    if canonicalize_name(meta.name) != canonicalize_name(name):
        raise InvalidDistribution(
            source, f"its METADATA says Name: {meta.name}, but the file is for {name}"
        )
    try:
        same = Version(meta.version) == Version(version)
    except InvalidVersion:
        same = meta.version == version
    if not same:
        raise InvalidDistribution(
            source, f"its METADATA says Version: {meta.version}, but the file is for {version}"
        )
