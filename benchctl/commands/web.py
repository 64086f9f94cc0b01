"""Open the dashboard: forward a loopback port to benchd's socket as you; print its URL.

Every connection to the port is forwarded to benchd's Unix socket by this process, so benchd
sees you (SO_PEERCRED) exactly as for any other benchctl command. Any local user could
reach a loopback port, so the URL carries a random token (as Jupyter does): opening it sets
a cookie for this port, and a connection without the token or the cookie gets a 403. Runs
until Ctrl-C. From another machine, forward the socket with ssh instead:
`ssh -L 8080:/run/benchd/benchd.sock server`, then open http://localhost:8080.
"""
from __future__ import annotations

import argparse
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl.exitcodes import OK, USAGE, CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, metavar="P",
                   help="loopback TCP port to listen on (default: any free port)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    import asyncio

    from benchctl.webforward import Forwarder
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port: must be between 0 and 65535, got {args.port}", USAGE)
    ctx.client.call("GET", "/api/health")   # unreachable: exit 69 naming the socket, now
    fwd = Forwarder(ctx.socket_path, args.port)

    async def main() -> None:
        try:
            await fwd.start()
        except OSError as e:
            raise CliError(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port}: "
                           f"{e.strerror}", USAGE) from None
        print(f"benchd dashboard for {ctx.socket_path}:\n  {fwd.url}\n"
              f"(only this URL's token opens it; Ctrl-C stops forwarding)", flush=True)
        await fwd.serve_forever()

    asyncio.run(main())
    return OK
