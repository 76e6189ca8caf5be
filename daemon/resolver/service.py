"""The ``resolve`` method: read the inputs, resolve, write the pip-compile file.

Inputs are requirements files (full pip syntax), ``pyproject.toml`` (dependencies,
optional dependencies, dependency groups), constraints and overrides files, and
requirements given directly. The pins of an existing output file are kept as preferences
unless ``--upgrade`` (or ``--upgrade-package NAME``) says otherwise, as pip-compile does.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec.structs
from msgspec import Struct
from packaging.requirements import InvalidRequirement as InvalidRequirementError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from burrowd.daemon.builder.source import SourceKind, direct_source, sdist_source
from burrowd.daemon.errors import DaemonError, InvalidParams, InvalidRequirement
from burrowd.daemon.index.client import DEFAULT_INDEX, DIRECT, is_local
from burrowd.daemon.index.http import redact
from burrowd.daemon.index.models import ProjectPage
from burrowd.daemon.inputs.model import IndexOptions as FileOptions
from burrowd.daemon.inputs.model import Origin, RequirementEntry, fold_format_control
from burrowd.daemon.inputs.pyproject import project_name, read_pyproject
from burrowd.daemon.inputs.requirements_txt import logical_lines, parse_requirements_file
from burrowd.daemon.interpreters import Target
from burrowd.daemon.prefetch import Located, command_line_entries, direct_key, pinned_version
from burrowd.daemon.requests import PackageRequest, merge_index_options, prepare
from burrowd.daemon.resolver.memo import Memo
from burrowd.daemon.resolver.output import OutputOptions, format_resolution
from burrowd.daemon.resolver.provider import (
    PrereleaseMode,
    Provider,
    ResolutionMode,
    ResolveOptions,
)
from burrowd.daemon.resolver.resolve import Resolution, run_resolver
from burrowd.daemon.services import Services
from burrowd.protocol import messages as m

__all__ = ["Resolved", "project_of", "resolve", "resolve_pins"]

E = TypeVar("E", bound=enum.Enum)

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]


def _parse_datetime(text: str) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParams(
            f"--exclude-newer {text!r} is not a date; use 2024-03-01 or 2024-03-01T12:00:00Z",
            {"path": "$.exclude_newer"},
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _choice(kind: type[E], value: str, flag: str) -> E:
    """Return the ``kind`` member named ``value``, or an error naming ``flag``'s choices.

    The wire types already restrict the values; this guards the daemon's enums against a
    protocol value they do not know yet.
    """
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(v.value) for v in kind)
        field = flag.removeprefix("--")
        raise InvalidParams(
            f"{flag} {value!r} is not one of: {allowed}",
            {"path": f"$.{field}", "allowed": [str(v.value) for v in kind]},
        ) from None


class _Inputs:
    def __init__(self) -> None:
        self.requirements: list[RequirementEntry] = []
        self.constraints: list[RequirementEntry] = []
        self.overrides: list[RequirementEntry] = []
        self.options: FileOptions | None = None

    def merge(self, options: FileOptions) -> None:
        if self.options is None:
            self.options = options
        else:
            self.options.merge(options)


def _read_inputs(params: m.ResolveParams) -> _Inputs:
    cwd = Path(params.env.cwd)
    variables = params.env.variables or None
    out = _Inputs()
    out.requirements += command_line_entries(params.requirements, cwd)
    for name in params.requirement_files:
        path = cwd / name
        if path.name == "pyproject.toml" or path.suffix == ".toml":
            entries = read_pyproject(
                path, extras=params.extras, all_extras=params.all_extras, groups=params.groups
            )
            # ``# via`` names the file as the user wrote it, as for requirements files (the
            # reader only knows the absolute path, which differs between checkouts).
            project = project_name(path)
            out.requirements += [
                msgspec.structs.replace(
                    e, origin=Origin(e.origin.file, e.origin.line, name, project=project)
                )
                for e in entries
            ]
            continue
        if path.name in ("setup.py", "setup.cfg"):
            raise InvalidRequirement(
                f"reading {path.name} needs a build of the project, which is not available "
                "yet; list the dependencies in pyproject.toml or a requirements file",
                file=str(path),
            )
        if name == "-" and params.stdin is None:
            raise InvalidRequirement("'-' names standard input, but the client sent none")
        text = params.stdin if name == "-" else None
        parsed = parse_requirements_file(name, cwd=cwd, env=variables, text=text)
        out.requirements += parsed.requirements
        out.constraints += parsed.constraints
        out.merge(parsed.options)
    if (params.extras or params.all_extras or params.groups) and not any(
        Path(f).suffix == ".toml" for f in params.requirement_files
    ):
        raise InvalidRequirement(
            "--extra, --all-extras and --group need a pyproject.toml among the inputs"
        )
    for name in params.constraint_files:
        parsed = parse_requirements_file(name, cwd=cwd, constraint=True, env=variables)
        out.constraints += parsed.constraints + parsed.requirements
        out.merge(parsed.options)
    out.constraints += _upgrade_constraints(params, cwd)
    for name in params.override_files:
        parsed = parse_requirements_file(name, cwd=cwd, env=variables)
        out.overrides += parsed.requirements
    if not out.requirements:
        raise InvalidRequirement(
            "nothing to resolve: give requirements, a requirements file or a pyproject.toml"
        )
    return out


def _salvage_pins(text: str) -> dict[str, Version]:
    """Return the ``NAME==VERSION`` lines of a pins file the full parser refused.

    pip-compile's output is one pin per logical line, followed by ``--hash`` options and
    comments; anything else (options, paths, a broken line) is skipped.
    """
    prefs: dict[str, Version] = {}
    for _number, line in logical_lines(text):
        spec = line.split(" #", 1)[0].split(" --hash", 1)[0].strip()
        if not spec or spec.startswith(("#", "-")):
            continue
        try:
            req = Requirement(spec)
        except InvalidRequirementError:
            continue
        version = pinned_version(req)
        if version is not None:
            prefs[canonicalize_name(req.name)] = version
    return prefs


def output_preferences(
    params: m.ResolveParams, output: Path | None
) -> tuple[dict[str, Version], list[str]]:
    """Return the pins of the existing output file to prefer, and warnings about it."""
    if params.upgrade or output is None or not output.is_file():
        return {}, []
    warnings: list[str] = []
    found: dict[str, Version]
    try:
        parsed = parse_requirements_file(output, cwd=output.parent)
        found = {e.name: v for e in parsed.requirements if (v := pinned_version(e.requirement))}
    except DaemonError as exc:
        try:
            found = _salvage_pins(output.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            found = {}
        warnings.append(
            f"the existing output file {output} does not parse ({exc.message}); kept the "
            f"{len(found)} pin(s) it could read as preferences. Fix the file, or pass "
            "--upgrade to resolve from scratch."
        )
    skip = {project_of(p) for p in params.upgrade_packages}
    return {name: v for name, v in found.items() if name not in skip}, warnings


def _format_control(
    params: m.ResolveParams, files: FileOptions | None
) -> tuple[set[str], set[str]]:
    """Return (only-binary, no-binary): the files' options, then the command line's."""
    only: set[str] = set(files.only_binary) if files is not None else set()
    no: set[str] = set(files.no_binary) if files is not None else set()
    fold_format_control(only, no, only=params.only_binary, no=params.no_binary)
    return only, no


def project_of(spec: str) -> str:
    """Return the project an ``--upgrade-package`` value names (``pkg`` or ``pkg<2``)."""
    name = re.split(r"[\s\[<>=!~;@]", spec.strip(), maxsplit=1)[0]
    return canonicalize_name(name)


def _upgrade_constraints(params: m.ResolveParams, cwd: Path) -> list[RequirementEntry]:
    """Return ``-P 'pkg==2.0'``-style values as constraints (pip-compile's meaning)."""
    specs = [p for p in params.upgrade_packages if project_of(p) != canonicalize_name(p)]
    return command_line_entries(specs, cwd)


def _index_lines(params: m.ResolveParams, index: m.IndexOptions) -> list[str]:
    if not params.emit_index_url:
        return []
    lines: list[str] = []
    if index.no_index:
        lines.append("--no-index")
    else:
        # The default index too, as uv writes it: the file then says where pins come from.
        url = index.index_url or DEFAULT_INDEX.rstrip("/")
        lines.append(f"--index-url {redact(url)}")
    lines += [f"--extra-index-url {redact(u)}" for u in index.extra_index_urls]
    lines += [f"--find-links {redact(u)}" for u in index.find_links]
    return lines


async def _hashes(provider: Provider, resolution: Resolution) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, pin in resolution.pins.items():
        if pin.location == DIRECT and name in provider.direct_metadata:
            out[name] = []  # a project directory: no file to hash (pip-compile neither)
            continue
        if pin.location == DIRECT:
            files = [(pin.file, DIRECT)]
        else:
            files = provider.allowed_files(name, pin.version)
        # Files without an index hash are hashed (downloaded if need be), as pip-compile
        # does: a pin without its hashes would fail ``pip install --require-hashes``.
        offline = provider.request.fresh.offline
        digests = await asyncio.gather(
            *(provider.index.sha256_of(f, loc, name, offline=offline) for f, loc in files)
        )
        out[name] = sorted({f"sha256:{d}" for d in digests})
    return out


def _write_atomic(path: Path, text: str) -> None:
    # Unique per write: two requests of this daemon may write the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidParams(
            f"cannot write the output file {path}: {exc.strerror or exc}",
            {"file": str(path), "reason": exc.strerror or str(exc)},
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


class Resolved(Struct):
    """A resolution with what produced it, for ``compile`` and ``install``."""

    request: PackageRequest
    index: m.IndexOptions
    inputs: _Inputs
    provider: Provider
    resolution: Resolution
    warnings: list[str]


async def resolve_pins(
    services: Services,
    params: m.ResolveParams,
    progress: Progress,
    *,
    installed: Mapping[str, Version] | None = None,
    target: Target | None = None,
    memo: bool = False,
) -> Resolved:
    """Read the inputs of ``params`` and resolve them; the caller holds the cache lock.

    ``installed`` are versions an environment already has: kept whenever the resolution
    allows, unless upgrading (``install`` keeps what is installed, as pip and uv do).
    ``target`` is the environment's own target when one is known. With ``memo``, the last
    resolution of the same inputs is reused while the pages it used are unchanged.
    """
    cwd = Path(params.env.cwd)
    output = (cwd / params.output_file) if params.output_file else None
    prerelease = params.prerelease
    resolution_mode = _choice(ResolutionMode, params.resolution, "--resolution")
    exclude_newer = _parse_datetime(params.exclude_newer) if params.exclude_newer else None
    progress("reading inputs", 0, None)
    inputs = await asyncio.to_thread(_read_inputs, params)
    if prerelease is None:
        pre = inputs.options is not None and inputs.options.pre
        prerelease = "allow" if pre else PrereleaseMode.IF_NECESSARY_OR_EXPLICIT.value
    prerelease_mode = _choice(PrereleaseMode, prerelease, "--prerelease")
    only_binary, no_binary = _format_control(params, inputs.options)
    index = merge_index_options(params.index, inputs.options)
    direct = [e.name for e in inputs.requirements if not e.requirement.url]
    request = await prepare(
        services, params.env, index, params.python, warm=direct, target=target, build=params.build
    )
    preferences, input_warnings = await asyncio.to_thread(output_preferences, params, output)
    if installed and not params.upgrade:
        skip = {project_of(p) for p in params.upgrade_packages}
        for name, version in installed.items():
            if name not in skip:
                preferences.setdefault(name, version)
    options = ResolveOptions(
        prerelease=prerelease_mode,
        resolution=resolution_mode,
        exclude_newer=exclude_newer,
        no_deps=params.no_deps,
        preferences=preferences,
        only_binary=frozenset(only_binary),
        no_binary=frozenset(no_binary),
        no_build=params.build.no_build,
    )
    key = _memo_key(params, inputs, request, options) if memo else None
    if key is not None:
        fresh = request.fresh

        async def read_page(location: str, name: str) -> ProjectPage | None:
            return await services.index.page(location, name, fresh)

        hit = await services.resolutions.get(key, read_page)
        if hit is not None:
            kept: Resolved = hit.value
            return msgspec.structs.replace(
                kept, request=request, index=index, inputs=inputs, warnings=input_warnings
            )
    # Built in a worker: it reads local project directories (pyproject.toml, PKG-INFO)
    # and parses every requirement's markers and specifiers, none of it loop work.
    provider = await asyncio.to_thread(
        Provider,
        services.index,
        services.candidates,
        request,
        options,
        requirements=inputs.requirements,
        constraints=inputs.constraints,
        overrides=inputs.overrides,
        on_progress=progress,
        builder=services.builder,
    )
    resolution = await run_resolver(provider)
    resolved = Resolved(request, index, inputs, provider, resolution, input_warnings)
    if key is not None and _memorable(request, provider, resolution):
        # Kept against the pages as this resolution saw them: memory may hold newer ones
        # by now (a --refresh elsewhere, the warmer), and those must not vouch for it.
        provider.on_progress = _no_progress  # nor may it keep this request's connection
        services.resolutions.put(key, Memo(resolved, dict(request.fresh.seen)))
    return resolved


def _no_progress(*_args: object, **_kwargs: object) -> None:
    pass


def _memorable(request: PackageRequest, provider: Provider, resolution: Resolution) -> bool:
    """Return whether a resolution may be reused while its pages are unchanged.

    Not when a pin is a direct reference (its metadata is no page's), when a local index
    was read (its page lists names and sizes, not the files' contents), when a page changed
    during the resolution, or when a version was ruled out by a broken file (that may be a
    one-off failure, which the next resolution must try again).
    """
    fresh = request.fresh
    return (
        not fresh.mixed
        and not provider.ruled_out_by_errors
        and fresh.pages <= fresh.seen.keys()
        and not any(is_local(location) for location, _name in fresh.seen)
        and all(p.location != DIRECT for p in resolution.pins.values())
    )


def _memo_key(
    params: m.ResolveParams, inputs: _Inputs, request: PackageRequest, options: ResolveOptions
) -> bytes | None:
    """Return a digest of everything that decides a resolution, or ``None`` not to keep it.

    Not kept: direct references and find-links (no page vouches for them), and requests
    that ask for fresh data (``--refresh``, ``--upgrade``).
    """
    fresh = request.fresh
    if fresh.refresh_all or fresh.refresh_packages or params.upgrade or params.upgrade_packages:
        return None
    if request.settings.find_links:
        return None
    entries = [*inputs.requirements, *inputs.constraints, *inputs.overrides]
    if any(e.requirement.url or e.path is not None or e.editable for e in entries):
        return None
    h = hashlib.blake2b(digest_size=20)
    for part in (
        entries,
        inputs.options,
        options,
        request.settings,
        request.target,
        request.build,
        # The provider is reused too (hashes are computed through it): offline stays offline.
        fresh.offline,
        params.no_deps,
        params.python,
        params.build,
    ):
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.digest()


async def resolve(
    services: Services, params: m.ResolveParams, progress: Progress
) -> m.ResolveResult:
    """Serve one ``resolve`` request."""
    start = time.monotonic()
    cwd = Path(params.env.cwd)
    output = (cwd / params.output_file) if params.output_file else None
    async with services.cache.operation():
        resolved = await resolve_pins(services, params, progress, memo=True)
        request, index, provider, resolution = (
            resolved.request,
            resolved.index,
            resolved.provider,
            resolved.resolution,
        )
        hashes = await _hashes(provider, resolution) if params.generate_hashes else None
    text = format_resolution(
        resolution,
        OutputOptions(
            command=params.command,
            header=params.header,
            annotate=params.annotate,
            index_lines=_index_lines(params, index),
        ),
        hashes,
    )
    wrote = False
    if output is not None and not params.dry_run:
        await asyncio.to_thread(_write_atomic, output, text)
        wrote = True
    packages = [
        m.ResolvedPackage(
            name=name,
            version=str(pin.version),
            filename=pin.file.filename,
            url=redact(pin.file.url),
            index=redact(pin.location),
            extras=sorted(pin.extras),
            via=[m.Via(kind=v.kind, name=v.name, line=v.line) for v in sorted(pin.via)],
            marker=pin.marker,
            hashes=(hashes or {}).get(name, []),
            direct=pin.direct,
            editable=pin.editable,
            yanked=pin.file.yanked is not None,
        )
        for name, pin in resolution.pins.items()
    ]
    return m.ResolveResult(
        target=request.target.describe(),
        packages=packages,
        output=text,
        output_file=str(output) if output is not None else None,
        wrote=wrote,
        elapsed=time.monotonic() - start,
        warnings=[*resolved.warnings, *resolution.warnings],
        pages=dict(request.fresh.served),
    )


async def locate_pins(
    services: Services, resolved: Resolved, entries: Mapping[str, RequirementEntry]
) -> dict[str, Located]:
    """Return where each pin's wheel comes from: a wheel file, or a source to build.

    ``entries`` are the requirement lines by project (a direct reference is built from its
    own line). A project directory or a git repository is prepared here (checked out).
    """
    located: dict[str, Located] = {}
    for name, pin in resolved.resolution.pins.items():
        if pin.location == DIRECT:
            key = direct_key(pin.file)
            direct: str | None = pin.file.url
        else:
            key = services.index.wheel_key(pin.file, pin.location, name)
            direct = None
        origin = None
        if not pin.file.is_wheel:
            # An sdist, a project directory or a repository: built when fetched.
            origin = resolved.provider.sources.get(name) or (
                direct_source(entries[name])
                if pin.location == DIRECT and name in entries
                else sdist_source(pin.file, pin.location, name)
            )
            if origin.kind is SourceKind.DIRECTORY or origin.kind is SourceKind.GIT:
                origin = await services.builder.prepare(origin, resolved.request)
        located[name] = Located(
            pin.file, key, name, str(pin.version), pin.file.yanked, direct, origin=origin
        )
    return located
