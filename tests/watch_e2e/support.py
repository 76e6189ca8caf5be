"""Helpers of the watch end-to-end tests: a project directory, packages, the event stream.

Every ``burrow`` run goes through :class:`tests.install_e2e.support.Burrow`: an explicit
working directory and no inherited ``VIRTUAL_ENV``, so nothing ever syncs into the
checkout's own ``.venv``. Syncs always name their target with ``--python``.

What the daemon did is read from its answers (``status``, ``watch.list``, ``watch.event``
notifications) and from the fake index's request counters, polled with timeouts; never from
sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.e2e.helpers import BurrowEnv, RawClient, wait_until
from tests.install_e2e.support import Burrow, site_packages
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex

__all__ = [
    "SETTLE",
    "EventStream",
    "JsonReader",
    "Project",
    "dist_infos",
    "json_documents",
    "package",
    "watch_info",
]

#: Seconds a warming of a few small packages may take on a busy machine before a test fails.
SETTLE: Final = 30.0

JSON = Any


def package(name: str, version: str = "1.0", *requires: str, blob: int = 0) -> DistSpec:
    """Return a small package; ``blob`` bytes of incompressible data make its wheel that big.

    A big wheel is what ``FakeIndex.bandwidth`` slows down: its download is seen in flight.
    """
    files: dict[str, bytes] | None = None
    if blob:
        data = random.Random(f"{name}-{version}").randbytes(blob)
        module = name.replace("-", "_")
        files = {f"{module}/__init__.py": b"", f"{module}/blob.bin": data}
    return DistSpec(name, version, requires_dist=list(requires), files=files)


def dist_infos(venv: Path) -> dict[str, str]:
    """Return ``{name: version}`` of the ``.dist-info`` directories of a venv."""
    out = {}
    for path in site_packages(venv).glob("*.dist-info"):
        name, version = path.name.removesuffix(".dist-info").split("-", 1)
        out[name] = version
    return out


def json_documents(text: str) -> list[JSON]:
    """Return the JSON documents of ``text``: pretty-printed ones one after the other."""
    documents, end = _parse_documents(text)
    assert not text[end:].strip(), f"not JSON: {text[end:]!r}"
    return documents


class JsonReader:
    """Read the JSON documents a running process prints (pretty-printed, one after another)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.text = ""
        self.documents: list[JSON] = []

    def until(self, done: Callable[[list[JSON]], bool], timeout: float = SETTLE) -> list[JSON]:
        """Read until ``done(every document so far)`` holds; return the documents.

        Fails the test (with what was read) when ``timeout`` seconds pass first or the
        process ends.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.documents, _ = _parse_documents(self.text)
            if done(self.documents):
                return self.documents
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; read {self.text!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            assert chunk, f"the process ended (status {self.proc.poll()}); read {self.text!r}"
            self.text += chunk.decode()


def _parse_documents(text: str) -> tuple[list[JSON], int]:
    """Return the complete JSON documents at the start of ``text``, and where they end.

    What follows them (a document still being written) is left.
    """
    decoder = json.JSONDecoder()
    out: list[JSON] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out, pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return out, pos
        out.append(value)
        pos = end


def watch_info(status: JSON, wid: int) -> JSON:
    """Return the watch ``wid`` of a ``status`` or ``watch.list`` result (``None`` if gone)."""
    for info in status["watches"]:
        if info["id"] == wid:
            return info
    return None


class EventStream:
    """A connection subscribed to ``watch.event``: every notification, read in order.

    Only notifications arrive on it (it sends no request after subscribing), so none is
    skipped the way :meth:`RawClient.read_reply` skips them.
    """

    def __init__(self, env: BurrowEnv) -> None:
        self.client = env.connect()
        self.seen: list[JSON] = []
        reply = self.client.request("watch.events", {"subscribe": True})
        assert "error" not in reply, reply
        self.watches: list[JSON] = reply["result"]["watches"]

    def close(self) -> None:
        """Close the connection (the daemon unsubscribes it)."""
        self.client.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next(
        self,
        event: str | None = None,
        *,
        watch: int | None = None,
        where: Callable[[JSON], bool] | None = None,
        timeout: float = SETTLE,
    ) -> JSON:
        """Return the next event (of this kind, of this watch) that ``where`` accepts.

        Events passed over stay in :attr:`seen`.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event or 'watch'} event within {timeout}s: {self.seen}"
            self.client.sock.settimeout(remaining)
            try:
                message = self.client.read()
            except TimeoutError:
                continue
            assert message.get("method") == "watch.event", message
            params: JSON = message["params"]
            self.seen.append(params)
            if event is not None and params["event"] != event:
                continue
            if watch is not None and params["watch"] != watch:
                continue
            if where is not None and not where(params):
                continue
            return params

    def quiet(self, wait: float = 0.3) -> bool:
        """Return whether no event arrives within ``wait`` seconds."""
        return self.client.nothing_pending(wait)


@dataclass(eq=False)
class Project:
    """A project directory, the CLI run from it, its daemon and its fake index."""

    burrow: Burrow
    index: FakeIndex
    status_client: RawClient | None = None
    _clients: list[RawClient] = field(default_factory=list)

    @property
    def env(self) -> BurrowEnv:
        return self.burrow.env

    @property
    def cwd(self) -> Path:
        return self.burrow.cwd

    @property
    def url(self) -> str:
        return self.index.simple_url

    def write(self, name: str, *lines: str) -> Path:
        """Write a file of ``lines`` in the project (atomically, as editors save)."""
        path = self.cwd / name
        tmp = path.with_name(f".{path.name}.swp")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tmp.replace(path)
        return path

    def client(self) -> RawClient:
        """Return a connection of the test's own, for requests (closed at teardown)."""
        client = self.env.connect()
        self._clients.append(client)
        return client

    def status(self) -> JSON:
        """Return the daemon's ``status`` (over one connection kept for the test)."""
        if self.status_client is None:
            self.status_client = self.client()
        return self.status_client.call("status")

    def info(self, wid: int) -> JSON:
        """Return the watch ``wid`` as ``status`` shows it now (``None`` if gone)."""
        return watch_info(self.status(), wid)

    def until(self, predicate: Callable[[JSON], bool], timeout: float = SETTLE) -> JSON:
        """Poll ``status`` until ``predicate(status)`` holds; return that status."""
        seen: list[JSON] = []

        def check() -> bool:
            seen.append(self.status())
            return predicate(seen[-1])

        assert wait_until(check, timeout, interval=0.01), _brief(seen[-1] if seen else None)
        return seen[-1]

    def until_watch(
        self, wid: int, predicate: Callable[[JSON], bool], timeout: float = SETTLE
    ) -> JSON:
        """Poll ``status`` until watch ``wid`` satisfies ``predicate``; return the watch."""
        status = self.until(
            lambda s: (w := watch_info(s, wid)) is not None and predicate(w), timeout
        )
        return watch_info(status, wid)

    def add(self, *args: str | Path) -> list[JSON]:
        """Run ``burrow --json watch add ARGS -i <index>``; return the watches added."""
        watches: list[JSON] = self.burrow.json("watch", "add", *args, "-i", self.url)["watches"]
        return watches

    def add_one(self, *args: str | Path) -> int:
        """Add one watch; return its id."""
        (added,) = self.add(*args)
        wid: int = added["id"]
        return wid

    def remove_all(self) -> None:
        """Remove every watch (teardown of a test on a shared daemon)."""
        self.burrow.run("watch", "remove", "--all")

    def close(self) -> None:
        """Close the test's connections."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.status_client = None


def _brief(status: JSON) -> JSON:
    """Return what of a status explains a failed wait (watches, jobs, requests, errors)."""
    if status is None:
        return None
    return {k: status[k] for k in ("watches", "jobs", "requests", "errors", "foreground")}
