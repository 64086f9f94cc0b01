"""Apply benchd's retention policy now, or show what it would delete (--dry-run).

Prints each run that goes (or would go) with the rule that takes it (keep-days,
max-results-size, min-free; archive-after compresses instead), its size and age, the job
records deleted with their runs (keep-job-days), what a rule would have taken but is kept
(pinned, the newest run, in use, keep-runs), and the space freed. A dry run is open to
anyone; a real prune needs root or benchd's admin group. --history shows past deletions and
archivals (logs/retention.jsonl), newest first. --json prints the API's PruneReport or
RetentionHistory. The policy itself is benchd's (--keep-days, --keep-runs,
--max-results-size, --keep-job-days, --archive-after): nothing is deleted unless it is set.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchctl import render
from benchctl.exitcodes import OK, USAGE, CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.add_argument("--history", action="store_true", help="past deletions, newest first")
    p.add_argument("--limit", type=int, default=50, metavar="N",
                   help="with --history: at most N entries (default 50)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    if args.history:
        if args.dry_run:
            raise CliError("--history and --dry-run cannot be combined", USAGE)
        raw = client.call_raw("GET", f"/api/retention/history?limit={args.limit}")
        if args.json:
            from benchctl import jsonout
            from benchd.schema import RetentionHistory
            jsonout.emit(raw, RetentionHistory)
            return OK
        entries = json.loads(raw)["entries"]
        if not entries:
            print("nothing deleted or archived yet")
            return OK
        rows = [[render.short_time(e["at"]), e["action"], e["what"], e["rule"],
                 _mb(e.get("size", 0)), f"{e.get('age_days', 0):.1f}", e["trigger"],
                 e.get("by") or "-"] for e in entries]
        print(render.table(["WHEN", "ACTION", "WHAT", "RULE", "SIZE", "AGE (DAYS)", "TRIGGER",
                            "BY"], rows, None, False))
        return OK
    path = "/api/retention/prune" + ("?dry_run=1" if args.dry_run else "")
    raw = client.call_raw("POST", path, timeout=600.0)
    if args.json:
        from benchctl import jsonout
        from benchd.schema import PruneReport
        jsonout.emit(raw, PruneReport)
        return OK
    report = json.loads(raw)
    out = [f"policy: {report['policy']}"]
    acts = report["actions"]
    verb = "would" if report["dry_run"] else "did"
    if acts:
        rows = [[a["run_id"] + (" (staged)" if a.get("staged") else ""), a["action"], a["rule"],
                 _mb(a["size"]), f"{a['age_days']:.1f}",
                 ("yes" if a["done"] else "no") if not report["dry_run"] else "-"]
                for a in acts]
        out.append(render.table(["RUN", "ACTION", "RULE", "SIZE", "AGE (DAYS)", "DONE"], rows,
                                None, False))
    else:
        out.append("no run is due for deletion or archival")
    if report["jobs"]:
        out.append(f"job records and logs {'to delete' if report['dry_run'] else 'deleted'}: "
                   f"{len(report['jobs'])} ({', '.join(report['jobs'][:5])}"
                   f"{', …' if len(report['jobs']) > 5 else ''})")
    for k in report["kept"]:
        out.append(f"kept {k['run_id']}: {k['why']}")
    freed = sum(a["size"] for a in acts if a["action"] == "delete")
    out.append(f"{verb} free {_mb(freed if report['dry_run'] else report['freed_bytes'])}"
               + (f"; results/ has {_mb(report['results_free_bytes'])} free"
                  if report.get("results_free_bytes") is not None else ""))
    sys.stdout.write("\n".join(out) + "\n")
    return OK
