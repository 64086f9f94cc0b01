"""Show benchd's health and the running job's progress, or one job's details.

Without JOB: daemon version, pid, uptime, root, the socket benchctl used and how it chose it
(--socket, $BENCHD_SOCKET, found in the current directory or a parent, the system service's),
the active job (with its progress, "3/9 experiments · gmst_era"), then every other job holding
a slot and the waiting ones (queued, paused, preempted: position, state, priority, user,
label; `benchctl queue` adds dependencies and estimated starts). With JOB (an id or a
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
    lines += _others(client, job["job_id"] if job else None)
    print("\n".join(lines))
    return OK


def _others(client: Any, shown: str | None) -> list[str]:
    """The other active jobs and the waiting ones, one line each, in queue order."""
    from benchctl.client import query
    from benchd.states import ACTIVE, WAITING
    listed = client.call("GET", "/api/benchmark/jobs"
                         + query(status=",".join(sorted(ACTIVE | WAITING))))["jobs"]
    active = [j for j in reversed(listed) if j["status"] in ACTIVE and j["job_id"] != shown]
    waiting = sorted((j for j in listed if j["status"] in WAITING),
                     key=lambda j: j.get("queue_position") or 0)
    if not active and not waiting:
        return []
    from benchctl.commands.queue import aligned, queue_rows
    return ["", f"{len(active)} more active, {len(waiting)} waiting:"] + [
        "  " + line for line in aligned(queue_rows(active, waiting, full=False))]


def _socket_line(ctx: Any, reported: str | None) -> str:
    """The socket benchctl connected to and how it was chosen: what a user must be able to
    check (the daemon's own word for its socket is printed too when it differs)."""
    used = os.path.abspath(ctx.socket_path)
    line = f"{used} ({ctx.socket_how})"
    if reported and reported != used:
        line += f"; benchd says it listens on {reported}"
    return line
