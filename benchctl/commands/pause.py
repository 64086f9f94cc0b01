"""Hold a queued job: it keeps its place in the queue but does not start until resumed.

Like Slurm's `scontrol hold`. Only the job's owner, root or benchd's admin group may pause
it. Pausing a running job is not supported yet (exit 8; cancel it instead, its staged run
stays resumable with `benchctl run --resume RUN`). `benchctl resume JOB` releases it.
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


def run(args: argparse.Namespace, ctx: Any) -> int:
    rec = jobref.act(ctx.client, args.job, "pause")
    print(f"job {rec['job_id']} {rec['status']}, position {rec.get('queue_position')} in the "
          f"queue (held)")
    return OK
