"""One thin async handler per RPC method, composing the services of the daemon."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from burrowd.protocol import __version__
from burrowd.protocol import messages as m
from burrowd.protocol.build import build_id
from burrowd.protocol.jsonrpc import PROTOCOL_VERSION

if TYPE_CHECKING:
    from burrowd.daemon.rpc import Handler, RequestContext
    from burrowd.daemon.services import Services

__all__ = ["Handlers"]


class Handlers:
    """The methods of the daemon, bound to its services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def table(self) -> dict[str, Handler]:
        """Return method name -> handler for every method served."""
        return {
            "initialize": self.initialize,
            "status": self.status,
            "shutdown": self.shutdown,
        }

    async def initialize(
        self, params: m.InitializeParams, ctx: RequestContext
    ) -> m.InitializeResult:
        """Exchange versions and build ids with a client."""
        return m.InitializeResult(
            protocol_version=PROTOCOL_VERSION,
            server_version=__version__,
            server_build=build_id(),
            pid=os.getpid(),
        )

    async def status(self, params: m.StatusParams, ctx: RequestContext) -> m.StatusResult:
        """Describe the daemon; answers at once whatever else is running."""
        s = self.services
        now = time.monotonic()
        return m.StatusResult(
            pid=os.getpid(),
            version=__version__,
            build=build_id(),
            started_at=s.started_at,
            uptime=now - s.started_monotonic,
            socket=str(s.socket_path),
            cache_dir=str(s.config.cache_dir),
            log_file=str(s.config.log_file),
            connections=len(s.rpc.connections),
            requests=[r for r in s.rpc.request_infos() if r.id != ctx.id or r.method != "status"],
            idle_timeout=s.config.idle_timeout,
            idle_for=now - s.last_activity,
        )

    async def shutdown(self, params: m.ShutdownParams, ctx: RequestContext) -> m.ShutdownResult:
        """Stop listening, give up the socket and lock, then exit once requests are done."""
        self.services.lifecycle.begin_shutdown("shutdown requested by a client")
        return m.ShutdownResult(pid=os.getpid())
