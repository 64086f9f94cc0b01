"""Show benchd's health and the running job's progress, or one job's details.

Without JOB: daemon version, pid, uptime, root, the socket benchctl used and how it chose it
(--socket, $BENCHD_SOCKET, found in the current directory or a parent, the system service's),
and the active job (with its progress, "3/9 experiments · gmst_era"). With JOB (an id or a
unique prefix): that job's record. Times are local with their zone on a terminal (TZ
honoured), ISO 8601 UTC when piped. --json prints the API's Health or JobRecord unchanged
(Health's `socket` is where benchd says it listens).
"""
from __future__ import annotations

import argparse
import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref, render
from benchctl.client import job_path
from benchctl.exitcodes import OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", nargs="?", metavar="JOB", help="job id or unique prefix")
    p.add_argument("--json", action="store_true", help="print Health (or JobRecord) as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    out = render.Out.of(sys.stdout)
    if args.job:
        job = jobref.get_job(client, args.job)
        if args.json:
            from benchctl import jsonout
            from benchd.schema import JobRecord
            jsonout.emit(client.call_raw("GET", job_path(job["job_id"])), JobRecord)
        else:
            print(render.job_detail(job, out))
        return OK
    if args.json:
        from benchctl import jsonout
        from benchd.schema import Health
        jsonout.emit(client.call_raw("GET", "/api/health"), Health)
        return OK
    health = client.call("GET", "/api/health")
    lines = [f"benchd {health.get('version')} {health.get('status')}, pid {health.get('pid')}, "
             f"up {render.duration(health.get('uptime_s'))}",
             f"root:   {health.get('root')}",
             f"socket: {_socket_line(ctx, health.get('socket'))}"]   # paths are never cut
    if health.get("executor") not in (None, "local"):   # e.g. Slurm, with slurmctld's state
        lines.append(f"executor: {health['executor']}")
    job = health.get("active_job")
    if job:
        lines.append("")
        lines.append(render.job_detail(job, out))
    else:
        lines.append("no job running")
    print("\n".join(lines))
    return OK


def _socket_line(ctx: Any, reported: str | None) -> str:
    """The socket benchctl connected to and how it was chosen: what a user must be able to
    check (the daemon's own word for its socket is printed too when it differs)."""
    used = os.path.abspath(ctx.socket_path)
    line = f"{used} ({ctx.socket_how})"
    if reported and reported != used:
        line += f"; benchd says it listens on {reported}"
    return line
