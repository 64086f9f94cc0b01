"""Pause a job: hold a queued one, or stop a running one and keep it to resume later.

A queued (or preempted) job is held like Slurm's `scontrol hold`: it keeps its place in the
queue but does not start until resumed. A running job is asked to stop at its next experiment
boundary (nothing measured is redone; it shows `pausing` until then) or, with --now, at once
by SIGTERM (the experiment it was in is redone); either way its slot is freed and it ends
`paused` with its staged run kept. `benchctl resume JOB` puts it back in the queue, and it
then resumes that same run (same run id and seed). Only the job's owner, root or benchd's
admin group may pause it.
"""
from __future__ import annotations

import argparse
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref
from benchctl.exitcodes import OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", help="job id or unique prefix")
    p.add_argument("--now", action="store_true",
                   help="a running job: SIGTERM now instead of at its next experiment boundary "
                        "(its current experiment is redone when it resumes)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    from benchd.states import StopMode
    rec = jobref.act(ctx.client, args.job, "pause", {"now": True} if args.now else None)
    pos = rec.get("queue_position")
    if pos is not None:
        print(f"job {rec['job_id']} {rec['status']}, position {pos} in the queue (held)")
    else:
        when = "now (SIGTERM)" if rec.get("stop_mode") == StopMode.NOW else \
            "at its next experiment boundary"
        print(f"job {rec['job_id']} {rec['status']}: stops {when}, its staged run kept; "
              f"`benchctl resume {rec['job_id']}` re-queues it")
    return OK
