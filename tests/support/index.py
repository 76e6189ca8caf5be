"""A fake package index on 127.0.0.1: PEP 503 HTML, PEP 691 JSON, PEP 658 metadata, ranges.

:class:`FakeIndex` keeps the files of some projects and builds an aiohttp application that
serves them the way PyPI does, with knobs to behave like a worse server (no validators, no
JSON, no ranges, slowness, failures, wrong bytes, broken connections) and a record of every
request it answered.

It runs either in the test's own loop (pytest-aiohttp's ``aiohttp_server``) or in a thread
with a loop of its own (:class:`ThreadedServer`), which is what end-to-end tests need while
they block on a ``burrow`` subprocess and the daemon, another process, talks to the index.
:func:`write_file_index` writes the same pages as a static ``file://`` tree.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import email.parser
import email.utils
import enum
import hashlib
import html
import json
import re
import shutil
import socket
import threading
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal, TypedDict, Unpack
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from tests.support.dists import Backend, Breakage, DistCache, DistSpec, build_sdist, build_wheel

__all__ = [
    "FROM_SPEC",
    "HTML_V1",
    "JSON_V1",
    "AddOptions",
    "FakeIndex",
    "Fault",
    "IndexedFile",
    "RequestRecord",
    "ThreadedServer",
    "negotiate",
    "parse_range",
    "write_file_index",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
_Format = Literal["json", "html-v1", "html"]
#: How :meth:`FakeIndex.fault` breaks a response: close the connection before answering
#: ("reset"), send half the body under a Content-Length for all of it ("truncate"), send half
#: of it with no Content-Length, so only the size tells ("cut"), or answer late ("hang").
Fault = Literal["reset", "truncate", "cut", "hang"]

# (media type, format served); "latest" is PEP 691's alias of the newest version.
_OFFERS: list[tuple[str, _Format]] = [
    (JSON_V1, "json"),
    ("application/vnd.pypi.simple.latest+json", "json"),
    (HTML_V1, "html-v1"),
    ("application/vnd.pypi.simple.latest+html", "html-v1"),
    ("text/html", "html"),
]
_CONTENT_TYPES: dict[_Format, str] = {
    "json": JSON_V1,
    "html-v1": HTML_V1,
    "html": "text/html; charset=utf-8",
}

# Request headers worth keeping in RequestRecord: the ones caching and auth tests assert on.
_RECORDED_HEADERS = ("Range", "If-None-Match", "If-Modified-Since", "Authorization", "Accept")


class _FromSpec(enum.Enum):
    TOKEN = 0


FROM_SPEC = _FromSpec.TOKEN
"""Default of ``FakeIndex.add(requires_python=...)``: take it from the spec or the METADATA."""


class AddOptions(TypedDict, total=False):
    """The keyword options of :meth:`FakeIndex.add`, for :meth:`FakeIndex.add_many`."""

    sdist: bool
    wheel: bool
    yanked: bool | str
    upload_time: datetime | None
    metadata_file: bool
    requires_python: str | _FromSpec | None
    broken: Breakage | None
    backend: Backend
    static_metadata: bool


@dataclass
class IndexedFile:
    """One file the index lists, and what its pages say about it."""

    filename: str
    project: str  # normalized name
    version: str
    kind: Literal["wheel", "sdist"]
    path: Path
    sha256: str
    size: int
    requires_python: str | None
    yanked: bool | str
    upload_time: datetime
    metadata: bytes | None  # the PEP 658 file served at <url>.metadata, None when not offered

    @property
    def url_path(self) -> str:
        """Return the (unquoted) path the file is served at, as ``hits`` and ``fail`` name it."""
        return "/files/" + self.filename

    @property
    def metadata_sha256(self) -> str | None:
        """Return the sha256 of the PEP 658 metadata file, None when not offered."""
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()


@dataclass(frozen=True)
class RequestRecord:
    """One request the index answered."""

    method: str
    path: str
    headers: dict[str, str]  # only those in _RECORDED_HEADERS that were sent
    status: int  # 0: the connection was broken on purpose (``fault``) before a whole answer


@dataclass
class _Failure:
    status: int
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None
    seconds: float = 0.0


class _Broken(web.Response):
    """What a handler returns after it broke the connection itself (recorded as status 0)."""


def _fail_key(path: str) -> str:
    if path.startswith(("http://", "https://")):
        path = urlsplit(path).path
    # Request paths arrive decoded (aiohttp), so compare decoded: "%2B" and "+" are one file.
    path = unquote(path)
    return re.sub(r"/+", "/", path).rstrip("/") or "/"


def _http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


def _iso(moment: datetime) -> str:
    # PEP 700's format: yyyy-mm-ddThh:mm:ss.ffffffZ.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def negotiate(accept: str | None) -> _Format:
    """Return the page format to serve for an Accept header (q-values and wildcards honoured).

    No header, ``*/*`` alone or nothing acceptable gives HTML, for old clients; among media
    types the client rates equally, JSON wins.
    """
    if not accept or not accept.strip():
        return "html"
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))

    best: tuple[float, int, int, _Format] | None = None
    for preference, (offer, fmt) in enumerate(reversed(_OFFERS)):
        offer_major = offer.split("/")[0]
        match: tuple[int, float] | None = None  # (specificity, q) of the most specific range
        for media, quality in ranges:
            if media == offer:
                specificity = 2
            elif media == f"{offer_major}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, quality)
        if match is None or match[1] <= 0:
            continue
        # A wildcard-only match says nothing about JSON: let HTML win those ties.
        tie_break = preference if match[0] > 0 else -preference
        candidate = (match[1], match[0], tie_break, fmt)
        if best is None or candidate[:3] > best[:3]:
            best = candidate
    return "html" if best is None else best[3]


def parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """Return the inclusive byte span a single ``Range`` asks for.

    None means "ignore the header and send everything" (malformed, or several ranges, which
    this server does not do), ``"unsatisfiable"`` means 416.
    """
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # RFC 9110: an invalid range-spec makes the whole header ignorable
    if start >= size:
        return "unsatisfiable"
    return (start, min(int(last), size - 1) if last else size - 1)


def _read_wheel_metadata(path: Path) -> bytes | None:
    # Broken wheels are welcome in the index; they just offer no PEP 658 file.
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(name)
    except (OSError, zipfile.BadZipFile):
        return None
    return None


def _anchor(entry: IndexedFile, href: str, *, with_hash: bool = True) -> str:
    fragment = f"#sha256={entry.sha256}" if with_hash else ""
    attrs = [f'href="{html.escape(href)}{fragment}"']
    if entry.requires_python is not None:
        attrs.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
    if entry.yanked is not False:
        reason = entry.yanked if isinstance(entry.yanked, str) else ""
        attrs.append(f'data-yanked="{html.escape(reason)}"')
    if entry.metadata_sha256 is not None:
        # PEP 714 renamed the attribute; old clients still read the PEP 658 one.
        attrs.append(f'data-dist-info-metadata="sha256={entry.metadata_sha256}"')
        attrs.append(f'data-core-metadata="sha256={entry.metadata_sha256}"')
    return f"<a {' '.join(attrs)}>{html.escape(entry.filename)}</a><br />"


def _html_page(title: str, lines: Iterable[str], repository_version: str) -> bytes:
    body = "\n".join(f"    {line}" for line in lines)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{repository_version}">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{body}\n  </body>\n</html>\n"
    ).encode()


class FakeIndex:
    """The files of a fake index and the aiohttp application that serves them.

    Every attribute knob may be changed at any time, also while a server runs in another
    thread; ``add``, ``remove`` and the knobs take effect on the next request.
    """

    def __init__(self, root: Path, *, cache: DistCache | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache = cache
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[RequestRecord] = []
        self.cache_control: str | None = None
        self.etag = True
        self.last_modified = True
        self.json_api = True
        self.auth: tuple[str, str] | None = None
        self.range_requests = True
        self.latency = 0.0
        self.bandwidth: float | None = None  # bytes/second for file bodies; None: unlimited
        self.absolute_urls = True  # False: pages link files with relative URLs
        self.pep700 = True  # False: no upload-time, size, versions (API 1.0, as old mirrors)
        self.file_hashes = True  # False: pages give no file hashes (as some mirrors)
        #: Raw PEP 691 file entries appended to a project's JSON page (malformed ones).
        self.extra_json_entries: dict[str, list[dict[str, object]]] = {}
        #: Keys that replace those of the JSON entries of a file, by filename (odd values).
        self.json_overrides: dict[str, dict[str, object]] = {}
        self._lock = threading.RLock()
        self._files: dict[str, IndexedFile] = {}
        self._display_names: dict[str, str] = {}
        self._corrupt: dict[str, bytes] = {}
        self._blobs: dict[str, bytes] = {}
        self._failures: dict[str, _Failure] = {}
        self._changed: dict[str, datetime] = {}  # project ("" for the list) -> Last-Modified
        self._validated: set[str] = set()  # pages served with their current Last-Modified
        self._serial = 0
        self._url: str | None = None

    # --- where it is ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return ``http://127.0.0.1:PORT``; only once a server runs the app."""
        if self._url is None:
            raise RuntimeError("the index is not served yet: start a ThreadedServer or bind()")
        return self._url

    @property
    def simple_url(self) -> str:
        """Return the index URL to give clients, ``<url>/simple`` (no trailing slash)."""
        return self.url + "/simple"

    @property
    def links_url(self) -> str:
        """Return the find-links page's URL."""
        return self.url + "/links/"

    def bind(self, url: str) -> None:
        """Record the URL a server runs the app at (the runners call this)."""
        self._url = url.rstrip("/")

    def url_for(self, entry: IndexedFile | str) -> str:
        """Return the absolute URL of a file (an entry or a filename)."""
        filename = entry.filename if isinstance(entry, IndexedFile) else entry
        return f"{self.url}/files/{quote(filename)}"

    # --- content -------------------------------------------------------------------------

    def add(
        self,
        spec_or_path: DistSpec | Path,
        *,
        sdist: bool = False,
        wheel: bool = True,
        yanked: bool | str = False,
        upload_time: datetime | None = None,
        metadata_file: bool = True,
        requires_python: str | _FromSpec | None = FROM_SPEC,
        broken: Breakage | None = None,
        backend: Backend = "in-tree",
        static_metadata: bool = True,
    ) -> list[IndexedFile]:
        """Build a spec's wheel and/or sdist (or take a built file) and list it.

        ``upload_time`` defaults to now. ``metadata_file`` offers a PEP 658 file for wheels
        (never for sdists, as on PyPI). ``requires_python`` overrides what the page says,
        ``None`` says nothing. A file of the same name replaces the earlier one.
        """
        built: list[tuple[Path, DistSpec | None]] = []
        if isinstance(spec_or_path, Path):
            built.append((self._take(spec_or_path), None))
        else:
            spec = spec_or_path
            if wheel:
                built.append((self._build_wheel(spec, broken), spec))
            if sdist:
                built.append((self._build_sdist(spec, backend, static_metadata), spec))
        moment = upload_time or datetime.now(UTC)
        entries = [
            self._entry(
                path,
                spec=spec,
                yanked=yanked,
                moment=moment,
                metadata_file=metadata_file,
                requires_python=requires_python,
            )
            for path, spec in built
        ]
        with self._lock:
            for entry, blob in entries:
                self._files[entry.filename] = entry
                self._blobs[entry.filename] = blob
                self._corrupt.pop(entry.filename, None)
                self._touch(entry.project)
        return [entry for entry, _ in entries]

    def add_many(
        self, specs: Iterable[DistSpec | Path], **options: Unpack[AddOptions]
    ) -> list[IndexedFile]:
        """Add several specs or files with the same ``add`` options; return every listed file."""
        entries: list[IndexedFile] = []
        for spec in specs:
            entries.extend(self.add(spec, **options))
        return entries

    def remove(self, name: str, version: str | None = None) -> list[IndexedFile]:
        """Unlist a project's files (one version's, or all); return what was removed."""
        project = canonicalize_name(name)
        with self._lock:
            gone = [
                entry
                for entry in self._files.values()
                if entry.project == project
                and (version is None or _same_version(entry.version, version))
            ]
            for entry in gone:
                del self._files[entry.filename]
                self._blobs.pop(entry.filename, None)
                self._corrupt.pop(entry.filename, None)
            if gone:
                self._touch(project)
        return gone

    def files(self, name: str | None = None) -> list[IndexedFile]:
        """Return the listed files of a project (or of all), by version then filename."""
        project = None if name is None else canonicalize_name(name)
        with self._lock:
            entries = [e for e in self._files.values() if project in (None, e.project)]
        return sorted(entries, key=lambda e: (e.project, _version_key(e.version), e.filename))

    def projects(self) -> list[str]:
        """Return the normalized names of the projects with at least one file."""
        with self._lock:
            return sorted({entry.project for entry in self._files.values()})

    # --- behaviour -------------------------------------------------------------------------

    def fail(
        self, path: str, status: int, times: int = 1, *, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status`` (and ``headers``).

        ``path`` is a request path (``/simple/foo/``, ``/files/x.whl``) or a full URL;
        trailing slashes do not matter.
        """
        with self._lock:
            self._failures[_fail_key(path)] = _Failure(status, times, dict(headers or {}))

    def fault(self, path: str, kind: Fault, times: int = 1, *, seconds: float = 30.0) -> None:
        """Break the next ``times`` responses to ``path`` the way ``kind`` says (see `Fault`).

        ``seconds`` is how long a "hang" waits before it answers normally (it stops waiting
        once the client has given up). Replaces any ``fail`` pending for ``path``.
        """
        with self._lock:
            self._failures[_fail_key(path)] = _Failure(0, times, fault=kind, seconds=seconds)

    def corrupt(self, filename: str, data: bytes | None) -> None:
        """Serve ``data`` for ``filename`` while pages keep the real hash (None: stop)."""
        with self._lock:
            if data is None:
                self._corrupt.pop(filename, None)
            else:
                self._corrupt[filename] = data

    def reset_hits(self) -> None:
        """Forget the request counters and records."""
        with self._lock:
            self.hits.clear()
            self.requests.clear()

    def served_bytes(self, filename: str) -> bytes:
        """Return the bytes the index sends for a file (corrupted ones included)."""
        with self._lock:
            return self._corrupt.get(filename, self._blobs[filename])

    def app(self) -> web.Application:
        """Return a new aiohttp application serving this index."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # --- rendering (shared by the server and write_file_index) -------------------------------

    def project_list(self, fmt: _Format, href_prefix: str = "/simple/") -> bytes:
        """Return the ``/simple/`` page; HTML links are ``<href_prefix><name>/``."""
        with self._lock:
            names = {p: self._display_names.get(p, p) for p in self.projects()}
        if fmt == "json":
            doc = {
                "meta": {"api-version": self._api_version(), "_last-serial": self._serial},
                "projects": [{"name": shown} for shown in names.values()],
            }
            return json.dumps(doc, indent=1).encode("utf-8")
        lines = [
            f'<a href="{href_prefix}{quote(p)}/">{html.escape(shown)}</a><br />'
            for p, shown in names.items()
        ]
        return _html_page("Simple index", lines, self._api_version())

    def project_page(self, name: str, fmt: _Format, files_base: str) -> bytes | None:
        """Return a project's page with file URLs under ``files_base``; None if unknown."""
        project = canonicalize_name(name)
        entries = self.files(project)
        if not entries:
            return None
        if fmt != "json":
            lines = [
                _anchor(e, files_base + quote(e.filename), with_hash=self.file_hashes)
                for e in entries
            ]
            return _html_page(f"Links for {project}", lines, self._api_version())
        files = []
        for entry in entries:
            item: dict[str, object] = {
                "filename": entry.filename,
                "url": files_base + quote(entry.filename),
                "hashes": {"sha256": entry.sha256} if self.file_hashes else {},
            }
            if entry.requires_python is not None:
                item["requires-python"] = entry.requires_python
            item["yanked"] = (entry.yanked or True) if entry.yanked is not False else False
            meta: dict[str, str] | bool = False
            if entry.metadata_sha256 is not None:
                meta = {"sha256": entry.metadata_sha256}
            item["core-metadata"] = meta
            item["data-dist-info-metadata"] = meta
            if self.pep700:
                item["size"] = entry.size
                item["upload-time"] = _iso(entry.upload_time)
            item.update(self.json_overrides.get(entry.filename, {}))
            files.append(item)
        files += self.extra_json_entries.get(project, [])
        doc: dict[str, object] = {
            "meta": {"api-version": self._api_version(), "_last-serial": self._serial},
            "name": project,
            "files": files,
        }
        if self.pep700:
            versions = sorted({e.version for e in entries}, key=_version_key)
            doc["versions"] = versions
        return json.dumps(doc, indent=1).encode("utf-8")

    def links_page(self, files_base: str) -> bytes:
        """Return the find-links page listing every file."""
        lines = [_anchor(e, files_base + quote(e.filename)) for e in self.files()]
        return _html_page("Links", lines, self._api_version())

    # --- internals ---------------------------------------------------------------------------

    def _api_version(self) -> str:
        return "1.1" if self.pep700 else "1.0"

    def _touch(self, project: str) -> None:
        # Last-Modified has one-second resolution: when a page was served with the current
        # value, move it on by at least a second so If-Modified-Since cannot hide a change.
        now = datetime.now(UTC).replace(microsecond=0)
        self._serial += 1
        for key in (project, ""):
            before = self._changed.get(key)
            if before is None:
                self._changed[key] = now
            elif key in self._validated:
                self._changed[key] = max(now, before + timedelta(seconds=1))
            else:
                self._changed[key] = max(now, before)
            self._validated.discard(key)

    def _take(self, path: Path) -> Path:
        target = self.root / path.name
        if target.resolve() != path.resolve():
            shutil.copyfile(path, target)
        return target

    def _build_wheel(self, spec: DistSpec, broken: Breakage | None) -> Path:
        if self.cache is None:
            return build_wheel(spec, self.root, broken=broken)
        return self._take(self.cache.wheel(spec, broken=broken))

    def _build_sdist(self, spec: DistSpec, backend: Backend, static_metadata: bool) -> Path:
        if self.cache is None:
            return build_sdist(spec, self.root, backend=backend, static_metadata=static_metadata)
        return self._take(self.cache.sdist(spec, backend=backend, static_metadata=static_metadata))

    def _entry(
        self,
        path: Path,
        *,
        spec: DistSpec | None,
        yanked: bool | str,
        moment: datetime,
        metadata_file: bool,
        requires_python: str | _FromSpec | None,
    ) -> tuple[IndexedFile, bytes]:
        blob = path.read_bytes()
        kind: Literal["wheel", "sdist"] = "wheel" if path.name.endswith(".whl") else "sdist"
        metadata = _read_wheel_metadata(path) if kind == "wheel" else None
        parsed = email.parser.BytesParser().parsebytes(metadata) if metadata else None
        name, version = _name_version(path.name, kind)
        if spec is not None:
            shown = spec.name
        elif parsed is not None and parsed["Name"]:
            shown = str(parsed["Name"])
        else:
            shown = name
        if isinstance(requires_python, _FromSpec):
            if spec is not None:
                requires_python = spec.requires_python
            elif parsed is not None and parsed["Requires-Python"]:
                requires_python = str(parsed["Requires-Python"])
            else:
                requires_python = None
        project = canonicalize_name(name)
        with self._lock:
            self._display_names.setdefault(project, shown)
        entry = IndexedFile(
            filename=path.name,
            project=project,
            version=version,
            kind=kind,
            path=path,
            sha256=hashlib.sha256(blob).hexdigest(),
            size=len(blob),
            requires_python=requires_python,
            yanked=yanked,
            upload_time=moment,
            metadata=metadata if metadata_file else None,
        )
        return entry, blob

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self._lock:
            self.hits[path] += 1
        response: web.StreamResponse | None = None
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            response = await self._respond(request)
            return response
        finally:
            headers = {k: request.headers[k] for k in _RECORDED_HEADERS if k in request.headers}
            status = response.status if response is not None else 500
            if isinstance(response, _Broken):
                status = 0
            with self._lock:
                self.requests.append(RequestRecord(request.method, path, headers, status))

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            failure = self._failures.get(_fail_key(request.path))
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._failures[_fail_key(request.path)]
        if failure is not None and failure.fault is None:
            return web.Response(
                status=failure.status, text="injected failure\n", headers=failure.headers
            )
        if failure is not None and failure.fault == "hang":
            await _hang(request, failure.seconds)
        elif failure is not None and failure.fault is not None:
            return await self._break(request, failure.fault)
        return await self._route(request)

    async def _break(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        if fault == "reset":
            transport.abort()
            return _Broken(status=599)
        real = await self._route(request)
        body = real.body if isinstance(real, web.Response) else None
        if not isinstance(body, bytes):
            raise RuntimeError(f"cannot {fault} a streamed body (set bandwidth = None)")
        lines = [f"HTTP/1.1 {real.status} {real.reason}"]
        lines += [
            f"{k}: {v}"
            for k, v in real.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        if fault == "truncate":
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head + body[: len(body) // 2])
        transport.close()
        return _Broken(status=599)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if self.auth is not None and not self._authorized(request):
            return web.Response(
                status=401, text="401: login\n", headers={"WWW-Authenticate": 'Basic realm="fake"'}
            )
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})

        # Tolerate `//` from clients that join "<simple_url>/" and "/<name>/".
        path = re.sub(r"/+", "/", request.path)
        parts = path.strip("/").split("/")
        if parts[0] == "simple" and len(parts) == 1:
            fmt = self._format(request)
            return self._page(request, "", self.project_list(fmt), fmt)
        if parts[0] == "simple" and len(parts) == 2:
            return self._project(request, parts[1], trailing_slash=path.endswith("/"))
        if parts[0] == "files" and len(parts) == 2:
            return await self._file(request, parts[1])
        if parts == ["links"]:
            return self._page(
                request, "", self.links_page(self._files_base(request, "../")), "html"
            )
        return web.Response(status=404, text="404: not here\n")

    def _authorized(self, request: web.Request) -> bool:
        assert self.auth is not None
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (user, password) == self.auth

    def _format(self, request: web.Request) -> _Format:
        fmt = negotiate(request.headers.get("Accept"))
        if fmt == "json" and not self.json_api:
            return "html"
        return fmt

    def _files_base(self, request: web.Request, relative: str) -> str:
        if self.absolute_urls:
            return f"{request.scheme}://{request.host}/files/"
        return f"{relative}files/"

    def _project(self, request: web.Request, name: str, *, trailing_slash: bool) -> web.Response:
        project = canonicalize_name(name)
        if name != project or not trailing_slash:
            return web.Response(status=301, headers={"Location": f"/simple/{quote(project)}/"})
        fmt = self._format(request)
        body = self.project_page(project, fmt, self._files_base(request, "../../"))
        if body is None:
            return web.Response(status=404, text=f"404: no project {project}\n")
        return self._page(request, project, body, fmt)

    def _page(self, request: web.Request, key: str, body: bytes, fmt: _Format) -> web.Response:
        content_type = _CONTENT_TYPES[fmt]
        headers = {"Content-Type": content_type, "Vary": "Accept"}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        etag = None
        if self.etag:
            digest = hashlib.sha256(content_type.encode() + b"\0" + body).hexdigest()
            etag = f'"{digest[:32]}"'
            headers["ETag"] = etag
        changed = None
        if self.last_modified:
            with self._lock:
                changed = self._changed.get(key)
                self._validated.add(key)
            if changed is not None:
                headers["Last-Modified"] = _http_date(changed)

        if_none_match = request.headers.get("If-None-Match")
        if_modified_since = request.headers.get("If-Modified-Since")
        if etag is not None and if_none_match is not None:
            # RFC 9110: If-None-Match wins over If-Modified-Since; compared weakly.
            tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
            if "*" in tags or etag in tags:
                return web.Response(status=304, headers=_without_type(headers))
        elif changed is not None and if_modified_since is not None:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                since = None
            if since is not None and since.tzinfo is not None and changed <= since:
                return web.Response(status=304, headers=_without_type(headers))
        return web.Response(body=body, headers=headers)

    async def _file(self, request: web.Request, filename: str) -> web.StreamResponse:
        with self._lock:
            if filename.endswith(".metadata") and filename not in self._files:
                entry = self._files.get(filename[: -len(".metadata")])
                blob = entry.metadata if entry is not None else None
            else:
                entry = self._files.get(filename)
                blob = self.served_bytes(filename) if entry is not None else None
        if blob is None:
            return web.Response(status=404, text=f"404: no file {filename}\n")

        headers = {"Content-Type": "application/octet-stream"}
        span = None
        if self.range_requests:
            headers["Accept-Ranges"] = "bytes"
            header = request.headers.get("Range")
            span = parse_range(header, len(blob)) if header is not None else None
            if span == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{len(blob)}"
                return web.Response(status=416, headers=headers)
        status = 200
        if isinstance(span, tuple):
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(blob)}"
            blob = blob[start : end + 1]
        if self.bandwidth is None or request.method == "HEAD":
            return web.Response(status=status, body=blob, headers=headers)
        # Throttled: a body aiohttp streams after the handler returned (so the request is
        # recorded before the client can see its end), in ~20 ms slices so a client can be
        # cancelled mid-download.
        headers["Content-Length"] = str(len(blob))
        return web.Response(status=status, body=_trickle(blob, self.bandwidth), headers=headers)


async def _hang(request: web.Request, seconds: float) -> None:
    """Wait ``seconds``, or until the client has closed the connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.02)


async def _trickle(blob: bytes, bandwidth: float) -> AsyncIterator[bytes]:
    step = max(1, int(bandwidth / 50))
    for offset in range(0, len(blob), step):
        yield blob[offset : offset + step]
        await asyncio.sleep(step / bandwidth)


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


#: The source archives indexes serve (PEP 625's .tar.gz and the formats before it).
_SDIST_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".txz", ".tar", ".zip")


def _name_version(filename: str, kind: Literal["wheel", "sdist"]) -> tuple[str, str]:
    try:
        if kind == "wheel":
            name, version, _, _ = parse_wheel_filename(filename)
            return str(name), str(version)
        # packaging reads .tar.gz and .zip only; the older formats split the same way.
        suffix = next((x for x in _SDIST_SUFFIXES if filename.endswith(x)), "")
        sdist_name, sdist_version = parse_sdist_filename(
            filename.removesuffix(suffix) + ".tar.gz" if suffix else filename
        )
        return str(sdist_name), str(sdist_version)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        # Files with invalid names are test input too: split as loosely as clients do.
        stem = filename.removesuffix(".whl")
        stem = next((stem.removesuffix(x) for x in _SDIST_SUFFIXES if stem.endswith(x)), stem)
        loose_name, _, rest = stem.partition("-")
        return loose_name, rest.split("-")[0]


def _without_type(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "Content-Type"}


class ThreadedServer:
    """Serve an app (or a FakeIndex) on 127.0.0.1 from a thread with its own event loop.

    For tests that block (``subprocess.run``) while another process talks to the server::

        with ThreadedServer(index) as server:
            subprocess.run([..., server.url + "/simple"])
    """

    def __init__(
        self,
        app: FakeIndex | web.Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self.index = app if isinstance(app, FakeIndex) else None
        self._app = app.app() if isinstance(app, FakeIndex) else app
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Return ``http://127.0.0.1:PORT`` (after start)."""
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self._host}:{self.port}"

    def start(self) -> str:
        """Start serving; return the URL once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        # Bind here, in the caller's thread: the port is known (and listening) before start
        # returns, so there is no window where a client could be refused.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self._host, self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"fake-index:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise RuntimeError("the index server thread did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("the index server failed to start") from self._error
        if self.index is not None:
            self.index.bind(self.url)
        return self.url

    def _run(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            runner = web.AppRunner(
                self._app, access_log=None, shutdown_timeout=self._shutdown_timeout
            )
            loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, sock)
            loop.run_until_complete(site.start())
            self._runner = runner
        except BaseException as exc:
            self._error = exc
            sock.close()
            loop.close()
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving: close the socket and every connection, then end the thread."""
        if self._thread is None or self._loop is None:
            return
        if self._error is None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self._shutdown_timeout + 10)
        if self._thread.is_alive():
            raise RuntimeError("the index server thread did not stop")
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def write_file_index(index: FakeIndex, dest: Path) -> str:
    """Write ``index`` as a static PEP 503 tree under ``dest``; return its ``simple/`` URL.

    The layout is that of this machine's ``/opt/pypi``: ``simple/index.html``,
    ``simple/<name>/index.html`` linking ``../../files/<file>#sha256=...``, and ``files/``
    (holding what the index serves, so ``corrupt()`` carries over, and PEP 658 files).
    """
    simple = dest / "simple"
    files_dir = dest / "files"
    simple.mkdir(parents=True, exist_ok=True)
    files_dir.mkdir(parents=True, exist_ok=True)
    (simple / "index.html").write_bytes(index.project_list("html", href_prefix=""))
    for project in index.projects():
        page = index.project_page(project, "html", "../../files/")
        assert page is not None
        (simple / project).mkdir(exist_ok=True)
        (simple / project / "index.html").write_bytes(page)
        for entry in index.files(project):
            (files_dir / entry.filename).write_bytes(index.served_bytes(entry.filename))
            if entry.metadata is not None:
                (files_dir / f"{entry.filename}.metadata").write_bytes(entry.metadata)
    return simple.as_uri()
