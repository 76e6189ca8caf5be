"""Install one unpacked wheel (an ``archive-v0`` tree) into an environment.

:func:`layout` maps every file the wheel's ``RECORD`` lists to its place in the environment
(the root to purelib or platlib per ``Root-Is-Purelib``, ``.data/<scheme>/`` to its scheme
directory) and prepares the generated files (console and GUI scripts, ``#!python`` shebangs
rewritten), without touching the environment: the plan checks every layout before anything
changes. :func:`install_layout` then links the files from the cache, writes the scripts,
and assembles the ``.dist-info`` directory in a temporary directory beside its destination,
renaming it into place last, so an interrupted install leaves unowned files that the next
sync overwrites, never a distribution that claims files it lacks.

The ``RECORD`` written is pip's: the wheel's rows with their paths relocated, rows for the
generated files with their hashes, paths relative to the install root, sorted, CRLF ends.
pypa/installer and pip's ``wheel.py`` are the references for the scheme and script rules.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import csv
import errno
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final, Literal, NamedTuple

from msgspec import Struct, field
from packaging.utils import NormalizedName, canonicalize_name

from burrowd.daemon.cache.archive import read_manifest, unsafe_member
from burrowd.daemon.errors import InvalidDistribution
from burrowd.daemon.installer.environment import (
    Environment,
    is_interpreter_name,
    remove_environment_tree,
)
from burrowd.daemon.installer.installed import DirectUrl

__all__ = [
    "GENERATED",
    "Linker",
    "Script",
    "WheelLayout",
    "install_layout",
    "layout",
    "record_hash",
    "replace_file",
]

LinkMode = Literal["hardlink", "copy", "symlink"]

INSTALLER_NAME: Final = b"burrowd\n"
#: Metadata files the installer writes itself; a wheel's own copies are not installed.
GENERATED: Final = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_SIGNATURES: Final = frozenset({"RECORD.jws", "RECORD.p7s"})
_SCRIPT_MODE: Final = 0o755

# pip 26's launcher: the same bytes give the same RECORD hashes as a pip install.
_TEMPLATE: Final = (
    "import sys\n"
    "from {module} import {import_name}\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
    "    sys.exit({func}())\n"
)
# ``str.removesuffix`` needs Python 3.9: older targets get distlib's classic launcher.
_TEMPLATE_OLD: Final = (
    "# -*- coding: utf-8 -*-\n"
    "import re\n"
    "import sys\n"
    "from {module} import {import_name}\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    "    sys.exit({func}())\n"
)
#: Text that may be part of an unsafe RECORD path: a component starting with a dot (it
#: could be ``.`` or ``..``), an absolute path, an empty component, a backslash, NUL, or a
#: quoted row the plain search cannot see into.
_SUSPECT_TEXT: Final = ("/.", "\n.", "\n/", "//", "\\", "\x00", '"')
_DRIVE: Final = re.compile(r"\n[A-Za-z]:")


def _suspect(record_text: str) -> bool:
    """Return whether some RECORD path might be unsafe: then each is checked on its own.

    Substring searches over the whole text run at memory speed; a pattern per row cost
    more than the rest of laying out a wheel.
    """
    text = "\n" + record_text
    return any(s in text for s in _SUSPECT_TEXT) or _DRIVE.search(text) is not None


_ENTRY_VALUE: Final = re.compile(
    r"^(?P<module>[\w.]+)\s*(:\s*(?P<attrs>[\w.]+))?\s*(?P<extras>\[.*\])?\s*$"
)


def record_hash(data: bytes) -> str:
    """Return the RECORD form of ``data``'s sha256 (``sha256=<urlsafe b64, no padding>``)."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Placement(NamedTuple):
    """One file linked from the archive into the environment (a tuple: made 20,000 times)."""

    src: str
    dest: str
    record: str
    hash: str
    size: str


class Script(Struct):
    """One file written (not linked): an entry point launcher or a rewritten script."""

    dest: str
    record: str
    content: bytes


class WheelLayout(Struct):
    """Where every file of one wheel goes in one environment."""

    name: NormalizedName
    version: str
    filename: str
    archive: Path
    #: ``<name>-<version>.dist-info``, as the wheel spells it.
    dist_info: str
    #: The install root: purelib or platlib.
    root: str
    files: list[Placement] = field(default_factory=list)
    scripts: list[Script] = field(default_factory=list)
    #: RECORD rows of the wheel that name no file in it (a lying RECORD); dropped.
    missing: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        """Return ``name==version``."""
        return f"{self.name}=={self.version}"

    @property
    def dist_info_dest(self) -> str:
        """Return where the metadata directory is installed."""
        return os.path.join(self.root, self.dist_info)

    def destinations(self) -> Iterator[tuple[str, str]]:
        """Yield (destination, RECORD hash) of every file this wheel installs."""
        for p in self.files:
            yield p.dest, p.hash
        for s in self.scripts:
            yield s.dest, record_hash(s.content)


def _relocate(
    record_path: str, dist_info: str, data_dir: str, root: str, *, env: Environment, project: str
) -> str | None:
    """Return the destination of a RECORD path, or ``None`` for a file not installed."""
    head, _, rest = record_path.partition("/")
    if head == data_dir:
        scheme, sep, sub = rest.partition("/")
        if not sep or not sub:
            raise ValueError(f"{record_path} is not in a <scheme>/<path> subdirectory of .data")
        base = env.scheme_path(scheme, project)
        if base is None:
            raise ValueError(
                f"{record_path} uses the unknown scheme {scheme!r} "
                "(allowed: purelib, platlib, headers, scripts, data)"
            )
        dest = os.path.join(base, sub)
        folder, _, name = dest.rpartition("/")
        if name in GENERATED and folder == os.path.join(root, dist_info):
            return None  # the installer writes these (as from the .dist-info itself)
        return dest
    if head == dist_info and rest in GENERATED:
        return None
    return os.path.join(root, record_path)


def _read_entry_points(archive: Path, dist_info: str) -> dict[str, dict[str, str]]:
    path = archive / dist_info / "entry_points.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{dist_info}/entry_points.txt is unreadable ({exc})") from exc
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(f"{dist_info}/entry_points.txt does not parse ({exc})") from exc
    return {
        group: dict(parser.items(group))
        for group in ("console_scripts", "gui_scripts")
        if parser.has_section(group)
    }


def _console_specs(console: dict[str, str], python_version: str) -> dict[str, str]:
    """Return the console scripts to write, with pip's versioned pip and easy_install names."""
    console = dict(console)
    out: dict[str, str] = {}
    major, minor = [*python_version.split("."), "0"][:2]
    pip_ep = console.pop("pip", None)
    if pip_ep is not None:
        for name in ("pip", f"pip{major}", f"pip{major}.{minor}"):
            out[name] = pip_ep
        for key in [k for k in console if re.fullmatch(r"pip(\d+(\.\d+)?)?", k)]:
            del console[key]
    easy = console.pop("easy_install", None)
    if easy is not None:
        out["easy_install"] = easy
        out[f"easy_install-{major}.{minor}"] = easy
        for key in [k for k in console if re.fullmatch(r"easy_install(-\d+\.\d+)?", k)]:
            del console[key]
    out.update(console)
    return out


def shebang(python: str) -> bytes:
    """Return the ``#!`` line(s) distlib writes for ``python`` (``/bin/sh`` trick if long)."""
    exe = python.encode()
    if b" " not in exe and len(exe) + 3 <= 127:
        return b"#!" + exe + b"\n"
    if b" " in exe:
        exe = b'"' + exe + b'"'
    return b"#!/bin/sh\n'''exec' " + exe + b' "$0" "$@"\n' + b"' '''\n"


def _launcher(name: str, value: str, python: str, old_python: bool) -> bytes:
    match = _ENTRY_VALUE.match(value.strip())
    if match is None or not match["attrs"]:
        raise ValueError(f"entry point {name} = {value!r} does not name module:callable")
    attrs = match["attrs"]
    template = _TEMPLATE_OLD if old_python else _TEMPLATE
    text = template.format(module=match["module"], import_name=attrs.split(".")[0], func=attrs)
    return shebang(python) + text.encode()


def _script_name_ok(name: str) -> str | None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        return "is not a plain file name"
    if is_interpreter_name(name):
        return "would replace the environment's interpreter"
    return None


def _is_wrapper(name: str, names: set[str]) -> bool:
    """Return whether a ``.data/scripts`` file is setuptools' wrapper of an entry point."""
    lower = name.lower()
    for suffix in (".exe", "-script.py", ".pya"):
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name in names


def _after_python_shebang(src: str) -> bytes | None:
    """Return what follows a ``#!python`` first line (pip rewrites it), else ``None``."""
    with open(src, "rb") as f:
        first = f.readline()
        if not first.startswith(b"#!python"):
            return None
        return f.read()


def _root_is_purelib(archive: Path, dist_info: str) -> bool:
    try:
        text = (archive / dist_info / "WHEEL").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "root-is-purelib":
            return value.strip().lower() == "true"
    return True


class _Parsed(Struct, frozen=True):
    """What an unpacked wheel says about itself, whatever the environment (memoized)."""

    filename: str
    dist_info: str
    name: NormalizedName
    version: str
    purelib: bool
    #: RECORD rows (path, hash, size) of files at the wheel's root, and under ``.data``.
    root_rows: list[tuple[str, str, str]]
    data_rows: list[tuple[str, str, str]]
    #: ``.data/scripts`` files that start with ``#!python``: the bytes after that line.
    python_scripts: dict[str, bytes]
    entry_points: dict[str, dict[str, str]]
    missing: list[str]


#: Parsed wheels by archive path: archives are immutable once renamed in, so a daemon that
#: installs one wheel into many environments reads and checks its RECORD once.
_PARSED: dict[str, _Parsed] = {}
_PARSED_MAX: Final = 2048


def layout(archive: Path, env: Environment) -> WheelLayout:
    """Return where each file of the unpacked wheel at ``archive`` goes in ``env``.

    Raise :class:`InvalidDistribution` for a wheel that cannot be installed safely: a RECORD
    path escaping the wheel, an unknown ``.data`` scheme, a script or entry point that
    would replace the interpreter, a malformed entry point.
    """
    manifest = read_manifest(archive)
    if manifest is None:
        raise InvalidDistribution(str(archive), "the unpacked wheel in the cache is incomplete")
    filename = manifest.filename
    key = str(archive)
    try:
        parsed = _PARSED.get(key)
        if parsed is None or parsed.filename != filename:
            parsed = _parse(archive, filename, manifest.dist_info, manifest.files)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[key] = parsed
        return _map(archive, parsed, env)
    except csv.Error as exc:
        raise InvalidDistribution(filename, f"its RECORD is not valid CSV ({exc})") from None
    except ValueError as exc:
        raise InvalidDistribution(filename, str(exc)) from None


def _parse(archive: Path, filename: str, dist_info: str, member_count: int) -> _Parsed:
    stem = dist_info[: -len(".dist-info")]
    project, _, version = stem.rpartition("-")
    data_dir = f"{stem}.data"
    record_text = (archive / dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    base = str(archive) + "/"
    data_prefix = data_dir + "/"
    info_prefix = dist_info + "/"
    scripts_prefix = f"{data_dir}/scripts/"
    skipped = {info_prefix + "RECORD"} | {info_prefix + n for n in _SIGNATURES}
    generated = {info_prefix + n for n in GENERATED}
    listed = 0
    seen: set[str] = set()
    root_rows: list[tuple[str, str, str]] = []
    data_rows: list[tuple[str, str, str]] = []
    check_rows = _suspect(record_text)
    # The hot loop: a few string operations per RECORD row (22,000 rows for a large set).
    for row in csv.reader(io.StringIO(record_text)):
        if not row:
            continue
        path = row[0]
        if not path or path[-1] == "/" or path in seen or path in skipped:
            continue
        seen.add(path)
        if check_rows and (problem := unsafe_member(path)) is not None:
            raise ValueError(f"its RECORD lists {path!r}, which {problem}")
        listed += 1
        entry = (path, row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
        if path.startswith(data_prefix):
            data_rows.append(entry)
        elif path not in generated:
            root_rows.append(entry)
    # The unpack checked that every member is listed; more rows than members means RECORD
    # names files the wheel lacks. Find them only then (a stat per file is not free).
    # A signature file (RECORD.jws) is a member RECORD need not list.
    missing: list[str] = []
    signatures = sum(1 for n in _SIGNATURES if os.path.exists(f"{base}{info_prefix}{n}"))
    if listed + 1 + signatures != member_count:
        # A row may also name a directory (without its slash): pip and uv pass over it.
        kept_root = [r for r in root_rows if os.path.isfile(base + r[0])]
        kept_data = [r for r in data_rows if os.path.isfile(base + r[0])]
        present = {r[0] for r in (*kept_root, *kept_data)}
        missing = [
            r[0]
            for r in (*root_rows, *data_rows)
            if r[0] not in present and not os.path.isdir(base + r[0])
        ]
        root_rows, data_rows = kept_root, kept_data
    python_scripts: dict[str, bytes] = {}
    for path, _, _ in data_rows:
        if path.startswith(scripts_prefix):
            try:
                rest = _after_python_shebang(base + path)
            except FileNotFoundError:
                missing.append(path)
                continue
            if rest is not None:
                python_scripts[path] = rest
    if len(missing) > len(set(missing)) or any(m.startswith(scripts_prefix) for m in missing):
        gone = set(missing)
        data_rows = [r for r in data_rows if r[0] not in gone]
        missing = list(dict.fromkeys(missing))
    return _Parsed(
        filename=filename,
        dist_info=dist_info,
        name=canonicalize_name(project),
        version=version,
        purelib=_root_is_purelib(archive, dist_info),
        root_rows=root_rows,
        data_rows=data_rows,
        python_scripts=python_scripts,
        entry_points=_read_entry_points(archive, dist_info),
        missing=missing,
    )


def _map(archive: Path, parsed: _Parsed, env: Environment) -> WheelLayout:
    """Lay a parsed wheel out in ``env``."""
    dist_info, name = parsed.dist_info, parsed.name
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    root = str(env.purelib if parsed.purelib else env.platlib)
    result = WheelLayout(name, parsed.version, parsed.filename, archive, dist_info, root)
    result.missing = list(parsed.missing)
    base = str(archive) + "/"
    root_slash = root + "/"
    result.files = [Placement(base + p, root_slash + p, p, h, z) for p, h, z in parsed.root_rows]
    console = _console_specs(parsed.entry_points.get("console_scripts", {}), env.info.version)
    gui = parsed.entry_points.get("gui_scripts", {})
    wrapper_names = set(console) | set(gui)
    scripts_prefix = f"{data_dir}/scripts/"
    scripts_dir = str(env.scripts)
    # The environment's own files: its configuration, its lock, and burrowd's journal and
    # trash (a planted journal would be replayed by the next change).
    protected = {
        str(env.prefix / "pyvenv.cfg"),
        str(env.lock_path),
        str(env.prefix / ".burrow-journal"),
        str(env.prefix / ".burrow-trash"),
    }
    trash_slash = str(env.prefix / ".burrow-trash") + "/"
    for path, digest, size in parsed.data_rows:
        dest = _relocate(path, dist_info, data_dir, root, env=env, project=name)
        if dest is None:
            continue
        folder, _, base_name = dest.rpartition("/")
        if folder == scripts_dir and is_interpreter_name(base_name):
            raise ValueError(f"its file {path!r} would replace the environment's interpreter")
        if dest in protected or dest.startswith(trash_slash):
            raise ValueError(f"its file {path!r} would replace the environment's own {dest}")
        record = os.path.relpath(dest, root).replace(os.sep, "/")
        if path.startswith(scripts_prefix):
            script = path[len(scripts_prefix) :]
            if "/" not in script:
                if _is_wrapper(script, wrapper_names):
                    continue
                why = _script_name_ok(script)
                if why is not None:
                    raise ValueError(f"its script {script!r} {why}")
            rest = parsed.python_scripts.get(path)
            if rest is not None:
                result.scripts.append(Script(dest, record, shebang(env.python) + rest))
                continue
        result.files.append(Placement(base + path, dest, record, digest, size))
    old_python = tuple(int(x) for x in env.info.version.split(".")[:2]) < (3, 9)
    for specs in (console, gui):
        for script_name, value in specs.items():
            why = _script_name_ok(script_name)
            if why is not None:
                raise ValueError(f"its entry point {script_name!r} {why}")
            dest = os.path.join(env.scripts, script_name)
            rel = os.path.relpath(dest, root).replace(os.sep, "/")
            result.scripts.append(
                Script(dest, rel, _launcher(script_name, value, env.python, old_python))
            )
    return result


class Linker:
    """Place files from the cache into an environment: hard link, copy or symbolic link.

    A hard link that the file system refuses (another device, a link limit) falls back to
    a copy for the rest of the run, as uv does; :attr:`fell_back` says so.
    """

    def __init__(self, mode: LinkMode, existing: Iterable[str] = ()) -> None:
        self.mode = mode
        self.fell_back = False
        #: Directories known to exist (shared by the threads of one run).
        self.made: set[str] = set(existing)

    def ensure_dir(self, directory: str) -> None:
        """Create ``directory`` and its parents once per run (they may exist: merged).

        Parents first, so each directory costs one ``mkdir`` (a failed ``mkdir`` of a
        child whose parent is missing costs as much as a good one).
        """
        if directory in self.made:
            return
        parent = directory.rpartition("/")[0]
        if parent and parent not in self.made:
            self.ensure_dir(parent)
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
        self.made.add(directory)

    def place(self, src: str, dest: str) -> None:
        """Put ``src`` at ``dest``, replacing a file (never a directory) already there."""
        try:
            self._place(src, dest)
        except FileExistsError:
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise
            os.unlink(dest)
            self._place(src, dest)

    def _place(self, src: str, dest: str) -> None:
        if self.mode == "hardlink":
            try:
                os.link(src, dest)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                self.mode = "copy"
                self.fell_back = True
        if self.mode == "symlink":
            os.symlink(src, dest)
            return
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "exists", dest)
        shutil.copyfile(src, dest)
        shutil.copymode(src, dest)


def replace_file(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write a generated file atomically (a temporary file beside it, then a rename),
    replacing whatever is there (a stale file of a crash); blocking."""
    fd, tmp = tempfile.mkstemp(prefix=".burrow-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _record_text(rows: list[tuple[str, str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)  # pip's dialect: CRLF line ends
    writer.writerows(sorted(rows))
    return out.getvalue().encode("utf-8")


def install_layout(
    wheel: WheelLayout,
    linker: Linker,
    *,
    direct_url: DirectUrl | None = None,
    requested: bool = False,
    extra_metadata: dict[str, bytes] | None = None,
) -> int:
    """Install ``wheel`` as laid out; return the number of files placed.

    Blocking: the daemon runs it in a worker thread. The ``.dist-info`` directory is built
    aside and renamed into place last.
    """
    info_prefix = wheel.dist_info + "/"
    meta_files: list[Placement] = []
    made = linker.made
    fast = os.link if linker.mode == "hardlink" else None
    # The hot loop: one link per file (the floor), a directory check per file.
    for p in wheel.files:
        if p.record.startswith(info_prefix):
            meta_files.append(p)
            continue
        parent = p.dest.rpartition("/")[0]
        if parent not in made:
            linker.ensure_dir(parent)
        try:
            if fast is not None:
                fast(p.src, p.dest)
            else:
                linker.place(p.src, p.dest)
        except FileNotFoundError as exc:
            if not os.path.exists(p.src):
                raise InvalidDistribution(
                    wheel.filename, f"its RECORD lists {p.record}, which the wheel lacks"
                ) from exc
            raise
        except OSError:
            if fast is None:
                raise
            linker.place(p.src, p.dest)  # replaces a stray file, or falls back to a copy
            if linker.mode != "hardlink":
                fast = None
    rows: list[tuple[str, str, str]] = [(p.record, p.hash, p.size) for p in wheel.files]
    for script in wheel.scripts:
        linker.ensure_dir(os.path.dirname(script.dest))
        replace_file(script.dest, script.content, _SCRIPT_MODE)
        rows.append((script.record, record_hash(script.content), str(len(script.content))))

    final = wheel.dist_info_dest
    staging = tempfile.mkdtemp(prefix=f".burrow-{wheel.dist_info}-", dir=wheel.root)
    try:
        staged: set[str] = {staging}
        for p in meta_files:
            dest = os.path.join(staging, p.record[len(info_prefix) :])
            parent = os.path.dirname(dest)
            if parent not in staged:
                os.makedirs(parent, exist_ok=True)
                staged.add(parent)
            linker.place(p.src, dest)
        generated: list[tuple[str, bytes]] = [("INSTALLER", INSTALLER_NAME)]
        if requested:
            generated.append(("REQUESTED", b""))
        if direct_url is not None:
            generated.append(("direct_url.json", direct_url.to_json()))
        generated += sorted((extra_metadata or {}).items())
        # Replaced, never written into: a file placed here may be a hard link to the cache.
        for name, data in generated:
            replace_file(os.path.join(staging, name), data)
            rows.append((info_prefix + name, record_hash(data), str(len(data))))
        rows.append((info_prefix + "RECORD", "", ""))
        replace_file(os.path.join(staging, "RECORD"), _record_text(rows))
        os.chmod(staging, 0o755)
        if os.path.lexists(final):
            remove_environment_tree(Path(final))
        os.rename(staging, final)
    except BaseException:
        remove_environment_tree(Path(staging))
        raise
    return len(wheel.files) + len(wheel.scripts)
