"""Cancel a job (default: the running one); report and exit with the state it ended in.

benchd sends SIGTERM to the job's process group, then SIGKILL after the grace period, and
answers with the final record once the job is gone. Like `run --wait`, cancel exits with the
job's outcome: 3 when it ended cancelled (a successful cancel), 0 if it completed on its own
first, 1 if it failed; 8 if it had already finished before the cancel, 6 if it is someone
else's job (only root and benchd's admin group may cancel those), 9 if benchd could not stop
it. In a `set -e` script: `benchctl cancel JOB || [ $? -eq 3 ]`.
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref, render
from benchctl.client import job_path
from benchctl.exitcodes import UNKNOWN_JOB, USAGE, CliError, for_state


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", nargs="?", metavar="JOB",
                   help="job id or unique prefix (default: the running job)")
    p.add_argument("--grace", type=float, metavar="SECONDS",
                   help="seconds between SIGTERM and SIGKILL (default: benchd's, 10)")
    p.add_argument("--json", action="store_true", help="print the final JobRecord as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    if args.grace is not None and not args.grace >= 0:
        raise CliError(f"--grace must be >= 0 seconds, got {args.grace}", USAGE)
    client = ctx.client
    if args.job:
        job = jobref.get_job(client, args.job)
    else:
        job = jobref.active_job(client)
        if job is None:
            raise CliError("no job is running: nothing to cancel", UNKNOWN_JOB)
    body = {} if args.grace is None else {"grace": args.grace}
    # The answer comes once the job is gone: allow the grace period plus benchd's margin.
    timeout = max(args.grace or 0.0, 30.0) + 60.0
    path = job_path(job["job_id"], "/cancel")
    if args.json:
        from benchctl import jsonout
        from benchd.schema import JobRecord
        raw = client.call_raw("POST", path, body, timeout=timeout)
        jsonout.emit(raw, JobRecord)
        import json
        final = json.loads(raw)
    else:
        final = client.call("POST", path, body, timeout=timeout)
        print(render.final_line(final, render.use_colour(sys.stdout)))
    return for_state(final.get("status"))   # cancelled 3, completed 0, failed 1 (see doc)
