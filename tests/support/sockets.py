"""A raw TCP server for tests whose peer must misbehave on purpose (stall, tunnel, cut a
body short), which an aiohttp server cannot: each connection is served by a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Self

#: Seconds between looks at the stop flag while a socket has nothing to read.
POLL = 0.02


class SocketServer:
    """Listens on 127.0.0.1 (:attr:`port`) while in a ``with`` block; each connection it
    accepts goes to :meth:`serve` in a thread of its own (counted in :attr:`connections`).
    """

    def __init__(self) -> None:
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(POLL)
        self.port: int = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        """Whether the ``with`` block has ended (serving threads should return)."""
        return self._stop.is_set()

    def serve(self, conn: socket.socket) -> None:
        """Serve one accepted connection (in its own thread)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    def spawn(self, target: Callable[..., None], *args: object) -> None:
        """Run ``target(*args)`` in a thread that the ``with`` block's end waits for."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self.spawn(self.serve, conn)
