"""Show the running and queued jobs with position, priority, user, label, dependencies.

Each waiting job also gets an estimated start.
The estimate assumes each job ahead takes as long as the median of the last completed jobs
with the same experiments and n (any completed jobs when none is alike), spread over the
slots; "?" when nothing has completed yet. --json prints the records (JobRecord with
queue_position) as a JSON list, running ones first.
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the records as a JSON list")


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    from benchd.states import ACTIVE, WAITING  # running, pausing, preempting too
    active = client.call("GET", "/api/benchmark/jobs"
                         + query(status=",".join(sorted(ACTIVE))))["jobs"]
    waiting = client.call("GET", "/api/benchmark/jobs"
                          + query(status=",".join(sorted(WAITING))))["jobs"]
    waiting.sort(key=lambda j: j.get("queue_position") or 0)
    if args.json:
        import json
        print(json.dumps(list(reversed(active)) + waiting))
        return OK
    colour = render.use_colour(sys.stdout)
    rows = queue_rows(list(reversed(active)), waiting, full=True)
    for n, (r, line) in enumerate(zip(rows, aligned(rows))):
        if n and colour:
            line = line.replace(r[2], render.paint(r[2], render.STATE_STYLE.get(r[2]), True), 1)
        print(line)
    if len(rows) == 1:
        print("no job running or queued")
    return OK


def queue_rows(active: list[dict[str, Any]], waiting: list[dict[str, Any]],
               full: bool) -> list[tuple[str, ...]]:
    """Header and a row per job: active ones (position "-"), then waiting ones in queue
    order; `full` adds their dependencies and estimated start (`queue`; `status` is shorter)."""
    head = ("POS", "JOB", "STATE", "PRIO", "USER", "LABEL")
    rows = [head + (("AFTER", "EST. START") if full else ())]
    for waits, j in [(False, j) for j in active] + [(True, j) for j in waiting]:
        cfg = j.get("config") or {}
        row = (str(j.get("queue_position") or "?") if waits else "-", j["job_id"],
               j["status"], str(j.get("priority", 0)), j.get("requester_name", "?"),
               cfg.get("label") or "")
        if full and waits:
            after = ",".join((cfg.get("after") or []) + [f"{d}(any)" for d in
                                                          cfg.get("after_any") or []])
            est = j.get("estimated_start_s")
            row += (after, "?" if est is None else f"in {render.duration(est)}")
        elif full:
            row += ("", "running")
        rows.append(row)
    return rows


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """The rows as lines, each column padded to its widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
