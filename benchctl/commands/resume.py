"""Release a paused (held) job: it goes back to the queue in its old place.

Only the job's owner, root or benchd's admin group may resume it; exit 8 if it is not paused.
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
    rec = jobref.act(ctx.client, args.job, "resume")
    pos = rec.get("queue_position")
    print(f"job {rec['job_id']} {rec['status']}"
          + (f", position {pos} in the queue" if pos is not None else ""))
    return OK
