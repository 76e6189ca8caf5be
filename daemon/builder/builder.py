"""PEP 517 builds in isolated environments, cached per source revision.

:class:`Builder` answers two questions about a :class:`Source`: its core metadata (through
``prepare_metadata_for_build_wheel`` when the backend has it) and a wheel of it
(``build_wheel``, or ``build_editable`` for ``-e``). Both are kept in the source's revision
directory of ``built-wheels-v0``, so a second request builds nothing; a changed source is a
new revision, and the old one is left for ``cache.prune``.

A build runs with the target's real interpreter in an isolated environment that burrowd
makes and fills itself, with the build requirements resolved by its own resolver and
installed by its own installer (:class:`BuildEnvironments`, one environment per set of
resolved requirements, reused across builds). Builds of one revision are single-flight in
the daemon and locked across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pyproject_hooks
from msgspec import Struct
from msgspec.structs import replace
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from burrowd.daemon.builder.git import GitRepos, parse_git_url
from burrowd.daemon.builder.hooks import Backend, BuildLog, call_hook, read_backend
from burrowd.daemon.builder.source import (
    Source,
    SourceKind,
    directory_revision,
)
from burrowd.daemon.cache.archive import unpack_sdist, wheel_metadata_bytes
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache, remove_tree
from burrowd.daemon.candidates import tag_rank, unsupported_wheel, wheel_parts
from burrowd.daemon.errors import (
    BuildFailed,
    BuildRequired,
    DaemonError,
    HashMismatch,
    InvalidDistribution,
    LockTimeout,
    OfflineMiss,
)
from burrowd.daemon.index.client import hash_file, is_local
from burrowd.daemon.index.http import redact
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import parse_sdist
from burrowd.daemon.index.sdist import sdist_metadata
from burrowd.daemon.inputs.model import Origin
from burrowd.daemon.inputs.requirements_txt import parse_requirement_text
from burrowd.daemon.interfaces import BuiltWheel
from burrowd.daemon.metadata import CoreMetadata, check_identity, parse_metadata
from burrowd.daemon.scheduler import OnceMap, pace

if TYPE_CHECKING:
    from burrowd.daemon.requests import PackageRequest
    from burrowd.daemon.services import Services

__all__ = ["BuildEnvironments", "Builder"]

log = logging.getLogger(__name__)

METADATA_FILE: Final = "metadata.msgpack"
VENV_TIMEOUT: Final = 120.0
READY: Final = ".burrow-ready"

_metadata_decoder: Final = msgspec.msgpack.Decoder(CoreMetadata)
_encoder: Final = msgspec.msgpack.Encoder()


class BuildEnvironments:
    """Isolated build environments in ``build-envs-v0``, one per resolved requirement set."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._flights: OnceMap[str, Path] = OnceMap("build-env", lambda key: key)

    async def get(
        self, requires: list[str], request: PackageRequest, source: str
    ) -> tuple[str, str]:
        """Return ``(python, bin directory)`` of an environment holding ``requires``."""
        services = self.services
        info = request.target.interpreter
        target = services.interpreters.target(info)  # the real interpreter, no overrides
        pins = await self._resolve(requires, replace(request, target=target), source)
        # Keyed by the base interpreter: venvs on one Python share build environments.
        key_text = "\n".join([info.base_prefix, info.implementation, info.version, *sorted(pins)])
        key = hashlib.blake2b(key_text.encode(), digest_size=10).hexdigest()
        path = services.cache.path(Bucket.BUILD_ENVIRONMENTS, key)
        if not (path / READY).exists():
            await self._flights.run(
                key,
                lambda: self._create(path, pins, replace(request, target=target), source),
            )
        return str(path / "bin" / "python"), str(path / "bin")

    async def _resolve(
        self, requires: list[str], request: PackageRequest, source: str
    ) -> dict[str, tuple[IndexFile, str, str]]:
        """Return ``name==version`` -> (file, location, name) of the resolved requirements."""
        from burrowd.daemon.resolver.provider import (  # noqa: PLC0415 - a cycle otherwise
            Provider,
            ResolveOptions,
        )
        from burrowd.daemon.resolver.resolve import run_resolver  # noqa: PLC0415

        if not requires:
            return {}
        services = self.services
        entries = [
            parse_requirement_text(
                text, origin=Origin(f"{source} [build-system]", None), base_dir=Path.cwd()
            )
            for text in requires
        ]
        provider = Provider(
            services.index,
            services.candidates,
            request,
            # Build requirements are never built from source: a version with only an sdist
            # is passed over for an older one with a wheel, as if --no-build were given.
            ResolveOptions(no_build=True),
            requirements=entries,
            constraints=[],
            overrides=[],
            builder=None,
        )
        try:
            resolution = await run_resolver(provider)
        except DaemonError as exc:
            if isinstance(exc, (BuildFailed, OfflineMiss, LockTimeout)):
                raise
            raise BuildFailed(
                source,
                f"its build requirements ({', '.join(requires)}) cannot be installed: "
                f"{exc.message}",
            ) from exc
        finally:
            provider.close()
        out: dict[str, tuple[IndexFile, str, str]] = {}
        for name, pin in resolution.pins.items():
            if not pin.file.is_wheel:
                raise BuildFailed(
                    source,
                    f"its build requirement {name}=={pin.version} has no wheel for "
                    f"{request.target.describe()}, and build requirements are not built from "
                    "source",
                )
            out[f"{name}=={pin.version} {pin.file.filename}"] = (pin.file, pin.location, name)
        return out

    async def _create(
        self,
        path: Path,
        pins: dict[str, tuple[IndexFile, str, str]],
        request: PackageRequest,
        source: str,
    ) -> Path:
        from burrowd.daemon.installer.apply import Changer, Ready  # noqa: PLC0415
        from burrowd.daemon.installer.environment import Environment  # noqa: PLC0415
        from burrowd.daemon.installer.installed import SitePackages  # noqa: PLC0415
        from burrowd.daemon.installer.plan import Plan, Step, Wanted  # noqa: PLC0415
        from burrowd.daemon.prefetch import FetchedWheel, Located  # noqa: PLC0415

        services = self.services
        cache = services.cache
        lock = cache.entry_lock(path, f"the build environment {path.name}")
        async with lock:
            if (path / READY).exists():
                return path
            if path.exists():
                await asyncio.to_thread(remove_tree, path)
            await _make_venv(request.target.interpreter.executable, path, source)
            info = await services.interpreters.query(path / "bin" / "python")
            env = Environment.from_info(info)
            ready: list[Ready] = []
            steps: list[Step] = []
            for file, location, name in pins.values():
                key = services.index.wheel_key(file, location, name)
                offline = request.fresh.offline and not is_local(file.url)
                if offline and await services.index.usable_pointer(file, key) is None:
                    raise OfflineMiss(f"the build requirement {file.filename}")
                pointer = await services.index.fetch_wheel(file, key)
                archive = cache.path(Bucket.ARCHIVE, pointer.archive)
                version = pointer.filename.split("-")[1]
                located = Located(file, key, name, version)
                step = Step(canonicalize_name(name), "missing", Wanted(canonicalize_name(name)))
                steps.append(step)
                ready.append(
                    Ready(name, FetchedWheel(located, pointer, archive, True), "missing", [])
                )
            changer = Changer(env, SitePackages([]), lambda *a, **k: None)
            await changer.run(Plan(install=steps), ready)
            await asyncio.to_thread((path / READY).write_text, "\n".join(sorted(pins)) + "\n")
        return path


async def _make_venv(executable: str, path: Path, source: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        executable,
        "-m",
        "venv",
        "--without-pip",
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VENV_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BuildFailed(
            source, f"creating a build environment took over {VENV_TIMEOUT:g}s"
        ) from None
    if proc.returncode != 0:
        raise BuildFailed(
            source,
            f"could not create a build environment with {executable}",
            log_tail=out.decode(errors="replace")[-2000:],
        )


class Builder:
    """Metadata and wheels of sources, built once per revision."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.environments = BuildEnvironments(services)
        self.git = GitRepos(services.cache, ttl=services.config.index_ttl)
        #: Backend runs (metadata or wheel) so far: the benchmark and ``status`` count them.
        self.builds = 0
        self._flights: OnceMap[tuple[str, ...], Any] = OnceMap("build", _describe_build)
        #: Backends running at once: a build is CPU work and holds a worker thread.
        self._slots = services.limits.build

    @property
    def cache(self) -> Cache:
        return self.services.cache

    def flight_maps(self) -> list[OnceMap[Any, Any]]:
        """Return the single-flight maps of builds, build environments and git, for ``status``."""
        return [self._flights, self.environments._flights, *self.git.flight_maps()]

    # -- sources ----------------------------------------------------------------------------

    async def prepare(self, source: Source, request: PackageRequest) -> Source:
        """Return ``source`` resolved: a git commit checked out, a local archive's digest.

        A digest that ``--hash`` pins do not allow is refused here, before anything is
        built from it.
        """
        if source.kind is SourceKind.ARCHIVE and source.sha256 is None:
            assert source.path is not None
            try:
                digest = await asyncio.to_thread(hash_file, source.path, {"sha256"})
            except OSError as exc:
                raise InvalidDistribution(
                    str(source.path), f"cannot read it: {exc.strerror}"
                ) from None
            source = replace(source, sha256=digest["sha256"])
        if source.sha256 is not None:
            _check_pins(source)
        if source.kind is not SourceKind.GIT or source.path is not None:
            return source
        ref = parse_git_url(source.url if source.ref is None else f"{source.url}@{source.ref}")
        fresh = request.fresh
        commit = source.commit or await self.git.resolve(
            ref,
            refresh=fresh.refresh_all or source.name in fresh.refresh_packages,
            offline=fresh.offline,
        )
        checkout = await self.git.checkout(ref, commit)
        tree = checkout / source.subdirectory if source.subdirectory else checkout
        if not tree.is_dir():
            raise InvalidDistribution(
                source.describe(), f"the repository has no directory {source.subdirectory!r}"
            )
        return replace(source, commit=commit, path=tree)

    async def _revision(self, source: Source, request: PackageRequest) -> tuple[Source, Path]:
        """Return the source (downloaded or checked out) and its revision directory."""
        source = await self.prepare(source, request)
        base = source.base_dir(self.cache)
        if source.kind is SourceKind.GIT:
            revision = "build"
        elif source.kind is SourceKind.DIRECTORY:
            assert source.path is not None
            revision = await asyncio.to_thread(directory_revision, source.path)
        elif source.kind is SourceKind.ARCHIVE:
            # By content, which prepare() hashed: a file replaced under the same mtime and
            # size (cp -p, rsync -t) is another source, and must not get the old wheel.
            assert source.sha256 is not None
            revision = source.sha256[:32]
        else:
            source = await self._download(source, request)
            assert source.sha256 is not None
            _check_pins(source)
            return source, base / _revision_name(source.sha256, source.editable)
        source = replace(source, revision=revision)
        if source.editable:
            revision += "-editable"
        return source, base / revision

    def _static_metadata(self, source: Source) -> CoreMetadata | None:
        """Return the metadata an sdist states statically (PKG-INFO 2.2), else ``None``."""
        if source.kind not in (SourceKind.REGISTRY, SourceKind.URL, SourceKind.ARCHIVE):
            return None
        version = _sdist_version(source.filename)
        if source.path is None or version is None:
            return None
        try:
            return sdist_metadata(
                source.path,
                source.filename,
                source.name,
                version,
                limits=self.cache.unpack_limits,
            )
        except BuildRequired:
            return None

    async def _download(self, source: Source, request: PackageRequest) -> Source:
        """Make sure a remote sdist is kept in the cache; return it with its sha256."""
        if source.sha256 is not None:
            kept = source.base_dir(self.cache) / source.sha256[:32] / "source" / source.filename
            if await asyncio.to_thread(kept.is_file):
                return replace(source, path=kept)
        if source.kind is SourceKind.URL and source.sha256 is None:
            return await self._url_revision(source, request)
        if request.fresh.offline and not is_local(source.url):
            raise OfflineMiss(f"the source distribution {source.filename} ({redact(source.url)})")
        file = IndexFile(
            filename=source.filename,
            url=source.url,
            hashes={"sha256": source.sha256} if source.sha256 else {},
        )
        # Hashed while it streamed, and checked against the pinned sha256 if there is one.
        path, hashes = await self.services.index.download_hashed(file)
        try:
            sha256 = hashes["sha256"]
            kept = source.base_dir(self.cache) / sha256[:32] / "source" / source.filename
            await asyncio.to_thread(self._keep, path, kept)
        finally:
            path.unlink(missing_ok=True)
        return replace(source, sha256=sha256, path=kept)

    async def _url_revision(self, source: Source, request: PackageRequest) -> Source:
        """Return a URL sdist with no pinned hash at its current revision.

        The content digest names the revision; the response's validators (``ETag``,
        ``Last-Modified``) are kept with it, so within the freshness lifetime nothing is
        asked, and after it a conditional request answered ``304`` downloads nothing.
        """
        base = source.base_dir(self.cache)
        record_path = base / "source.msgpack"
        record = await asyncio.to_thread(_read_url_record, record_path)
        kept = base / record.sha256[:32] / "source" / source.filename if record else None
        have = kept is not None and await asyncio.to_thread(kept.is_file)
        fresh = request.fresh
        if record is not None and kept is not None and have:
            young = time.time() - record.checked < self.services.config.index_ttl
            refresh = fresh.refresh_all or source.name in fresh.refresh_packages
            if fresh.offline or (young and not refresh):
                return replace(source, sha256=record.sha256, path=kept)
        if fresh.offline:
            raise OfflineMiss(f"the source distribution {source.filename} ({redact(source.url)})")
        headers: dict[str, str] = {}
        if record is not None and have:
            if record.etag:
                headers["If-None-Match"] = record.etag
            if record.last_modified:
                headers["If-Modified-Since"] = record.last_modified
        reply = await self.services.http.get(source.url, headers, ok=frozenset({200, 304}))
        if reply.status == 304 and record is not None and kept is not None:
            updated = replace(record, checked=time.time())
            await asyncio.to_thread(_write_url_record, self.cache, record_path, updated)
            return replace(source, sha256=record.sha256, path=kept)
        sha256 = hashlib.sha256(reply.body).hexdigest()
        kept = base / sha256[:32] / "source" / source.filename
        await asyncio.to_thread(self.cache.write_file, kept, reply.body)
        new = _UrlRecord(
            sha256=sha256,
            etag=reply.headers.get("ETag"),
            last_modified=reply.headers.get("Last-Modified"),
            checked=time.time(),
        )
        await asyncio.to_thread(_write_url_record, self.cache, record_path, new)
        return replace(source, sha256=sha256, path=kept)

    def _keep(self, path: Path, kept: Path) -> None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, kept)

    # -- metadata and wheels ----------------------------------------------------------------

    async def metadata(self, source: Source, request: PackageRequest) -> CoreMetadata:
        """Return the core metadata of ``source``; a cached one needs no build.

        An sdist whose digest is known (from its index, or a ``#sha256=``) and whose
        metadata is cached needs no download either; one that states its metadata
        statically (PEP 643) is read, not built.
        """
        if source.sha256 is not None and source.kind in (SourceKind.REGISTRY, SourceKind.URL):
            _check_pins(source)
            known = source.base_dir(self.cache) / _revision_name(source.sha256, source.editable)
            cached = await asyncio.to_thread(_read_metadata, known)
            if cached is not None:
                _check_python(source, cached, request)
                return cached
        source, rev = await self._revision(source, request)
        cached = await asyncio.to_thread(_read_metadata, rev)
        if cached is not None:
            _check_python(source, cached, request)
            return cached
        static = await asyncio.to_thread(self._static_metadata, source)
        if static is not None:
            _check_identity(source, static)
            await asyncio.to_thread(_write_metadata, self.cache, rev, static)
            _check_python(source, static, request)
            return static
        self._check_allowed(source, request)
        await pace()
        meta: CoreMetadata = await self._flights.run(
            (str(rev), "metadata", *_build_key(request)),
            lambda: self._build_metadata(source, rev, request),
        )
        return meta

    async def wheel(self, source: Source, request: PackageRequest) -> BuiltWheel:
        """Return a wheel of ``source`` for the request's target, building it once.

        A revision may hold wheels built for several interpreters: only one whose tags the
        target supports is taken (an editable one with ``source.editable``).
        """
        source, rev = await self._revision(source, request)
        found = await asyncio.to_thread(_find_wheel, rev, request.target.tag_strings)
        if found is not None:
            meta = await asyncio.to_thread(_read_metadata, rev)
            if meta is not None:
                _check_python(source, meta, request)
                return BuiltWheel(found, meta, source)
        self._check_allowed(source, request)
        await pace()
        path, meta = await self._flights.run(
            (str(rev), "wheel", *_build_key(request)),
            lambda: self._build_wheel(source, rev, request),
        )
        refusal = unsupported_wheel(path.name, request.target)
        if refusal is not None:
            # The build interpreter made a wheel for itself, not for the target (another
            # --python-platform or --python-version): installing it would break.
            raise BuildFailed(source.describe(), f"the build made {path.name}: {refusal}")
        return BuiltWheel(path, meta, source)

    @staticmethod
    def _check_allowed(source: Source, request: PackageRequest) -> None:
        if not request.build.allowed:
            raise BuildRequired(
                source.name,
                "?",
                source.describe(),
                "--no-build forbids building it; give a wheel, or drop --no-build",
            )

    async def _hook(self, run: _Run, hook: str, **kwargs: Any) -> Any:
        """Call a backend hook in a worker thread, a bounded number at once."""
        async with self._slots:
            return await asyncio.to_thread(
                call_hook,
                python=run.python,
                bin_dir=run.bin_dir,
                tree=run.tree,
                backend=run.backend,
                hook=hook,
                log=run.log,
                source=run.source,
                variables=run.variables,
                **kwargs,
            )

    async def _build_metadata(
        self, source: Source, rev: Path, request: PackageRequest
    ) -> CoreMetadata:
        lock = self.cache.entry_lock(rev, f"the build of {source.describe()}")
        async with self.cache.operation(), lock:
            cached = await asyncio.to_thread(_read_metadata, rev)
            if cached is not None:
                return cached
            log_ = BuildLog()
            hook = (
                "prepare_metadata_for_build_editable"
                if source.editable
                else "prepare_metadata_for_build_wheel"
            )
            async with _tree(self.cache, source) as tree:
                backend = await asyncio.to_thread(read_backend, tree, source.describe())
                run = await self._environment(source, tree, backend, request, log_)
                out = await asyncio.to_thread(self.cache.temp_dir, "metadata-")
                try:
                    self.builds += 1
                    # No fallback inside pyproject-hooks: it would build a wheel here only to
                    # throw it away; HookMissing lets the wheel built now be kept.
                    name = await self._hook(
                        run, hook, metadata_directory=str(out), _allow_fallback=False
                    )
                    data = await asyncio.to_thread(_read_bytes, out / str(name) / "METADATA")
                except pyproject_hooks.HookMissing:
                    # The backend only builds wheels (hatchling, flit): build the wheel now,
                    # keep it, and take its metadata, rather than build one twice.
                    _path, meta = await self._build_wheel_locked(source, rev, request, run)
                    return meta
                finally:
                    await asyncio.to_thread(remove_tree, out)
            if data is None:
                raise InvalidDistribution(
                    source.describe(),
                    f"its backend {backend.name} named a metadata directory {name!r} that "
                    "holds no METADATA",
                )
            meta = parse_metadata(data, source.describe())
            _check_identity(source, meta)
            await asyncio.to_thread(_write_metadata, self.cache, rev, meta)
            _check_python(source, meta, request)
            return meta

    async def _build_wheel(
        self, source: Source, rev: Path, request: PackageRequest
    ) -> tuple[Path, CoreMetadata]:
        lock = self.cache.entry_lock(rev, f"the build of {source.describe()}")
        async with self.cache.operation(), lock:
            found = await asyncio.to_thread(_find_wheel, rev, request.target.tag_strings)
            meta = await asyncio.to_thread(_read_metadata, rev)
            if found is not None and meta is not None:
                return found, meta
            log_ = BuildLog()
            async with _tree(self.cache, source) as tree:
                backend = await asyncio.to_thread(read_backend, tree, source.describe())
                run = await self._environment(source, tree, backend, request, log_)
                return await self._build_wheel_locked(source, rev, request, run)

    async def _build_wheel_locked(
        self, source: Source, rev: Path, request: PackageRequest, run: _Run
    ) -> tuple[Path, CoreMetadata]:
        """Build the wheel (the revision's lock is held) and keep it with its metadata."""
        hook = "build_editable" if source.editable else "build_wheel"
        out = await asyncio.to_thread(self.cache.temp_dir, "wheel-")
        try:
            self.builds += 1
            log.info("building %s (%s)", source.describe(), hook)
            try:
                filename = await self._hook(run, hook, wheel_directory=str(out))
            except pyproject_hooks.HookMissing:
                raise BuildFailed(
                    source.describe(),
                    f"its backend {run.backend.name} cannot build an editable wheel (PEP 660); "
                    "install it without -e",
                    backend=run.backend.name,
                    hook=hook,
                ) from None
            built = out / str(filename)
            meta = await asyncio.to_thread(_wheel_metadata, built)
            _check_identity(source, meta)
            final = await asyncio.to_thread(_store_wheel, built, rev)
        finally:
            await asyncio.to_thread(remove_tree, out)
        await asyncio.to_thread(_write_metadata, self.cache, rev, meta)
        _check_python(source, meta, request)
        return final, meta

    async def _environment(
        self,
        source: Source,
        tree: Path,
        backend: Backend,
        request: PackageRequest,
        log_: BuildLog,
    ) -> _Run:
        """Return how the backend runs: which interpreter, with which bin directory."""
        info = request.target.interpreter
        what = source.describe()
        if not request.build.isolation:
            # --no-build-isolation: the target environment itself provides the backend, and
            # its scripts (cython, cmake) are found first on PATH.
            return _Run(
                info.executable,
                info.paths.get("scripts"),
                tree,
                backend,
                log_,
                what,
                request.variables,
            )
        python, bin_dir = await self.environments.get(list(backend.requires), request, what)
        run = _Run(python, bin_dir, tree, backend, log_, what, request.variables)
        hook = (
            "get_requires_for_build_editable" if source.editable else "get_requires_for_build_wheel"
        )
        try:
            extra = await self._hook(run, hook)
        except pyproject_hooks.HookMissing:
            extra = []
        extra = [r for r in extra or [] if isinstance(r, str)]
        if extra:
            python, bin_dir = await self.environments.get(
                [*backend.requires, *extra], request, what
            )
            run = _Run(python, bin_dir, tree, backend, log_, what, request.variables)
        return run


class _Run(Struct, frozen=True):
    """How one build calls its backend: interpreter, PATH's first directory, tree, log."""

    python: str
    bin_dir: str | None
    tree: Path
    backend: Backend
    log: BuildLog
    source: str
    #: The requesting client's environment (``CC``, ``CFLAGS``, ``PATH``...); ``None``: ours.
    variables: dict[str, str] | None = None


def _describe_build(key: tuple[str, ...]) -> str:
    """Show a build in ``status``: what it makes, of which revision (the cache's last parts)."""
    return f"{key[1]} of {'/'.join(Path(key[0]).parts[-3:])}"


def _build_key(request: PackageRequest) -> tuple[str, ...]:
    """Return what besides the revision decides a build: the interpreter and isolation."""
    info = request.target.interpreter
    return (info.executable, info.version, "isolated" if request.build.isolation else "target")


def _check_pins(source: Source) -> None:
    """Refuse a source archive whose digest the ``--hash`` pins do not allow."""
    if source.pins and source.sha256 not in source.pins:
        raise HashMismatch(
            source.filename or source.describe(),
            redact(source.url),
            "sha256",
            sorted(source.pins),
            source.sha256 or "?",
        )


def _check_identity(source: Source, meta: CoreMetadata) -> None:
    """Refuse metadata of another project, or (for an sdist) another version."""
    if source.name and canonicalize_name(meta.name) != canonicalize_name(source.name):
        raise InvalidDistribution(source.describe(), f"it builds {meta.name}, not {source.name}")
    if source.kind in (SourceKind.REGISTRY, SourceKind.URL, SourceKind.ARCHIVE):
        version = _sdist_version(source.filename)
        if version is not None:
            check_identity(meta, source.name, version, source.describe())


def _check_python(source: Source, meta: CoreMetadata, request: PackageRequest) -> None:
    """Refuse what neither the target nor the interpreter that builds it may run."""
    if not meta.requires_python:
        return
    target = request.target
    if not target.allows_python(meta.requires_python):
        raise InvalidDistribution(
            source.describe(),
            f"it requires Python {meta.requires_python}, and the target is {target.describe()}",
        )
    try:
        spec = SpecifierSet(meta.requires_python)
    except InvalidSpecifier:
        return
    real = target.interpreter.version
    if not spec.contains(Version(real), prereleases=True):
        raise InvalidDistribution(
            source.describe(),
            f"it requires Python {meta.requires_python}, and the interpreter that builds it "
            f"is {real}",
        )


def _wheel_metadata(wheel: Path) -> CoreMetadata:
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = wheel_metadata_bytes(zf, wheel.name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidDistribution(wheel.name, f"the backend built a broken wheel ({exc})") from None
    return parse_metadata(data, wheel.name)


def _store_wheel(built: Path, rev: Path) -> Path:
    """Move a built wheel into its revision directory (both in the cache: one rename)."""
    try:
        parse_wheel_filename(built.name)
    except InvalidWheelFilename as exc:
        raise InvalidDistribution(
            built.name, f"the backend built a wheel with a bad name ({exc})"
        ) from None
    rev.mkdir(parents=True, exist_ok=True)
    final = rev / built.name
    if final.exists():
        log.warning("replacing the built wheel %s", final)
    os.replace(built, final)
    return final


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@contextlib.asynccontextmanager
async def _tree(cache: Cache, source: Source) -> AsyncIterator[Path]:
    """Yield the source tree of a build: a directory as it is, or an sdist unpacked aside."""
    if source.kind in (SourceKind.DIRECTORY, SourceKind.GIT):
        assert source.path is not None
        yield source.path
        return
    assert source.path is not None
    tmp = await asyncio.to_thread(cache.temp_dir, "sdist-")
    try:
        try:
            tree = await asyncio.to_thread(
                unpack_sdist,
                source.path,
                source.filename or source.path.name,
                tmp,
                limits=cache.unpack_limits,
            )
        except InvalidDistribution:
            if source.kind in (SourceKind.REGISTRY, SourceKind.URL):
                # A hostile download stays out of the cache (the user's own file stays).
                await asyncio.to_thread(_forget_download, source.path)
            raise
        yield tree
    finally:
        await asyncio.to_thread(remove_tree, tmp)


def _forget_download(path: Path) -> None:
    """Remove a downloaded sdist kept in ``<revision>/source/``, and that directory."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _revision_name(sha256: str, editable: bool) -> str:
    """Return the revision directory of an sdist with this digest."""
    return sha256[:32] + ("-editable" if editable else "")


def _sdist_version(filename: str) -> str | None:
    from packaging.utils import InvalidSdistFilename  # noqa: PLC0415

    try:
        return str(parse_sdist(filename)[1])
    except InvalidSdistFilename:
        return None


class _UrlRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the last response for a URL sdist said: its digest and validators."""

    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    checked: float = 0.0


_url_decoder: Final = msgspec.msgpack.Decoder(_UrlRecord)


def _read_url_record(path: Path) -> _UrlRecord | None:
    data = Cache.read_file(path)
    if data is None:
        return None
    try:
        return _url_decoder.decode(data)
    except msgspec.DecodeError:
        return None


def _write_url_record(cache: Cache, path: Path, record: _UrlRecord) -> None:
    cache.write_file(path, _encoder.encode(record), fsync=False)


def _read_metadata(rev: Path) -> CoreMetadata | None:
    data = Cache.read_file(rev / METADATA_FILE)
    if data is None:
        return None
    try:
        return _metadata_decoder.decode(data)
    except msgspec.DecodeError:
        return None


def _write_metadata(cache: Cache, rev: Path, meta: CoreMetadata) -> None:
    cache.write_file(rev / METADATA_FILE, _encoder.encode(meta))


def _find_wheel(rev: Path, priorities: Mapping[str, int]) -> Path | None:
    """Return the built wheel of ``rev`` the target ranks best (tags it supports), if any."""
    try:
        names = os.listdir(rev)
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for name in names:
        parts = wheel_parts(name) if name.endswith(".whl") else None
        if parts is None:
            continue
        rank = tag_rank(parts[2], parts[3], parts[4], priorities)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, name)
    return rev / best[1] if best is not None else None
