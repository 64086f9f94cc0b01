"""Change a job's queue priority (-10..10); print its new place in the queue.

Higher runs first. Anyone may lower their own jobs; raising one above 0 needs root or
benchd's admin group (exit 6 otherwise), and only the job's owner, root or the admin group
may change it at all. A queued job with a higher priority than a running one and no free
slot preempts it (see README "Queue").
"""
from __future__ import annotations

import argparse
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref
from benchctl.client import job_path
from benchctl.exitcodes import OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", help="job id or unique prefix")
    p.add_argument("priority", type=int, metavar="N", help="new priority, -10..10")


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    job = jobref.get_job(client, args.job)
    rec = client.call("PATCH", job_path(job["job_id"]), {"priority": args.priority})
    pos = rec.get("queue_position")
    where = f", position {pos} in the queue" if pos is not None else ""
    print(f"job {rec['job_id']} {rec['status']}, priority {rec['priority']}{where}")
    return OK
