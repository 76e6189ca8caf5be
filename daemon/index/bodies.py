"""File bodies (wheels, sdists) read on an event loop of their own, in a thread.

Why not on the daemon's event loop, which reads the index pages: a cold fill of the large
benchmark set streams 250 MB, and on that loop it was about a second of one CPU (asyncio's
TLS transport, aiohttp's parser, a thread hop per chunk to hash and write it), on the
thread that also parses the pages and hands out unpacks; the fill's first second used one
CPU of two. Here the bodies are read by a second loop with a session of its own, and
hashed and written right there: ``SSL_read``, hashing and ``write`` release the GIL, so
downloads use the second CPU while the daemon's loop goes on with the pages.

Why aiohttp again, not a blocking client in a pool of threads (tried with urllib3: as
fast): the daemon's HTTP behaviour then had to be done again by hand, and a review found
twelve ways it differed (no happy eyeballs, credentials of a URL or a proxied redirect
lost, a stale keep-alive connection counted as a failure, a thread in ``connect()`` that
nothing could stop...). A second session of the same client keeps all of it, and a
cancelled request cancels its task, which closes its connection. One difference stays: a
cookie an index page sets is not sent with file downloads (each session has its own jar;
aiohttp's is not safe across loops). uv keeps no cookies at all.

:class:`~burrowd.daemon.index.http.Http` decides the credentials, the proxy, the retries
and what a status or an error means; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Bodies", "Refused", "Sink", "Stopping"]

log = logging.getLogger(__name__)

_CHUNK: Final = 256 * 1024
#: Seconds :meth:`Bodies.close` waits for the bodies' loop to cancel its reads and stop.
_CLOSE_GRACE: Final = 5.0


class Refused(Exception):
    """The server answered with a status other than 200 (the caller says what it means)."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        # ``headers`` keeps aiohttp's case-insensitive names (``retry-after``).
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason
        self.headers = headers


class Stopping(Exception):
    """The read was abandoned because the daemon's HTTP client is closing."""


@dataclass(frozen=True, slots=True)
class Sink:
    """Where a body goes: ``dest``, which exists (it is truncated, never created: a file
    removed by a cancelled caller stays removed), each chunk to ``consume`` (hashing), and
    its length to ``progress``. Both are called on the bodies' thread."""

    dest: Path
    consume: Callable[[bytes], None]
    progress: Callable[[int], None]


class Bodies:
    """A second event loop, in a thread of its own, that reads bodies into files.

    :param open_session: makes the session (called on the bodies' loop, once).
    """

    def __init__(self, open_session: Callable[[], aiohttp.ClientSession]) -> None:
        self._open_session = open_session
        self._session: aiohttp.ClientSession | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="burrowd-download", daemon=True
        )
        self._thread.start()
        self._closed = False
        #: The reads under way, as the callers' side holds them.
        self._pending: set[concurrent.futures.Future[int]] = set()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def fetch(self, target: Any, options: Mapping[str, Any], sink: Sink) -> int:
        """GET ``target`` (a URL, with ``options`` for ``ClientSession.get``) into ``sink``
        on the bodies' loop; return the body's size.

        Raises what aiohttp raised, :class:`Refused`, :class:`Stopping` (:meth:`close`),
        or an :class:`OSError` of the file.
        Cancelling the call cancels the read at once (its connection is closed).
        """
        if self._closed:
            raise Stopping
        future = asyncio.run_coroutine_threadsafe(self._fetch(target, options, sink), self._loop)
        self._pending.add(future)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and self.closed and not (task and task.cancelling()):
                raise Stopping from None  # cancelled by close(), not by our caller
            raise
        finally:
            self._pending.discard(future)

    async def close(self) -> None:
        """Cancel every read, close the session and stop the loop (waiting a little)."""
        if self._closed:
            return
        self._closed = True
        ended = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        # The loop stops once its reads are cancelled and the session is closed, however
        # late that is: stopped before, it would leave them half done.
        ended.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._loop.stop))
        # Not wait_for: a timeout must not cancel _close before it runs.
        done, _ = await asyncio.wait({asyncio.wrap_future(ended)}, timeout=_CLOSE_GRACE)
        if not done:
            # The loop is stuck (a write to a stalled disk): its callers are told now, and
            # the (daemon) thread ends whenever the loop runs again.
            log.warning("the download loop did not stop within %gs", _CLOSE_GRACE)
            for future in list(self._pending):
                future.cancel()
            return
        await asyncio.to_thread(self._thread.join, _CLOSE_GRACE)
        if not self._thread.is_alive():
            self._loop.close()

    # -- on the bodies' loop --------------------------------------------------------------------

    async def _fetch(self, target: Any, options: Mapping[str, Any], sink: Sink) -> int:
        if self._session is None:
            self._session = self._open_session()
        async with self._session.get(target, **options) as resp:
            if resp.status != 200:
                raise Refused(resp.status, resp.reason or "", resp.headers)
            fd = os.open(sink.dest, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            size = 0
            # Blocking writes are this loop's job: they release the GIL, and nothing else
            # waits on this loop but other bodies.
            with open(fd, "wb") as out:  # noqa: ASYNC230
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    sink.consume(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    sink.progress(len(chunk))
            return size

    async def _close(self) -> None:
        here = asyncio.current_task()
        reads = [t for t in asyncio.all_tasks() if t is not here]
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
