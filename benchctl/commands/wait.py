"""Wait until jobs end; exit with their outcome (like `pueue wait` or `sbatch --wait`).

Waits for every JOB (with --any: the first to end) and exits with the outcome code of the
jobs: 0 if all completed, else the code of the first job (in the order given) that did not
(1 failed, 3 cancelled, 7 unknown). With --any: the code of the first job given that ended.
--timeout S gives up after S seconds (exit 124; the jobs keep going). Queued jobs are waited
through the queue.
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref, render, waiting
from benchctl.exitcodes import OK, USAGE, WAIT_TIMEOUT, CliError, for_state
from benchd.states import FINAL


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("jobs", nargs="+", metavar="JOB", help="job ids or unique prefixes")
    p.add_argument("--any", action="store_true", help="return when the first of them ends")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up after S seconds (exit 124); the jobs keep going")
    p.add_argument("--json", action="store_true", help="print the records as a JSON list")


def run(args: argparse.Namespace, ctx: Any) -> int:
    if args.timeout is not None and not args.timeout >= 0:
        raise CliError(f"--timeout must be >= 0 seconds, got {args.timeout}", USAGE)
    client = ctx.client
    ids = [jobref.get_job(client, ref)["job_id"] for ref in args.jobs]
    recs, satisfied = waiting.until_final(client, ids, any_=args.any, timeout=args.timeout)
    if args.json:
        import json
        print(json.dumps(recs))
    else:
        colour = render.use_colour(sys.stdout)
        for rec in recs:
            if rec.get("status") in FINAL:
                print(render.final_line(rec, colour))
            else:
                print(f"job {rec['job_id']} {rec.get('status')}")
    if not satisfied:
        raise CliError(f"--timeout {args.timeout:g} s passed before the "
                       f"{'first job' if args.any else 'jobs'} ended", WAIT_TIMEOUT)
    ended = [r for r in recs if r.get("status") in FINAL]
    if args.any:
        return for_state(ended[0]["status"])
    bad = [r for r in recs if for_state(r["status"]) != OK]
    return for_state(bad[0]["status"]) if bad else OK
