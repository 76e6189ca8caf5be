"""Profile one warm ``resolve`` inside a process (the daemon's hot path, without the socket).

Usage: python -m bench.profile_resolve SET.in [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time

from burrowd.daemon.config import Config
from burrowd.daemon.resolver.service import resolve
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.protocol.messages import ClientEnv, ResolveParams


async def _main(path: str, runs: int, profile: bool) -> None:
    config = Config.from_env()
    services = Services(config=config, rpc=RpcServer({}), socket_path=config.socket_path)
    params = ResolveParams(
        env=ClientEnv(cwd=os.getcwd(), path=os.environ.get("PATH", "")),
        requirement_files=[path],
    )
    async with open_services(services):
        for i in range(runs):
            prof = cProfile.Profile() if profile and i == runs - 1 else None
            start = time.perf_counter()
            if prof:
                prof.enable()
            result = await resolve(services, params, lambda *_: None)
            if prof:
                prof.disable()
            print(
                f"run {i}: {1000 * (time.perf_counter() - start):.1f} ms, "
                f"{len(result.packages)} packages, pages {result.pages}"
            )
            if prof:
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(_main(args.path, args.runs, args.profile))


if __name__ == "__main__":
    main()
