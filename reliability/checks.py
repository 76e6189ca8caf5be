"""What a crash may and may not leave behind, read straight from the file system.

:func:`check_cache` finds half entries of the cache: an ``archive-v0/<sha256>`` directory
without its manifest or with fewer files or bytes than the manifest counts (or files that do
not match the dist-info's RECORD), a ``wheels-v0`` pointer that cannot be decoded or leads to
no whole archive, a project page that cannot be decoded, a built wheel without its metadata.
Temporary files are allowed under ``<cache>/.tmp`` only.

:func:`check_environment` finds half-changed distributions in a venv: a RECORD file that is
missing or differs in sha256 or size, a file of site-packages that no distribution owns
(``__pycache__``, ``.burrow-*`` entries and the venv's seed packages aside), two versions of
one project, or a version that is neither the old nor the new pin.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
from packaging.utils import canonicalize_name

__all__ = [
    "check_cache",
    "check_environment",
    "installed_versions",
    "temp_entries",
]

#: The cache's temporary directory (``burrowd.daemon.cache.store.TMP_DIR``).
TMP_DIR: Final = ".tmp"
MANIFEST: Final = ".burrow-archive"
BUILT_METADATA: Final = "metadata.msgpack"
#: Top-level cache entries that are not buckets.
_ROOT_FILES: Final = {"CACHEDIR.TAG", ".gitignore", ".lock", TMP_DIR}
#: What a venv may hold in site-packages that belongs to no distribution.
SEED_PACKAGES: Final = {"pip", "setuptools", "wheel", "_distutils_hack"}


def _decode(path: Path) -> Any:
    return msgspec.msgpack.decode(path.read_bytes())


def _b64_sha256(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _record_rows(record: Path) -> list[tuple[str, str, str]]:
    text = record.read_text(encoding="utf-8")
    return [
        (row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
        for row in csv.reader(io.StringIO(text))
        if row
    ]


def _record_problems(base: Path, record: Path, what: str) -> list[str]:
    """Return how the files under ``base`` differ from what ``record`` lists."""
    problems = []
    for rel, digest, size in _record_rows(record):
        path = Path(os.path.normpath(base / rel))
        if not path.is_file():
            problems.append(f"{what}: {rel} is listed in RECORD but missing")
            continue
        if size and path.stat().st_size != int(size):
            problems.append(f"{what}: {rel} has {path.stat().st_size} bytes, RECORD says {size}")
            continue
        algorithm, _, value = digest.partition("=")
        if algorithm == "sha256" and _b64_sha256(path) != value:
            problems.append(f"{what}: {rel} does not match its RECORD sha256")
    return problems


# -- the cache --------------------------------------------------------------------------------


def _archive_problems(archive: Path) -> list[str]:
    what = f"archive-v0/{archive.name}"
    manifest_path = archive / MANIFEST
    if not manifest_path.is_file():
        return [f"{what}: no manifest ({MANIFEST}): a half-unpacked archive"]
    try:
        manifest = _decode(manifest_path)
        dist_info, files, size = manifest["dist_info"], manifest["files"], manifest["size"]
    except (OSError, msgspec.DecodeError, KeyError, TypeError) as exc:
        return [f"{what}: unreadable manifest ({exc})"]
    count = total = 0
    for dirpath, _dirs, names in os.walk(archive):
        for name in names:
            if dirpath == os.fspath(archive) and name == MANIFEST:
                continue
            count += 1
            total += os.lstat(os.path.join(dirpath, name)).st_size
    problems = []
    if (count, total) != (files, size):
        problems.append(
            f"{what}: holds {count} files of {total} bytes, its manifest counts {files} of {size}"
        )
    record = archive / str(dist_info) / "RECORD"
    if not record.is_file():
        problems.append(f"{what}: {dist_info}/RECORD is missing")
    else:
        problems += _record_problems(archive, record, what)
    return problems


def _pointer_files(wheels: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(wheels):
        for name in names:
            if name.endswith(".whl"):
                yield Path(dirpath, name)


def check_cache(root: Path) -> list[str]:
    """Return every half entry of the cache at ``root`` (empty: the cache is whole)."""
    problems: list[str] = []
    if not root.exists():
        return problems
    whole: dict[str, bool] = {}
    archives = root / "archive-v0"
    if archives.is_dir():
        for archive in sorted(archives.iterdir()):
            found = _archive_problems(archive)
            whole[archive.name] = not found
            problems += found
    wheels = root / "wheels-v0"
    if wheels.is_dir():
        for pointer in sorted(_pointer_files(wheels)):
            rel = pointer.relative_to(root)
            try:
                target = str(_decode(pointer)["archive"])
            except (OSError, msgspec.DecodeError, KeyError, TypeError) as exc:
                problems.append(f"{rel}: not a readable pointer ({exc})")
                continue
            if not whole.get(target, False):
                problems.append(f"{rel}: points to archive-v0/{target}, which is not whole")
    simple = root / "simple-v0"
    if simple.is_dir():
        for page in sorted(simple.rglob("*.msgpack")):
            try:
                _decode(page)
            except (OSError, msgspec.DecodeError) as exc:
                problems.append(f"{page.relative_to(root)}: not a readable page ({exc})")
    problems += _built_problems(root)
    for child in sorted(root.iterdir()):
        if child.name not in _ROOT_FILES and not child.name.endswith(("-v0", "-v1")):
            problems.append(f"{child.name}: an unknown entry in the cache root")
    return problems


def _built_problems(root: Path) -> list[str]:
    """Return built wheels that are broken or lack their metadata."""
    problems: list[str] = []
    built = root / "built-wheels-v0"
    if not built.is_dir():
        return problems
    for wheel in sorted(built.rglob("*.whl")):
        rel = wheel.relative_to(root)
        if not (wheel.parent / BUILT_METADATA).is_file():
            problems.append(f"{rel}: a built wheel without its {BUILT_METADATA}")
        try:
            with zipfile.ZipFile(wheel) as zf:
                bad = zf.testzip()
        except (OSError, zipfile.BadZipFile) as exc:
            problems.append(f"{rel}: not a readable wheel ({exc})")
            continue
        if bad is not None:
            problems.append(f"{rel}: member {bad} is corrupt")
    return problems


def built_wheels(root: Path, project: str) -> list[Path]:
    """Return the built wheels of ``project`` (escaped filename prefix) in the cache."""
    built = root / "built-wheels-v0"
    if not built.is_dir():
        return []
    prefix = project.replace("-", "_") + "-"
    return sorted(p for p in built.rglob("*.whl") if p.name.startswith(prefix))


def temp_entries(root: Path) -> set[str]:
    """Return the names in the cache's temporary directory."""
    try:
        return set(os.listdir(root / TMP_DIR))
    except OSError:
        return set()


def lingering_processes(root: Path, wait: float = 0.3) -> list[str]:
    """Return the processes (``pid name``) still working under ``root`` after ``wait`` s.

    A build backend runs in a source tree unpacked in the cache; one that outlives a killed
    daemon would go on writing there. Linux only (``/proc``); elsewhere nothing is found.
    """
    real = os.path.realpath(root)
    deadline = time.monotonic() + wait
    while True:
        found = []
        for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not pid.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
                with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if cwd == real or cwd.startswith(real + os.sep):
                found.append(f"{pid} {name}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- the environment --------------------------------------------------------------------------


def _dist_of(dist_info: Path) -> tuple[str, str]:
    """Return (canonical name, version) of a ``.dist-info`` directory, from its METADATA."""
    name = version = ""
    try:
        for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
            if not line:
                break
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key == "Version":
                version = value.strip()
    except OSError:
        pass
    if not name or not version:
        stem = dist_info.name.removesuffix(".dist-info")
        name, _, version = stem.rpartition("-")
    return canonicalize_name(name), version


def installed_versions(site: Path) -> dict[str, list[str]]:
    """Return every project's installed versions (more than one is a problem)."""
    out: dict[str, list[str]] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        name, version = _dist_of(dist_info)
        out.setdefault(name, []).append(version)
    return out


def check_environment(
    site: Path, old: Mapping[str, str], new: Mapping[str, str] | None = None
) -> list[str]:
    """Return how ``site`` fails to hold, per distribution, the ``old`` or the ``new`` pins.

    With ``new`` omitted the site must hold exactly ``old``.
    """
    wanted_new = old if new is None else new
    problems: list[str] = []
    owned: set[str] = set()
    for dist_info in sorted(site.glob("*.dist-info")):
        what = dist_info.name
        record = dist_info / "RECORD"
        if not record.is_file():
            problems.append(f"{what}: no RECORD")
            continue
        problems += _record_problems(site, record, what)
        for rel, _digest, _size in _record_rows(record):
            owned.add(os.path.normpath(site / rel))
    for dirpath, dirs, names in os.walk(site):
        rel_dir = os.path.relpath(dirpath, site)
        top = rel_dir == "."
        if top:
            dirs[:] = [d for d in dirs if not _ignored_top(d)]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            if top and _ignored_top(name):
                continue
            path = os.path.normpath(os.path.join(dirpath, name))
            if path not in owned:
                problems.append(f"{os.path.relpath(path, site)}: owned by no distribution")
    for name, versions in sorted(installed_versions(site).items()):
        if len(versions) > 1:
            problems.append(f"{name}: {len(versions)} versions installed ({', '.join(versions)})")
        allowed = {v for v in (old.get(name), wanted_new.get(name)) if v is not None}
        for version in versions:
            if version not in allowed:
                want = " or ".join(sorted(allowed)) or "absent"
                problems.append(f"{name}: version {version} installed, expected {want}")
    present = installed_versions(site)
    for name in sorted(set(old) | set(wanted_new)):
        if name not in present and name in old and name in wanted_new:
            problems.append(f"{name}: missing (both pin sets have it)")
    return problems


def _ignored_top(name: str) -> bool:
    if name.startswith(".burrow-") or name == "__pycache__":
        return True
    stem = name.split("-", 1)[0].split(".", 1)[0]
    return stem in SEED_PACKAGES or name == "distutils-precedence.pth"
