"""Static metadata of a source distribution or tree, when it has some (no build needed).

PEP 643 lets an sdist's ``PKG-INFO`` (metadata 2.2+) promise that its fields are final
unless listed as ``Dynamic``; a ``pyproject.toml`` ``[project]`` table that does not list
``dependencies`` as dynamic is final too. Either answers "what does this version need"
without running a build backend, as uv does. Anything else raises :class:`BuildRequired`.
"""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from burrowd.daemon.cache.archive import (
    TAR_ERRORS,
    check_declared_size,
    check_member_count,
    open_tar_sdist,
)
from burrowd.daemon.config import UnpackLimits
from burrowd.daemon.errors import BuildRequired, InvalidDistribution
from burrowd.daemon.metadata import CoreMetadata, parse_metadata

__all__ = ["sdist_metadata", "tree_metadata"]

_MAX_MEMBER = 8 * 1024 * 1024


def _read_members(path: Path, filename: str, limits: UnpackLimits) -> dict[str, bytes]:
    """Return ``PKG-INFO`` and ``pyproject.toml`` of the top-level directory, if present.

    Every member is looked at, so an archive of more members than ``limits`` allows is
    refused here as it would be when unpacked for a build.
    """
    wanted = ("PKG-INFO", "pyproject.toml")
    out: dict[str, bytes] = {}
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                check_member_count(filename, len(infos), limits)
                for info in infos:
                    parts = PurePosixPath(info.filename).parts
                    if len(parts) == 2 and parts[1] in wanted and info.file_size < _MAX_MEMBER:
                        out[parts[1]] = zf.read(info)
            return out
        total = 0
        with open_tar_sdist(path, filename, limits) as tf:
            for count, member in enumerate(tf, start=1):
                check_member_count(filename, count, limits)
                if member.isfile():
                    # As for an unpack: a declared bomb is refused at its header, not read.
                    total += member.size
                    check_declared_size(filename, total, limits, member.name)
                parts = PurePosixPath(member.name).parts
                if len(parts) == 2 and parts[1] in wanted and member.isfile():
                    if member.size >= _MAX_MEMBER:
                        continue
                    f = tf.extractfile(member)
                    if f is not None:
                        out[parts[1]] = f.read()
    except (zipfile.BadZipFile, *TAR_ERRORS) as exc:
        raise InvalidDistribution(filename, f"not a readable source archive ({exc})") from exc
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return Version(text).release
    except InvalidVersion:
        return (0,)


def sdist_metadata(
    path: Path,
    filename: str,
    name: str,
    version: str,
    *,
    limits: UnpackLimits | None = None,
) -> CoreMetadata:
    """Return the static metadata of the sdist at ``path``.

    Raise :class:`BuildRequired` when only a build could tell the dependencies.
    ``limits`` defaults to the ``BURROW_MAX_*`` variables of this process.
    """
    members = _read_members(path, filename, limits or UnpackLimits.from_env())
    return _static_metadata(members, filename, name, version)


def tree_metadata(directory: Path, name: str) -> CoreMetadata:
    """Return the static metadata of a source tree (a project directory).

    The same rules as for an sdist, read from the directory's own ``PKG-INFO`` (an
    unpacked sdist) or ``pyproject.toml``; the version must be static too, since nothing
    else names it. Raise :class:`BuildRequired` when only a build could tell.
    """
    members: dict[str, bytes] = {}
    for member in ("PKG-INFO", "pyproject.toml"):
        try:
            members[member] = (directory / member).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InvalidDistribution(str(directory), f"cannot read {member}: {exc}") from exc
    if not members:
        raise BuildRequired(
            name,
            "?",
            str(directory),
            "it has no pyproject.toml (a setup.py project); only a build could tell its "
            "metadata, and building from source is not available yet",
        )
    version = "?"
    pkg_info = members.get("PKG-INFO")
    if pkg_info is not None:
        # An unpacked sdist: its PKG-INFO names the version whatever else is dynamic.
        version = parse_metadata(pkg_info, str(directory)).version
    project = _pyproject_project(members.get("pyproject.toml"))
    if pkg_info is None:
        if project is None or not isinstance(project.get("name"), str):
            raise BuildRequired(
                name,
                "?",
                str(directory),
                "its pyproject.toml has no [project] table with a name, so only a build "
                "could tell its metadata; building from source is not available yet",
            )
        dynamic = {str(d).lower() for d in _list(project.get("dynamic"))}
        if "version" in dynamic or not isinstance(project.get("version"), str):
            raise BuildRequired(
                name,
                "?",
                str(directory),
                "its version is not static ([project] version is dynamic or missing), so "
                "only a build could tell it; building from source is not available yet",
            )
        version = str(project["version"])
    return _static_metadata(members, str(directory), name, version)


def _static_metadata(
    members: dict[str, bytes], source: str, name: str, version: str
) -> CoreMetadata:
    filename = source
    pkg_info = members.get("PKG-INFO")
    if pkg_info is not None:
        meta = parse_metadata(pkg_info, filename)
        static = _version_tuple(meta.metadata_version) >= (2, 2) and not (
            {"requires-dist", "provides-extra", "requires-python"} & set(meta.dynamic)
        )
        if static:
            return meta
    project = _pyproject_project(members.get("pyproject.toml"))
    if project is not None:
        dynamic = {str(d).lower() for d in _list(project.get("dynamic"))}
        if "dependencies" not in dynamic and "optional-dependencies" not in dynamic:
            deps = [str(d) for d in _list(project.get("dependencies"))]
            extras: list[str] = []
            optional = project.get("optional-dependencies")
            for extra, reqs in (optional if isinstance(optional, dict) else {}).items():
                extras.append(str(extra))
                marker = f'extra == "{canonicalize_name(str(extra))}"'
                for req in _list(reqs):
                    spec, sep, cond = str(req).partition(";")
                    joined = f"({cond.strip()}) and {marker}" if sep else marker
                    deps.append(f"{spec.strip()} ; {joined}")
            rp = project.get("requires-python")
            return CoreMetadata(
                name=str(project.get("name", name)),
                version=str(project.get("version", version)),
                requires_dist=deps,
                requires_python=str(rp) if rp else None,
                provides_extra=extras,
                metadata_version="pyproject",
            )
    raise BuildRequired(
        name,
        version,
        filename,
        "its dependencies are not static (no PKG-INFO 2.2 without Dynamic, no static "
        "[project] table), so only a build could tell them; building from source is not "
        "available yet",
    )


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _pyproject_project(data: bytes | None) -> dict[str, object] | None:
    if data is None:
        return None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    project = doc.get("project")
    return project if isinstance(project, dict) else None
