"""List jobs, newest first: id, state, started, duration, experiments, N, label, who, results.

On a terminal the newest 20 are shown and a line on stderr says how many there are
("20 of 312 jobs shown; --limit N or --all"); piped (and with --json) every job is listed,
as pueue and slurm do, so scripts never get a silently cut list. --limit/--all override both.
Filters (applied by benchd, so --limit counts matching jobs): --status, --user (requester
name), --label, --experiment (jobs that ran it, all-experiment jobs included), --since and
--until (2d, 3h, 30m, 1w back from now, a date 2026-12-01 or an ISO time; dates and times
without an offset are UTC; --until DATE includes that whole day). RESULTS is the published
run as results/<id>, or `<id> (staged)` for the unpublished run a failed or cancelled job
left (`benchctl run --resume <id>` finishes it). States are coloured on a terminal (green
completed, red failed, orange cancelled, inverse magenta "unknown?" when the outcome could
not be known); NO_COLOR or a pipe turns colour off. On a terminal the table fits its width
(experiment lists shortened: `all`, `gmst_era +3`), STARTED is relative ("5 min ago") and a
long list goes through $PAGER; piped, nothing is cut and times are ISO 8601 UTC
(2026-11-28T04:15:18Z). --json prints the API's JobList.
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


_AGO_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TERMINAL_LIMIT = 20


def _when(end_of_day: bool) -> Any:
    """--since/--until: `2d` (ago), a date, or an ISO time -> ISO-8601 UTC for benchd."""
    def parse(value: str) -> str:
        from datetime import datetime, timedelta, timezone
        text = value.strip()
        if len(text) > 1 and text[-1] in _AGO_UNITS and text[:-1].isdigit():
            when = datetime.now(timezone.utc) - timedelta(
                seconds=int(text[:-1]) * _AGO_UNITS[text[-1]])
        else:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected 2d, 3h, 30m, 1w, a date 2026-12-01 or an ISO time "
                    f"2026-12-01T08:00, got {value!r}") from None
            if end_of_day and len(text) == 10:   # a date: the whole day
                when += timedelta(days=1, microseconds=-1000)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    size = p.add_mutually_exclusive_group()
    size.add_argument("--limit", type=_positive, metavar="N",
                      help=f"show at most N jobs (default on a terminal: {TERMINAL_LIMIT})")
    size.add_argument("--all", action="store_true",
                      help="show every job (the default when piped or with --json)")
    p.add_argument("--status", type=_statuses, action="append", metavar="S[,S]",
                   help=f"only jobs in these states ({', '.join(STATES)}); repeatable")
    p.add_argument("--user", metavar="NAME", help="only jobs requested by this user")
    p.add_argument("--label", metavar="L", help="only jobs labelled L (run --label)")
    p.add_argument("--experiment", metavar="NAME",
                   help="only jobs that ran this experiment")
    p.add_argument("--since", type=_when(False), metavar="WHEN",
                   help="only jobs created since WHEN: 2d, 3h, 30m, 1w, a date or ISO time")
    p.add_argument("--until", type=_when(True), metavar="WHEN",
                   help="only jobs created until WHEN (a date includes that day)")
    p.add_argument("--json", action="store_true", help="print JobList as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    statuses = sorted({s for group in args.status or [] for s in group})
    on_terminal = render.is_tty(sys.stdout) and not args.json
    limit = args.limit or (TERMINAL_LIMIT if on_terminal and not args.all else None)
    path = "/api/benchmark/jobs" + query(
        limit=limit, status=",".join(statuses) if statuses else None, user=args.user,
        label=args.label, experiment=args.experiment, since=args.since, until=args.until)
    if args.json:
        from benchctl import jsonout
        from benchd.schema import JobList
        jsonout.emit(ctx.client.call_raw("GET", path), JobList)
        return OK
    answer = ctx.client.call("GET", path)
    jobs = answer["jobs"]
    if not jobs:
        shown = [f"state {','.join(statuses)}"] if statuses else []
        shown += [f"{name} {value}" for name, value in (
            ("user", args.user), ("label", args.label), ("experiment", args.experiment),
            ("since", args.since), ("until", args.until)) if value]
        print("no jobs" + (f" with {', '.join(shown)}" if shown else ""))
        return OK
    render.page(render.job_rows(jobs, render.Out.of(sys.stdout)), ctx.pager)
    total = answer.get("total")
    if on_terminal and total is not None and total > len(jobs):
        sys.stderr.write(f"{len(jobs)} of {total} jobs shown; --limit N or --all\n")
    return OK
