"""Play one hostile scenario to any client: ``python -m tests.hostile bad_frame_end``.

Listens on 127.0.0.1 (``--port``, a free one by default), prints the URL, and
plays the named scenario's server script to each client that connects, one at
a time, reporting what the client sent back (its Connection.Close reply codes)
and whether it closed the socket. ``--list`` names every scenario. Handy for
trying another client library (pika, aio-pika) against the same hostile peer.
"""

from __future__ import annotations

import argparse
import sys

from tests.hostile.scenarios import BY_NAME
from tests.hostile.server import HostileServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", help="a scenario name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument("--connections", type=int, default=1, help="clients to serve")
    args = parser.parse_args(argv)
    if args.list or not args.scenario:
        for name, scenario in BY_NAME.items():
            code = scenario.close_code or "-"
            print(f"{name:32} expects {scenario.error.__name__}, Close {code}")
        return 0
    scenario = BY_NAME.get(args.scenario)
    if scenario is None:
        print(f"unknown scenario {args.scenario!r}; --list names them", file=sys.stderr)
        return 2
    for _ in range(args.connections):
        with HostileServer(scenario.server) as server:
            print(f"{scenario.name}: waiting on {server.url()}", flush=True)
            server.done.wait()
        peer = server.peer
        if peer is None:
            print(f"no client: {server.error!r}")
            continue
        codes = [close.reply_code for close in peer.connection_closes()]
        print(
            f"client sent Connection.Close {codes or 'never'}; "
            f"closed the socket: {peer.eof_at is not None}; script error: {server.error!r}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
