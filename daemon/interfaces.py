"""Seams between the daemon's services, as ``Protocol``s: they break import cycles.

The resolver asks a builder for the metadata of sources that only a build can tell, the
builder resolves and installs its build requirements with the resolver and the installer:
each side sees the other only through the protocol here, as uv's ``uv-types`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from msgspec import Struct

if TYPE_CHECKING:
    from burrowd.daemon.builder.source import Source
    from burrowd.daemon.metadata import CoreMetadata
    from burrowd.daemon.requests import PackageRequest

__all__ = ["BuiltWheel", "SourceBuilder"]


class BuiltWheel(Struct, frozen=True):
    """A wheel built from a source, kept in ``built-wheels-v0``."""

    path: Path
    metadata: CoreMetadata
    #: The source it was built from, resolved (a git reference carries its commit).
    source: Source


class SourceBuilder(Protocol):
    """Turn sources into metadata and wheels (``daemon.builder.Builder``)."""

    async def prepare(self, source: Source, request: PackageRequest) -> Source:
        """Return ``source`` resolved: a git reference with its commit and checkout."""
        ...

    async def metadata(self, source: Source, request: PackageRequest) -> CoreMetadata:
        """Return the core metadata of ``source``, building only what that needs."""
        ...

    async def wheel(self, source: Source, request: PackageRequest) -> BuiltWheel:
        """Return a wheel of ``source`` (an editable one if ``source.editable``)."""
        ...
