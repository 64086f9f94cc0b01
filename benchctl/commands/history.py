"""List jobs, newest first: id, state, started, duration, experiments, N, who, results.

States are coloured on a terminal (green completed, red failed, orange cancelled, inverse
magenta "unknown?" when the outcome could not be known); NO_COLOR or a pipe turns colour off.
On a terminal the table fits its width (experiment lists shortened: `all`, `gmst_era +3`),
STARTED is relative ("5 min ago") and a long list goes through $PAGER; piped, nothing is
cut and times are ISO 8601 UTC (2026-11-28T04:15:18Z). --json prints the API's JobList.
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import render
from benchctl.client import query
from benchctl.exitcodes import OK
from benchd.states import JobState

STATES = tuple(s.value for s in JobState)


def _statuses(value: str) -> list[str]:
    items = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in items if s not in STATES]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown state {', '.join(map(repr, bad or [value]))}; known: {', '.join(STATES)}")
    return items


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value!r}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=_positive, metavar="N", help="show at most N jobs")
    p.add_argument("--status", type=_statuses, action="append", metavar="S[,S]",
                   help=f"only jobs in these states ({', '.join(STATES)}); repeatable")
    p.add_argument("--json", action="store_true", help="print JobList as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    statuses = sorted({s for group in args.status or [] for s in group})
    path = "/api/benchmark/jobs" + query(limit=args.limit,
                                         status=",".join(statuses) if statuses else None)
    if args.json:
        from benchctl import jsonout
        from benchd.schema import JobList
        jsonout.emit(ctx.client.call_raw("GET", path), JobList)
        return OK
    jobs = ctx.client.call("GET", path)["jobs"]
    if not jobs:
        print("no jobs" + (f" in state {', '.join(statuses)}" if statuses else ""))
        return OK
    render.page(render.job_rows(jobs, render.Out.of(sys.stdout)), ctx.pager)
    return OK
