"""Target interpreters: discovery, what they report about themselves, and their tags.

An interpreter is queried once in a subprocess (its marker environment, version, platform,
libc, scheme paths and whether it is a virtual environment); the answer is cached in
``interpreter-v0`` keyed by the executable path's digest and re-validated by the
executable's mtime and size. A :class:`Target` is what resolution works for: the queried
interpreter, optionally overridden by ``--python-version`` and ``--python-platform``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import msgspec
from msgspec import Struct
from packaging import tags
from packaging.markers import Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import InterpreterNotFound
from burrowd.daemon.pyquery import (
    cache_entry,
    default_candidates,
    kill_query,
    on_path,
    spawn_query,
    take_early,
)
from burrowd.daemon.scheduler import OnceMap

__all__ = [
    "InterpreterInfo",
    "Interpreters",
    "PythonRequest",
    "Target",
    "parse_python_platform",
    "parse_python_version",
]

log = logging.getLogger(__name__)

QUERY_TIMEOUT: Final = 20.0
#: Seconds a failed query is remembered: a pyenv shim starts working when its version is
#: installed, without the shim file changing.
FAILURE_TTL: Final = 60.0


class InterpreterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What an interpreter reported about itself."""

    executable: str
    prefix: str
    base_prefix: str
    version: str
    implementation: str
    implementation_version: str
    abiflags: str
    soabi: str
    platform: str
    libc: str | None
    pointer_bits: int
    gil_disabled: bool
    externally_managed: bool
    paths: dict[str, str]
    markers: dict[str, str]

    @property
    def is_venv(self) -> bool:
        """Return whether the interpreter runs a virtual environment."""
        return self.prefix != self.base_prefix


class _Cached(msgspec.Struct, frozen=True):
    mtime_ns: int
    size: int
    info: InterpreterInfo


_cached_decoder: Final = msgspec.msgpack.Decoder(_Cached)
_encoder: Final = msgspec.msgpack.Encoder()


# -- platforms ------------------------------------------------------------------------------


class Platform(Struct, frozen=True):
    """An operating system, architecture and libc to build tags and markers for."""

    os: str  # "linux" | "macos" | "windows"
    arch: str  # "x86_64", "aarch64", ...
    libc: str = "gnu"  # "gnu" | "musl" (linux only)
    #: glibc or musl version (major, minor) for linux; macOS version for macos.
    version: tuple[int, int] = (2, 17)

    def platform_tags(self) -> list[str]:
        """Return the platform tags, most specific first (packaging's order)."""
        if self.os == "linux":
            arch = self.arch
            # The plain linux_<arch> tag (a wheel built for one machine) comes last, after
            # every portable tag, as in packaging, pip and uv.
            last = f"linux_{arch}"
            out: list[str] = []
            major, minor = self.version
            if self.libc == "musl":
                return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)] + [last]
            legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
            floor = 17 if arch in ("aarch64", "ppc64le", "s390x", "armv7l") else 5
            for m in range(minor, floor - 1, -1):
                out.append(f"manylinux_{major}_{m}_{arch}")
                if (major, m) in legacy and arch in (
                    "x86_64",
                    "i686",
                    "aarch64",
                    "ppc64le",
                    "s390x",
                ):
                    out.append(f"{legacy[(major, m)]}_{arch}")
            return [*out, last]
        if self.os == "macos":
            arch = "arm64" if self.arch in ("aarch64", "arm64") else self.arch
            return list(tags.mac_platforms(self.version, arch))
        if self.os == "windows":
            return {"x86_64": ["win_amd64"], "x86": ["win32"], "aarch64": ["win_arm64"]}.get(
                self.arch, [f"win_{self.arch}"]
            )
        return ["any"]

    def markers(self) -> dict[str, str]:
        """Return the markers this platform fixes (the rest come from the interpreter)."""
        system = {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[self.os]
        sys_platform = {"linux": "linux", "macos": "darwin", "windows": "win32"}[self.os]
        machine = self.arch
        if self.os == "windows":
            machine = {"x86_64": "AMD64", "aarch64": "ARM64", "x86": "x86"}.get(
                self.arch, self.arch
            )
        elif self.os == "macos" and self.arch == "aarch64":
            machine = "arm64"
        return {
            "os_name": "nt" if self.os == "windows" else "posix",
            "platform_system": system,
            "sys_platform": sys_platform,
            "platform_machine": machine,
            "platform_release": "",
            "platform_version": "",
        }


_PLATFORM_ALIASES: Final = {
    "linux": "x86_64-unknown-linux-gnu",
    "macos": "aarch64-apple-darwin",
    "windows": "x86_64-pc-windows-msvc",
}


def parse_python_platform(text: str) -> Platform:
    """Parse ``--python-platform`` (uv's spelling: ``x86_64-manylinux_2_28``, ``linux``, ...)."""
    value = _PLATFORM_ALIASES.get(text.strip().lower(), text.strip().lower())
    m = re.fullmatch(
        r"(?P<arch>[a-z0-9_]+)-manylinux(?:_(?P<maj>\d+)_(?P<min>\d+)|(?P<legacy>2014|2010|1))",
        value,
    )
    if m:
        if m["legacy"]:
            version = {"2014": (2, 17), "2010": (2, 12), "1": (2, 5)}[m["legacy"]]
        else:
            version = (int(m["maj"]), int(m["min"]))
        return Platform("linux", m["arch"], "gnu", version)
    m = re.fullmatch(r"(?P<arch>[a-z0-9_]+)-unknown-linux-(?P<libc>gnu|musl)", value)
    if m:
        version = (2, 17) if m["libc"] == "gnu" else (1, 2)
        return Platform("linux", m["arch"], m["libc"], version)
    m = re.fullmatch(r"(?P<arch>[a-z0-9_]+)-apple-darwin", value)
    if m:
        arch = "aarch64" if m["arch"] in ("aarch64", "arm64") else m["arch"]
        return Platform("macos", arch, "", (11, 0) if arch == "aarch64" else (10, 12))
    m = re.fullmatch(r"(?P<arch>[a-z0-9_]+)-pc-windows-msvc", value)
    if m:
        return Platform("windows", m["arch"], "")
    raise InterpreterNotFound(
        f"--python-platform {text}",
        "unknown platform; use linux, macos, windows, or a triple such as "
        "x86_64-unknown-linux-gnu, aarch64-apple-darwin, x86_64-manylinux_2_28",
    )


def parse_python_version(text: str) -> Version:
    """Parse ``--python-version``: ``3.7`` (meaning 3.7.0) or ``3.7.9``."""
    raw = text.strip()
    try:
        version = Version(raw)
    except InvalidVersion:
        raise InterpreterNotFound(
            f"--python-version {text}", "not a version; write it like 3.12 or 3.12.4"
        ) from None
    if len(version.release) < 2 or len(version.release) > 3 or version.local or version.epoch:
        raise InterpreterNotFound(
            f"--python-version {text}", "give two or three components, like 3.12 or 3.12.4"
        )
    if version.release[0] < 3 and version.release[0] != 2:
        raise InterpreterNotFound(f"--python-version {text}", "not a Python version")
    return version


def _host_platform(info: InterpreterInfo) -> Platform:
    plat = info.platform
    machine = info.markers.get("platform_machine", "") or plat.rsplit("-", 1)[-1]
    if plat.startswith("linux"):
        arch = plat.split("-", 1)[1].replace("-", "_") if "-" in plat else machine
        if arch in ("i386", "i586"):
            arch = "i686"
        if info.pointer_bits == 32 and arch == "x86_64":
            arch = "i686"
        if info.libc and info.libc.startswith("glibc "):
            try:
                major, minor = (int(x) for x in info.libc.split()[1].split(".")[:2])
            except ValueError:
                major, minor = 2, 17
            return Platform("linux", arch, "gnu", (major, minor))
        return Platform("linux", arch, "musl", (1, 2))
    if plat.startswith("macosx"):
        parts = plat.split("-")
        try:
            major, minor = (int(x) for x in parts[1].split(".")[:2])
        except (IndexError, ValueError):
            major, minor = 11, 0
        arch = "aarch64" if machine == "arm64" else machine
        return Platform("macos", arch, "", (major, minor))
    if plat.startswith("win"):
        arch = {"win-amd64": "x86_64", "win32": "x86", "win-arm64": "aarch64"}.get(plat, machine)
        return Platform("windows", arch, "")
    return Platform("linux", machine)


# -- the target -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a resolution is for: markers, tags and the Python version of one environment.

    A dataclass, unlike the daemon's other records (msgspec structs, which cost a fortieth
    to define at start-up): its markers and memo stay out of its hash and equality.
    """

    interpreter: InterpreterInfo
    python_version: Version
    platform: Platform
    markers: Mapping[str, str] = field(hash=False)
    _marker_memo: dict[tuple[str, str], bool] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        info: InterpreterInfo,
        *,
        python_version: str | None = None,
        python_platform: str | None = None,
    ) -> Target:
        """Return the target for ``info`` with optional overrides."""
        markers = dict(info.markers)
        plat = parse_python_platform(python_platform) if python_platform else _host_platform(info)
        if python_platform:
            markers.update(plat.markers())
        if python_version:
            v = parse_python_version(python_version)
            full = ".".join(str(x) for x in (*v.release, 0, 0)[:3])
            if v.pre:
                full += "".join(str(x) for x in v.pre)
            markers["python_version"] = f"{v.release[0]}.{v.release[1]}"
            markers["python_full_version"] = full
            if info.implementation == "cpython":
                markers["implementation_version"] = full
            version = Version(full)
        else:
            version = Version(markers["python_full_version"])
        return cls(info, version, plat, markers)

    @cached_property
    def tag_priorities(self) -> dict[tags.Tag, int]:
        """Return every supported tag with its priority (0 is best)."""
        return {t: i for i, t in enumerate(self.supported_tags())}

    @cached_property
    def tag_strings(self) -> dict[str, int]:
        """Return ``"py-abi-platform"`` -> priority, for ranking wheel filenames cheaply."""
        out: dict[str, int] = {}
        for i, t in enumerate(self.supported_tags()):
            out.setdefault(f"{t.interpreter}-{t.abi}-{t.platform}", i)
        return out

    def supported_tags(self) -> list[tags.Tag]:
        """Return the supported tags, best first."""
        major, minor = self.python_version.release[:2]
        platforms = self.platform.platform_tags()
        impl = self.interpreter.implementation
        if impl == "cpython":
            same = (major, minor) == Version(self.interpreter.version).release[:2]
            if same and self.interpreter.abiflags:
                abi = f"cp{major}{minor}{self.interpreter.abiflags}"
            elif (major, minor) < (3, 8):
                abi = f"cp{major}{minor}m"
            else:
                abi = f"cp{major}{minor}"
            if same and self.interpreter.gil_disabled and not abi.endswith("t"):
                abi += "t"
            out = list(tags.cpython_tags((major, minor), [abi], platforms))
            out += list(tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms))
            return out
        short = tags.INTERPRETER_SHORT_NAMES.get(impl, impl)
        if impl == "pypy":
            iv = self.interpreter.implementation_version.split(".")
            interp = f"pp{major}{iv[0]}{iv[1]}" if len(iv) > 1 else f"pp{major}{minor}"
        else:
            interp = f"{short}{major}{minor}"
        soabi = self.interpreter.soabi.replace("-", "_").replace(".", "_")
        abis = [soabi] if soabi else []
        out = list(tags.generic_tags(interp, abis, platforms))
        out += list(tags.compatible_tags((major, minor), interp, platforms))
        return out

    def marker_env(self, extra: str = "") -> dict[str, str]:
        """Return the marker environment, with ``extra`` set (PEP 508 evaluation)."""
        env = dict(self.markers)
        env["extra"] = extra
        return env

    def evaluate(self, marker: Marker, text: str, extra: str = "") -> bool:
        """Evaluate ``marker`` (whose string form is ``text``) for this target, memoized."""
        key = (text, extra)
        result = self._marker_memo.get(key)
        if result is None:
            result = self._marker_memo[key] = marker.evaluate(self.marker_env(extra))
        return result

    def allows_python(self, requires_python: str | None) -> bool:
        """Return whether a ``Requires-Python`` specifier admits the target's version."""
        if not requires_python:
            return True
        spec = _specifier(requires_python)
        return spec is None or spec.contains(self.python_version, prereleases=True)

    def describe(self) -> str:
        """Return e.g. ``CPython 3.11.7 on linux x86_64 (glibc 2.36)``."""
        impl = {"cpython": "CPython", "pypy": "PyPy"}.get(
            self.interpreter.implementation, self.interpreter.implementation
        )
        libc = ""
        if self.platform.os == "linux":
            libc = f" ({'glibc' if self.platform.libc == 'gnu' else 'musl'} "
            libc += ".".join(map(str, self.platform.version)) + ")"
        return f"{impl} {self.python_version} on {self.platform.os} {self.platform.arch}{libc}"


_SPEC_CACHE: dict[str, SpecifierSet | None] = {}


def _specifier(text: str) -> SpecifierSet | None:
    spec = _SPEC_CACHE.get(text, False)
    if spec is False:
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            # A malformed Requires-Python is ignored, as pip does.
            spec = None
        _SPEC_CACHE[text] = spec
    return spec  # type: ignore[return-value]


# -- discovery ------------------------------------------------------------------------------


class PythonRequest(Struct, frozen=True):
    """Which interpreter the client means, and the client's environment to look in."""

    python: str | None = None
    cwd: str = "."
    virtual_env: str | None = None
    path: str = ""
    #: Look past virtual environments (``--system``): only interpreters on ``PATH``.
    system: bool = False


class Interpreters:
    """Find and query interpreters, caching what they report."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._memory: dict[str, tuple[int, int, InterpreterInfo]] = {}
        #: Failed queries (a shim of a version not installed): not run again for a while.
        self._failures: dict[str, tuple[int, int, float, InterpreterNotFound]] = {}
        self._targets: dict[tuple[int, str | None, str | None], Target] = {}
        self._queries: OnceMap[tuple[str, int, int], InterpreterInfo] = OnceMap(
            "interpreter", lambda key: key[0]
        )

    def _candidates(self, req: PythonRequest) -> Iterator[Path]:
        """Yield the executables to try, best first, each once.

        Lazily: the first one usually answers, and the later PATH entries are then never
        looked at (this runs on the event loop for every request).
        """
        seen: set[Path] = set()
        for candidate in self._all_candidates(req):
            if candidate not in seen:
                seen.add(candidate)
                yield candidate

    @staticmethod
    def _all_candidates(req: PythonRequest) -> Iterator[Path]:
        if req.python:
            value = req.python
            if os.sep in value or value.startswith(".") or Path(req.cwd, value).is_dir():
                p = Path(req.cwd, value).expanduser()
                if p.is_dir():
                    yield from (p / "bin" / "python3", p / "bin" / "python")
                else:
                    yield p
                return
            if re.fullmatch(r"\d+(\.\d+){0,2}", value):
                names = [f"python{value}", f"python{'.'.join(value.split('.')[:2])}", "python3"]
            else:
                names = [value]
            for name in names:
                yield from on_path(name, req.path, req.cwd)
            return
        yield from default_candidates(req.cwd, req.virtual_env, req.path, system=req.system)

    def target(
        self,
        info: InterpreterInfo,
        *,
        python_version: str | None = None,
        python_platform: str | None = None,
    ) -> Target:
        """Return the (memoized) target for ``info`` with optional overrides.

        Memoized so that tag priorities, and everything keyed by them, are computed once.
        """
        key = (id(info), python_version, python_platform)
        target = self._targets.get(key)
        if target is None or target.interpreter is not info:
            target = Target.build(
                info, python_version=python_version, python_platform=python_platform
            )
            self._targets[key] = target
        return target

    async def find(self, req: PythonRequest) -> InterpreterInfo:
        """Return the interpreter ``req`` names (or the default one)."""
        tried: list[str] = []
        for candidate in self._candidates(req):
            if not candidate.exists():
                tried.append(f"{candidate} (missing)")
                continue
            try:
                info = await self.query(candidate)
            except InterpreterNotFound as exc:
                # A broken candidate (a pyenv shim of a version not installed, say) must
                # not hide a working one further on.
                tried.append(f"{candidate} ({exc.reason})")
                continue
            is_version = req.python and re.fullmatch(r"\d+(\.\d+){0,2}", req.python)
            if is_version and not (info.version + ".").startswith(f"{req.python}."):
                tried.append(f"{candidate} (is {info.version})")
                continue
            if req.system and info.is_venv and (not req.python or is_version):
                # ``--system`` means the interpreter, not an activated environment on PATH.
                tried.append(f"{candidate} (a virtual environment)")
                continue
            return info
        what = req.python or "the default Python"
        reason = "tried " + ", ".join(tried) if tried else "nothing suitable on PATH"
        raise InterpreterNotFound(what, reason + "; pass --python PATH")

    def flight_maps(self) -> list[OnceMap[Any, Any]]:
        """Return the single-flight map of interpreter queries, for ``status``."""
        return [self._queries]

    async def drain(self) -> None:
        """Let the queries running now finish (at shutdown), within their timeout."""
        await self._queries.wait_all(QUERY_TIMEOUT)

    async def query(self, executable: Path) -> InterpreterInfo:
        """Return what ``executable`` reports, from memory, the cache or a subprocess."""
        exe = Path(os.path.abspath(executable))
        try:
            st = os.stat(exe)
        except OSError as exc:
            raise InterpreterNotFound(str(exe), exc.strerror or str(exc)) from exc
        key = str(exe)
        mem = self._memory.get(key)
        if mem is not None and mem[0] == st.st_mtime_ns and mem[1] == st.st_size:
            return mem[2]
        failed = self._failures.get(key)
        if (
            failed is not None
            and failed[:2] == (st.st_mtime_ns, st.st_size)
            and time.monotonic() - failed[2] < FAILURE_TTL
        ):
            raise failed[3]
        # Concurrent first requests for one interpreter share one query subprocess.
        try:
            return await self._queries.run(
                (key, st.st_mtime_ns, st.st_size), lambda: self._load(exe, key, st)
            )
        except InterpreterNotFound as exc:
            self._failures[key] = (st.st_mtime_ns, st.st_size, time.monotonic(), exc)
            raise

    async def _load(self, exe: Path, key: str, st: os.stat_result) -> InterpreterInfo:
        path = cache_entry(self.cache.root, key)  # where the early query looks too
        data = await asyncio.to_thread(Cache.read_file, path)
        if data is not None:
            try:
                cached = _cached_decoder.decode(data)
            except msgspec.DecodeError:
                cached = None
            if cached is not None and (cached.mtime_ns, cached.size) == (
                st.st_mtime_ns,
                st.st_size,
            ):
                self._memory[key] = (st.st_mtime_ns, st.st_size, cached.info)
                return cached.info
        info = await self._run_query(exe, st)
        self._memory[key] = (st.st_mtime_ns, st.st_size, info)
        record = _Cached(st.st_mtime_ns, st.st_size, info)
        await asyncio.to_thread(self.cache.write_file, path, _encoder.encode(record), fsync=False)
        return info

    async def _run_query(self, exe: Path, st: os.stat_result) -> InterpreterInfo:
        # Started by ``burrowd`` before its imports (only its answer is left to read), or
        # now: either way one process group, read in a worker thread, stopped whole.
        proc = take_early(str(exe), st.st_mtime_ns, st.st_size)
        if proc is None:
            try:
                proc = spawn_query(str(exe))
            except OSError as exc:
                raise InterpreterNotFound(str(exe), f"cannot run it: {exc.strerror}") from exc
        try:
            out, err = await asyncio.to_thread(proc.communicate, timeout=QUERY_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_query(proc)
            await asyncio.to_thread(proc.communicate)
            raise InterpreterNotFound(str(exe), f"no answer within {QUERY_TIMEOUT:g}s") from None
        except BaseException:
            kill_query(proc)  # cancelled: the worker's communicate() then reaps it
            raise
        if proc.returncode != 0:
            raise InterpreterNotFound(str(exe), f"the query failed: {_failure_line(err)}")
        try:
            raw = json.loads(out)
            return msgspec.convert(raw, InterpreterInfo)
        except (ValueError, msgspec.ValidationError) as exc:
            raise InterpreterNotFound(str(exe), f"unexpected answer to the query: {exc}") from exc


def _failure_line(stderr: bytes) -> str:
    """Return the line of a failed run's stderr that says what went wrong.

    A Python traceback ends with it; a wrapper (a pyenv shim, a shell script) usually
    starts with it and goes on with advice.
    """
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "no output"
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def inherited_environment_request() -> PythonRequest:
    """Return a request for the default interpreter of the environment this process got.

    A daemon started by ``burrow`` inherits that client's working directory, ``PATH`` and
    ``VIRTUAL_ENV``: the environment its first request will most likely describe.
    """
    return PythonRequest(
        cwd=os.getcwd(),
        virtual_env=os.environ.get("VIRTUAL_ENV") or None,
        path=os.environ.get("PATH", ""),
    )


def current_interpreter_request() -> PythonRequest:
    """Return a request for the interpreter running the daemon (tests, defaults)."""
    return PythonRequest(python=sys.executable)
