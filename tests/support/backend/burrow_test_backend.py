"""Build wheels offline: a tiny in-tree PEP 517/660 backend for the test suite's sdists.

Fixture sdists name this module with ``backend-path`` so that building them needs nothing
from an index: ``get_requires_for_build_*`` return ``[]``. Everything the backend needs is in
``burrow_build.json`` at the source root (written by ``tests.support.dists``): the project's
name, version and wheel tag, the exact METADATA text, the entry points, and which files of
the tree go into the wheel. The backend only copies; it never computes metadata, so a wheel
built from an sdist carries exactly the metadata the test asked for.

The module is also the single place where the suite writes wheel zips: ``tests.support.dists``
imports the helpers below, so wheels built directly and wheels built through an sdist are laid
out the same way. It must stay standard-library only, since build frontends load it inside an
isolated environment, possibly under another interpreter than the suite's.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_FILE",
    "build_editable",
    "build_sdist",
    "build_wheel",
    "dist_info_dir",
    "escape_name",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
    "record_hash",
    "record_text",
    "wheel_file_text",
    "write_tar_gz",
    "write_zip",
]

CONFIG_FILE = "burrow_build.json"
"""Name of the build description at the root of a source tree."""

DATA_DIR = "_burrow_data"
"""Folder of a source tree holding ``<scheme>/<path>`` files for the wheel's ``.data`` dir."""

# Zip and tar entries carry this timestamp so a spec always builds to the same bytes (and
# hence the same sha256), which keeps index pages and the session cache stable.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_EPOCH_SECONDS = 315532800

_GENERATOR = "burrow-test-backend 1.0"

_Members = Sequence[tuple[str, bytes]]


# --- shared wheel-writing helpers ------------------------------------------------------------


def escape_name(name: str) -> str:
    """Return the distribution name as it appears in wheel and sdist filenames."""
    return re.sub(r"[-_.]+", "_", name).lower()


def dist_info_dir(name: str, version: str) -> str:
    """Return the ``.dist-info`` directory name for a project name and version."""
    return f"{escape_name(name)}-{version.replace('-', '_')}.dist-info"


def record_hash(data: bytes) -> str:
    """Return the RECORD hash field of some bytes: ``sha256=`` urlsafe base64, unpadded."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _csv_field(value: str) -> str:
    # RECORD is CSV; paths with commas or quotes must be quoted as the csv module would.
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def record_text(members: _Members, record_arcname: str) -> bytes:
    """Return the RECORD of a wheel listing ``members``, with its own line last."""
    lines = [f"{_csv_field(arcname)},{record_hash(data)},{len(data)}" for arcname, data in members]
    lines.append(f"{_csv_field(record_arcname)},,")
    return ("\n".join(lines) + "\n").encode("utf-8")


def wheel_file_text(tag: str) -> bytes:
    """Return the WHEEL file for a compressed tag set such as ``py2.py3-none-any``."""
    try:
        pythons, abis, platforms = tag.split("-")
    except ValueError:
        raise ValueError(f"wheel tag {tag!r} is not <python>-<abi>-<platform>") from None
    lines = [
        "Wheel-Version: 1.0",
        f"Generator: {_GENERATOR}",
        f"Root-Is-Purelib: {'true' if platforms == 'any' else 'false'}",
    ]
    lines.extend(
        f"Tag: {py}-{abi}-{plat}"
        for py in pythons.split(".")
        for abi in abis.split(".")
        for plat in platforms.split(".")
    )
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_zip(path: Path, members: _Members) -> None:
    """Write ``members`` as a deflated zip at ``path``, with fixed timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in members:
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            # rw-r--r-- regular file; scripts get the executable bits so installers keep them.
            mode = 0o755 if "/scripts/" in arcname else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)


def write_tar_gz(path: Path, members: _Members) -> None:
    """Write ``members`` as a gzipped tar at ``path``, reproducibly (fixed mtime, owner)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for arcname, data in members:
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mtime = _EPOCH_SECONDS
            info.mode = 0o644
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())


def wheel_members(
    *,
    name: str,
    version: str,
    tag: str,
    metadata: bytes,
    files: Iterable[tuple[str, bytes]],
    data: Iterable[tuple[str, bytes]] = (),
    entry_points: bytes = b"",
) -> list[tuple[str, bytes]]:
    """Return a wheel's members in install order, RECORD excluded.

    ``data`` paths are ``<scheme>/<path>`` and land under ``<dist>-<ver>.data/``.
    """
    dist_info = dist_info_dir(name, version)
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    members = list(files)
    members.extend((f"{data_dir}/{rel}", blob) for rel, blob in data)
    members.append((f"{dist_info}/METADATA", metadata))
    members.append((f"{dist_info}/WHEEL", wheel_file_text(tag)))
    if entry_points:
        members.append((f"{dist_info}/entry_points.txt", entry_points))
    return members


def wheel_filename(name: str, version: str, tag: str) -> str:
    """Return the wheel filename for an already normalized version."""
    return f"{escape_name(name)}-{version.replace('-', '_')}-{tag}.whl"


# --- the PEP 517 / PEP 660 hooks -------------------------------------------------------------


def _config() -> dict[str, Any]:
    # Frontends run hooks with the source tree as the working directory (PEP 517).
    with open(CONFIG_FILE, encoding="utf-8") as fh:
        config: dict[str, Any] = json.load(fh)
    return config


def _metadata_members(config: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    return wheel_members(
        name=config["name"],
        version=config["version"],
        tag=config["tag"],
        metadata=config["metadata"].encode("utf-8"),
        files=(),
        entry_points=config.get("entry_points", "").encode("utf-8"),
    )


def _write_wheel(wheel_directory: str, members: list[tuple[str, bytes]], config: Any) -> str:
    filename = wheel_filename(config["name"], config["version"], config["tag"])
    record = dist_info_dir(config["name"], config["version"]) + "/RECORD"
    members = [*members, (record, record_text(members, record))]
    write_zip(Path(wheel_directory) / filename, members)
    return filename


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    """Return no build requirements: building needs nothing from an index."""
    return []


def get_requires_for_build_sdist(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    """Return no build requirements: building needs nothing from an index."""
    return []


def get_requires_for_build_editable(
    config_settings: Mapping[str, Any] | None = None,
) -> list[str]:
    """Return no build requirements: building needs nothing from an index."""
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    """Write the ``.dist-info`` directory (METADATA, WHEEL, entry points) and return its name."""
    config = _config()
    dist_info = dist_info_dir(config["name"], config["version"])
    for arcname, data in _metadata_members(config):
        target = Path(metadata_directory) / arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """Build the wheel from the files ``burrow_build.json`` lists and return its filename."""
    config = _config()
    files = [(rel, Path(rel).read_bytes()) for rel in config.get("files", [])]
    data = [(rel, Path(DATA_DIR, rel).read_bytes()) for rel in config.get("data", [])]
    members = wheel_members(
        name=config["name"],
        version=config["version"],
        tag=config["tag"],
        metadata=config["metadata"].encode("utf-8"),
        files=files,
        data=data,
        entry_points=config.get("entry_points", "").encode("utf-8"),
    )
    return _write_wheel(wheel_directory, members, config)


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """Build an editable wheel: a ``.pth`` file pointing at the source tree (PEP 660)."""
    config = _config()
    pth = (os.path.abspath(".") + "\n").encode("utf-8")
    members = wheel_members(
        name=config["name"],
        version=config["version"],
        tag=config["tag"],
        metadata=config["metadata"].encode("utf-8"),
        files=[(f"__editable__.{escape_name(config['name'])}.pth", pth)],
        entry_points=config.get("entry_points", "").encode("utf-8"),
    )
    return _write_wheel(wheel_directory, members, config)


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    """Pack the source tree (as it is on disk) into ``<name>-<version>.tar.gz``."""
    config = _config()
    stem = f"{escape_name(config['name'])}-{config['version']}"
    members: list[tuple[str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk("."):
        # Sorted walk: the same tree always packs to the same bytes.
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, filename), ".").replace(os.sep, "/")
            members.append((f"{stem}/{rel}", Path(rel).read_bytes()))
    write_tar_gz(Path(sdist_directory) / f"{stem}.tar.gz", members)
    return f"{stem}.tar.gz"
