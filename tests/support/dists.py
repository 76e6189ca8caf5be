"""Build real wheels and sdists for tests, quickly and without a network.

A :class:`DistSpec` says what a distribution contains; :func:`build_wheel` and
:func:`build_sdist` turn it into files a real installer accepts. Builds are reproducible
(fixed timestamps, stable member order), so one spec always gives the same bytes and the same
sha256, which is what lets :class:`DistCache` share builds across a test session.

:class:`Breakage` builds wheels that are wrong in one precise way, for the daemon's
validation tests. sdists come in three flavours: built by the in-tree backend in
``tests/support/backend`` (offline), a ``pyproject.toml`` that asks for setuptools without
naming a backend (legacy), and a bare ``setup.py``.
"""

from __future__ import annotations

import csv
import email.parser
import enum
import hashlib
import io
import json
import re
import shutil
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from tests.support.backend import burrow_test_backend as backend_module
from tests.support.backend.burrow_test_backend import (
    CONFIG_FILE,
    DATA_DIR,
    dist_info_dir,
    escape_name,
    record_hash,
    record_text,
    wheel_members,
    write_tar_gz,
    write_zip,
)
from tests.support.backend.burrow_test_backend import wheel_filename as backend_wheel_filename

__all__ = [
    "ABSOLUTE_MEMBER",
    "ZIP_SLIP_MEMBER",
    "Backend",
    "Breakage",
    "DistCache",
    "DistSpec",
    "build_sdist",
    "build_wheel",
    "escape_name",
    "normalize_version",
    "read_metadata",
    "read_record",
    "record_hash",
    "record_problems",
    "render_metadata",
    "sdist_filename",
    "source_members",
    "wheel_filename",
    "write_source_tree",
]

Backend = Literal["in-tree", "setuptools-legacy", "setup.py"]

ZIP_SLIP_MEMBER = "../evil.py"
"""The member a :attr:`Breakage.ZIP_SLIP` wheel adds, escaping the install directory."""

# Under /tmp so that an installer that wrongly honours it does no harm.
ABSOLUTE_MEMBER = "/tmp/burrow-test-absolute-evil.py"
"""The member a :attr:`Breakage.ABSOLUTE_PATH` wheel adds."""

IMPOSTOR_NAME = "impostor"
"""The project name a :attr:`Breakage.DIST_INFO_MISMATCH` or ``METADATA_MISMATCH`` uses."""

_BACKEND_SOURCE = Path(backend_module.__file__).read_bytes()
_BACKEND_DIR = "_burrow_backend"
_EXTRA_MARKER = re.compile(r"""^extra\s*==\s*["']([^"']+)["']$""")
_DATA_SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")


@dataclass
class DistSpec:
    """What one distribution (a project at one version) contains.

    ``files`` maps paths inside the wheel to bytes; it defaults to an ``__init__.py`` of the
    import name holding ``__version__``. A namespace package needs nothing special: give
    ``{"ns/a/__init__.py": ...}`` without ``ns/__init__.py``. ``data`` maps
    ``"<scheme>/<path>"`` (scheme one of purelib, platlib, headers, scripts, data) to bytes
    placed under ``<dist>-<ver>.data/``. Extras named in ``extra == "x"`` markers of
    ``requires_dist`` are added to ``provides_extra`` automatically.
    """

    name: str
    version: str
    requires_dist: list[str] = field(default_factory=list)
    requires_python: str | None = None
    provides_extra: list[str] = field(default_factory=list)
    tag: str = "py3-none-any"
    files: dict[str, bytes] | None = None
    entry_points: dict[str, dict[str, str]] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    metadata_version: str = "2.1"
    extra_metadata: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def import_name(self) -> str:
        """Return the top-level package name the default ``files`` use."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def norm_version(self) -> str:
        """Return the version as filenames spell it (PEP 440 normalized when valid)."""
        return normalize_version(self.version)

    def payload(self) -> dict[str, bytes]:
        """Return the files of the wheel's root, defaults applied."""
        if self.files is not None:
            return self.files
        return {f"{self.import_name}/__init__.py": f"__version__ = {self.version!r}\n".encode()}

    def extras(self) -> list[str]:
        """Return ``provides_extra`` plus the extras that ``requires_dist`` markers name."""
        extras = list(self.provides_extra)
        for line in self.requires_dist:
            for found in re.findall(r"""extra\s*==\s*["']([^"']+)["']""", line):
                if found not in extras:
                    extras.append(found)
        return extras

    def key(self) -> str:
        """Return a digest that identifies this spec's content (for caching builds)."""
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()


class Breakage(enum.Enum):
    """One deliberate defect of a built wheel; everything else about the wheel stays valid.

    "The first file" is the first payload file of the spec (its default ``__init__.py``), or
    METADATA when the spec has no files.
    """

    RECORD_WRONG_HASH = "record-wrong-hash"
    """RECORD lists the first file with the hash of other bytes (its size stays right)."""
    RECORD_MISSING_ENTRY = "record-missing-entry"
    """The first file is in the zip but not in RECORD."""
    RECORD_MISSING = "record-missing"
    """The wheel has no RECORD at all."""
    BAD_CRC = "bad-crc"
    """The zip's CRC-32 of the first member (in its local header and the central directory)
    does not match its bytes: an archive damaged after it was built. RECORD is right."""
    TRUNCATED = "truncated"
    """The zip is cut at ``truncate_at`` (a fraction of its length): no central directory."""
    ZIP_SLIP = "zip-slip"
    """An extra member ``../evil.py`` (listed in RECORD with a correct hash)."""
    ABSOLUTE_PATH = "absolute-path"
    """An extra member with an absolute path (listed in RECORD with a correct hash)."""
    METADATA_MISSING = "metadata-missing"
    """The dist-info directory has no METADATA (and RECORD does not list it)."""
    METADATA_MISMATCH = "metadata-mismatch"
    """METADATA names another project and version than the filename (Name: impostor)."""
    DIST_INFO_MISMATCH = "dist-info-mismatch"
    """The dist-info directory is ``impostor-<ver>.dist-info``, not the wheel's name."""


def normalize_version(version: str) -> str:
    """Return ``version`` PEP 440 normalized, or as given (``-`` escaped) when invalid."""
    try:
        return str(Version(version))
    except InvalidVersion:
        # Tests of bad input need invalid versions too; keep them recognisable.
        return version.replace("-", "_")


def wheel_filename(spec: DistSpec) -> str:
    """Return the wheel's filename per the binary distribution format."""
    return backend_wheel_filename(spec.name, spec.norm_version, spec.tag)


def sdist_filename(spec: DistSpec) -> str:
    """Return the sdist's filename per PEP 625."""
    return f"{_sdist_stem(spec)}.tar.gz"


def _sdist_stem(spec: DistSpec) -> str:
    return f"{escape_name(spec.name)}-{spec.norm_version}"


def render_metadata(
    spec: DistSpec,
    *,
    metadata_version: str | None = None,
    name: str | None = None,
    version: str | None = None,
    dependencies: bool = True,
    dynamic: Iterable[str] = (),
) -> bytes:
    """Return the core metadata of ``spec`` (METADATA, PKG-INFO) as bytes.

    ``dependencies=False`` leaves out Requires-Dist and Provides-Extra, as an sdist whose
    dependencies are only known after a build does.
    """
    lines = [
        f"Metadata-Version: {metadata_version or spec.metadata_version}",
        f"Name: {name or spec.name}",
        f"Version: {version or spec.version}",
    ]
    lines.extend(f"Dynamic: {item}" for item in dynamic)
    if spec.summary:
        lines.append(f"Summary: {spec.summary}")
    if spec.requires_python is not None:
        lines.append(f"Requires-Python: {spec.requires_python}")
    if dependencies:
        lines.extend(f"Provides-Extra: {extra}" for extra in spec.extras())
        lines.extend(f"Requires-Dist: {req}" for req in spec.requires_dist)
    lines.extend(spec.extra_metadata)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _render_entry_points(spec: DistSpec) -> bytes:
    sections = []
    for group, entries in spec.entry_points.items():
        body = "".join(f"{key} = {value}\n" for key, value in entries.items())
        sections.append(f"[{group}]\n{body}")
    return "\n".join(sections).encode("utf-8")


def _data_members(spec: DistSpec) -> list[tuple[str, bytes]]:
    for rel in spec.data:
        scheme = rel.split("/", 1)[0]
        if scheme not in _DATA_SCHEMES or "/" not in rel:
            raise ValueError(
                f"data path {rel!r} must be <scheme>/<path>, scheme in {_DATA_SCHEMES}"
            )
    return list(spec.data.items())


def build_wheel(
    spec: DistSpec, dest: Path, *, broken: Breakage | None = None, truncate_at: float = 0.5
) -> Path:
    """Build ``spec`` as a wheel in the directory ``dest`` and return its path.

    ``broken`` picks one deliberate defect; ``truncate_at`` is where a
    :attr:`Breakage.TRUNCATED` wheel is cut, as a fraction of its full length.
    """
    dest.mkdir(parents=True, exist_ok=True)
    version = spec.norm_version
    name_in_dist_info = IMPOSTOR_NAME if broken is Breakage.DIST_INFO_MISMATCH else spec.name
    metadata = render_metadata(spec)
    if broken is Breakage.METADATA_MISMATCH:
        other_version = "999" if version != "999" else "998"
        metadata = render_metadata(spec, name=IMPOSTOR_NAME, version=other_version)
    members = wheel_members(
        name=name_in_dist_info,
        version=version,
        tag=spec.tag,
        metadata=metadata,
        files=list(spec.payload().items()),
        data=_data_members(spec),
        entry_points=_render_entry_points(spec),
    )
    dist_info = dist_info_dir(name_in_dist_info, version)
    if broken is Breakage.METADATA_MISSING:
        members = [m for m in members if m[0] != f"{dist_info}/METADATA"]
    elif broken is Breakage.ZIP_SLIP:
        members.insert(0, (ZIP_SLIP_MEMBER, b"raise SystemExit('zip slip')\n"))
    elif broken is Breakage.ABSOLUTE_PATH:
        members.insert(0, (ABSOLUTE_MEMBER, b"raise SystemExit('absolute path')\n"))

    record_name = f"{dist_info}/RECORD"
    if broken is not Breakage.RECORD_MISSING:
        listed = members
        if broken is Breakage.RECORD_MISSING_ENTRY:
            listed = members[1:]
        record = record_text(listed, record_name)
        if broken is Breakage.RECORD_WRONG_HASH:
            # The first RECORD line is the first member's; swap its hash, keep its size.
            data = members[0][1]
            first_line, rest = record.split(b"\n", 1)
            good, bad = record_hash(data), record_hash(data + b"# tampered")
            record = first_line.replace(good.encode(), bad.encode()) + b"\n" + rest
        members = [*members, (record_name, record)]

    path = dest / wheel_filename(spec)
    write_zip(path, members)
    if broken is Breakage.BAD_CRC:
        _flip_crc(path, members[0][0])
    if broken is Breakage.TRUNCATED:
        blob = path.read_bytes()
        path.write_bytes(blob[: max(1, int(len(blob) * truncate_at))])
    return path


def _flip_crc(path: Path, member: str) -> None:
    """Change the CRC-32 the zip at ``path`` records for ``member``, in both places."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        entry = zf.start_dir  # the central directory's first entry
    blob = bytearray(path.read_bytes())
    wrong = struct.pack("<L", info.CRC ^ 0x1)
    # A local header holds the CRC at offset 14, a central directory entry at offset 16.
    blob[info.header_offset + 14 : info.header_offset + 18] = wrong
    while blob[entry : entry + 4] == b"PK\x01\x02":
        name, extra, comment = struct.unpack_from("<3H", blob, entry + 28)
        if blob[entry + 46 : entry + 46 + name] == member.encode():
            blob[entry + 16 : entry + 20] = wrong
            break
        entry += 46 + name + extra + comment
    path.write_bytes(bytes(blob))


# --- sdists ------------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    # A JSON string without ASCII escaping is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def _split_requirement(line: str) -> tuple[str, str | None]:
    """Return the requirement without its marker, and the marker (or None)."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise ValueError(f"cannot express {line!r} in setup.py: {exc}") from exc
    bare = line.split(";", 1)[0].strip() if req.url is None else line.rsplit(";", 1)[0].strip()
    return bare, (str(req.marker) if req.marker is not None else None)


def _setup_py(spec: DistSpec) -> bytes:
    install_requires: list[str] = []
    extras_require: dict[str, list[str]] = {extra: [] for extra in spec.extras()}
    for line in spec.requires_dist:
        bare, marker = _split_requirement(line)
        if marker is None:
            install_requires.append(bare)
            continue
        # setuptools spells `extra == "x"` as an extras_require key, optionally "x:<marker>".
        clauses = [c.strip() for c in re.split(r"\band\b", marker)]
        extras = [m.group(1) for c in clauses if (m := _EXTRA_MARKER.match(c))]
        rest = [c for c in clauses if not _EXTRA_MARKER.match(c)]
        if not extras:
            if "extra" in marker:
                raise ValueError(f"cannot express the marker of {line!r} in setup.py")
            install_requires.append(f"{bare}; {marker}")
        elif len(extras) == 1 and not any("extra" in c for c in rest):
            key = extras[0] + (":" + " and ".join(rest) if rest else "")
            extras_require.setdefault(key, []).append(bare)
        else:
            raise ValueError(f"cannot express the marker of {line!r} in setup.py")

    packages: list[str] = []
    py_modules: list[str] = []
    for rel in spec.payload():
        parts = rel.split("/")
        if len(parts) == 1:
            if rel.endswith(".py"):
                py_modules.append(rel[: -len(".py")])
            continue
        package = ".".join(parts[:-1])
        if package not in packages:
            packages.append(package)

    kwargs: dict[str, object] = {
        "name": spec.name,
        "version": spec.version,
        "description": spec.summary,
        "install_requires": install_requires,
        "extras_require": extras_require,
        "packages": packages,
        "py_modules": py_modules,
        # Non-Python files of each package are part of the wheel, as the spec says.
        "package_data": {package: ["*"] for package in packages},
        "entry_points": {
            group: [f"{k} = {v}" for k, v in entries.items()]
            for group, entries in spec.entry_points.items()
        },
    }
    if spec.requires_python is not None:
        kwargs["python_requires"] = spec.requires_python
    scripts = [f"{DATA_DIR}/{rel}" for rel in spec.data if rel.startswith("scripts/")]
    data_files: dict[str, list[str]] = {}
    for rel in spec.data:
        if rel.startswith("data/"):
            target = rel[len("data/") :].rpartition("/")[0]
            data_files.setdefault(target, []).append(f"{DATA_DIR}/{rel}")
        elif not rel.startswith("scripts/"):
            raise ValueError(f"setup.py sdists support only scripts/ and data/ files, not {rel!r}")
    if scripts:
        kwargs["scripts"] = scripts
    if data_files:
        kwargs["data_files"] = sorted(data_files.items())
    body = "".join(f"    {key}={value!r},\n" for key, value in kwargs.items())
    return f"from setuptools import setup\n\nsetup(\n{body})\n".encode()


def _pkg_info(spec: DistSpec, backend: Backend, static_metadata: bool) -> bytes:
    if static_metadata:
        return render_metadata(spec, metadata_version="2.2")
    if backend == "in-tree":
        return render_metadata(
            spec,
            metadata_version="2.2",
            dependencies=False,
            dynamic=("Requires-Dist", "Provides-Extra"),
        )
    # What setuptools wrote before PEP 643: no promise, and no dependencies in PKG-INFO.
    return render_metadata(spec, metadata_version="2.1", dependencies=False)


def source_members(
    spec: DistSpec, *, backend: Backend = "in-tree", static_metadata: bool = True
) -> list[tuple[str, bytes]]:
    """Return the files of ``spec``'s source tree, as paths relative to its root.

    ``static_metadata=False`` writes a PKG-INFO that does not promise the dependencies
    (2.2 with ``Dynamic:`` for the in-tree backend, 2.1 for the setuptools ones) and leaves
    them out, so only a build tells them.
    """
    members: list[tuple[str, bytes]] = [("PKG-INFO", _pkg_info(spec, backend, static_metadata))]
    if backend == "in-tree":
        dynamic = '["dependencies", "optional-dependencies", "requires-python", "description"'
        dynamic += ', "scripts", "gui-scripts", "entry-points"]'
        pyproject = (
            "[build-system]\n"
            "requires = []\n"
            'build-backend = "burrow_test_backend"\n'
            f'backend-path = ["{_BACKEND_DIR}"]\n'
            "\n"
            "[project]\n"
            f"name = {_toml_string(spec.name)}\n"
            f"version = {_toml_string(spec.version)}\n"
            f"dynamic = {dynamic}\n"
        )
        config = {
            "name": spec.name,
            "version": spec.norm_version,
            "tag": spec.tag,
            "metadata": render_metadata(spec).decode("utf-8"),
            "entry_points": _render_entry_points(spec).decode("utf-8"),
            "files": list(spec.payload()),
            "data": [rel for rel, _ in _data_members(spec)],
        }
        members.append(("pyproject.toml", pyproject.encode("utf-8")))
        members.append((CONFIG_FILE, (json.dumps(config, indent=1) + "\n").encode("utf-8")))
        members.append((f"{_BACKEND_DIR}/burrow_test_backend.py", _BACKEND_SOURCE))
    elif backend == "setuptools-legacy":
        # No build-backend: frontends fall back to setuptools.build_meta:__legacy__.
        members.append(("pyproject.toml", b'[build-system]\nrequires = ["setuptools"]\n'))
        members.append(("setup.py", _setup_py(spec)))
    elif backend == "setup.py":
        members.append(("setup.py", _setup_py(spec)))
    else:
        raise ValueError(f"unknown sdist backend {backend!r}")
    members.extend(spec.payload().items())
    members.extend((f"{DATA_DIR}/{rel}", blob) for rel, blob in spec.data.items())
    return members


def write_source_tree(
    spec: DistSpec, dest: Path, *, backend: Backend = "in-tree", static_metadata: bool = True
) -> Path:
    """Write ``spec``'s unpacked source tree to ``dest/<name>-<version>`` and return it."""
    root = dest / _sdist_stem(spec)
    for rel, blob in source_members(spec, backend=backend, static_metadata=static_metadata):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    return root


def build_sdist(
    spec: DistSpec, dest: Path, *, backend: Backend = "in-tree", static_metadata: bool = True
) -> Path:
    """Build ``spec`` as an sdist (``.tar.gz``) in the directory ``dest`` and return its path.

    ``backend`` is ``"in-tree"`` (builds offline with the test backend), ``"setuptools-legacy"``
    (``requires = ["setuptools"]``, no ``build-backend``) or ``"setup.py"`` (no pyproject).
    """
    dest.mkdir(parents=True, exist_ok=True)
    stem = _sdist_stem(spec)
    members = source_members(spec, backend=backend, static_metadata=static_metadata)
    path = dest / sdist_filename(spec)
    write_tar_gz(path, [(f"{stem}/{rel}", blob) for rel, blob in members])
    return path


# --- reading built wheels ----------------------------------------------------------------------


def _dist_info_member(zf: zipfile.ZipFile, filename: str) -> str | None:
    for name in zf.namelist():
        parts = name.split("/")
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == filename:
            return name
    return None


def read_record(wheel: Path) -> list[tuple[str, str, str]]:
    """Return the rows of a wheel's RECORD as ``(path, hash, size)``; raise if it has none."""
    with zipfile.ZipFile(wheel) as zf:
        name = _dist_info_member(zf, "RECORD")
        if name is None:
            raise FileNotFoundError(f"{wheel.name} has no .dist-info/RECORD")
        text = zf.read(name).decode("utf-8")
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if row:
            padded = [*row, "", ""][:3]
            rows.append((padded[0], padded[1], padded[2]))
    return rows


def read_metadata(wheel: Path) -> Message:
    """Return a wheel's parsed METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = _dist_info_member(zf, "METADATA")
        if name is None:
            raise FileNotFoundError(f"{wheel.name} has no .dist-info/METADATA")
        return email.parser.BytesParser().parsebytes(zf.read(name))


def record_problems(wheel: Path) -> list[str]:
    """Return what is wrong between a wheel's members and its RECORD (empty when it verifies)."""
    try:
        rows = read_record(wheel)
    except FileNotFoundError as exc:
        return [str(exc)]
    problems = []
    with zipfile.ZipFile(wheel) as zf:
        members = {info.filename for info in zf.infolist() if not info.is_dir()}
        listed = {path for path, _, _ in rows}
        for path, hash_, size in rows:
            if path not in members:
                problems.append(f"{path}: listed in RECORD but not in the wheel")
            elif path.endswith(".dist-info/RECORD"):
                if hash_ or size:
                    problems.append(f"{path}: RECORD lists a hash for itself")
            else:
                data = zf.read(path)
                if hash_ != record_hash(data):
                    problems.append(f"{path}: hash {hash_} != {record_hash(data)}")
                if size != str(len(data)):
                    problems.append(f"{path}: size {size} != {len(data)}")
        problems.extend(
            f"{path}: in the wheel but not in RECORD"
            for path in sorted(members - listed)
            if not path.endswith((".dist-info/RECORD.jws", ".dist-info/RECORD.p7s"))
        )
    return problems


# --- a session cache of builds -----------------------------------------------------------------


class DistCache:
    """Build each distinct (spec, options) once and hand out the same file afterwards.

    Cached files are shared: copy them before changing them (``copy_to`` does).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.builds = 0  # how many real builds ran (tests of the cache look at it)

    def _slot(self, *parts: object) -> Path:
        digest = hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:24]
        return self.root / digest

    def wheel(
        self, spec: DistSpec, *, broken: Breakage | None = None, truncate_at: float = 0.5
    ) -> Path:
        """Return a built wheel of ``spec`` (shared; do not modify)."""
        slot = self._slot("wheel", spec.key(), broken, truncate_at)
        path = slot / wheel_filename(spec)
        if not path.exists():
            self.builds += 1
            built = build_wheel(spec, slot, broken=broken, truncate_at=truncate_at)
            assert built == path
        return path

    def sdist(
        self, spec: DistSpec, *, backend: Backend = "in-tree", static_metadata: bool = True
    ) -> Path:
        """Return a built sdist of ``spec`` (shared; do not modify)."""
        slot = self._slot("sdist", spec.key(), backend, static_metadata)
        path = slot / sdist_filename(spec)
        if not path.exists():
            self.builds += 1
            build_sdist(spec, slot, backend=backend, static_metadata=static_metadata)
        return path

    @staticmethod
    def copy_to(path: Path, dest: Path) -> Path:
        """Copy a cached file into the directory ``dest`` and return the copy."""
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / path.name
        shutil.copyfile(path, target)
        return target
