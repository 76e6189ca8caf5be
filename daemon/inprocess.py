"""Serve one request inside the calling process (``burrow --no-daemon``).

The request goes through the same decode -> dispatch -> encode path as on the socket, so the
client sees exactly the bytes a daemon would send; only the transport differs. The cache is
shared with any running daemon through the same file locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from burrowd.daemon.config import Config
from burrowd.daemon.handlers import Handlers
from burrowd.daemon.rpc import Connection, RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.protocol import jsonrpc

__all__ = ["serve_one"]


class _InProcessConnection(Connection):
    def __init__(self, server: RpcServer, deliver: Callable[[bytes], None]) -> None:
        super().__init__(server, "in-process")
        self._deliver = deliver

    def frame(self, body: bytes) -> bytes:
        return body

    def write(self, data: bytes) -> None:
        self._deliver(data)


async def _serve(request: bytes, on_message: Callable[[bytes], None]) -> bytes:
    config = Config.from_env()
    rpc = RpcServer({})
    services = Services(
        config=config, rpc=rpc, socket_path=config.socket_path, replay_at_start=False
    )
    rpc.handlers = Handlers(services).table()
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def deliver(data: bytes) -> None:
        env = jsonrpc.decode_single(data)
        if env.is_request:
            on_message(data)
        elif not done.done():
            done.set_result(data)

    async with open_services(services):
        conn = _InProcessConnection(rpc, deliver)
        rpc.connections.add(conn)
        try:
            reply = rpc.receive(conn, request)
            if reply is not None:
                return jsonrpc.encode(reply)
            return await done
        finally:
            conn.cancel_all()
            # A cancelled request (Ctrl-C) may still be finishing a change to an
            # environment: the services must outlive it.
            await asyncio.gather(*conn.tasks.values(), return_exceptions=True)
            rpc.connections.discard(conn)


def serve_one(request: bytes, on_message: Callable[[bytes], None]) -> bytes:
    """Serve the encoded ``request``; return the encoded response.

    ``on_message`` receives each notification (``$/progress``) while the request runs.
    """
    try:
        return asyncio.run(_serve(request, on_message))
    except msgspec.DecodeError as exc:  # pragma: no cover - the client always sends valid JSON
        raise ValueError(f"bad in-process message: {exc}") from exc
