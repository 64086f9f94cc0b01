"""Show notification deliveries, send a test event, or retry a dead-lettered one.

  benchctl notify [--failed] [--job JOB]   deliveries of your jobs (root/admin: all), newest
                                           first: event, job, target, state, attempts, error
  benchctl notify test TARGET              send one test event now and show the receiver's
                                           answer (exit 0 if it accepted it, 1 if not)
  benchctl notify retry DELIVERY           queue a dead-lettered delivery again

benchd retries a failed delivery with exponential backoff for 24 h, then dead-letters it
(state `dead`). A webhook TARGET is signed with its secret from ~/.config/benchctl/config.toml
or $BENCHCTL_WEBHOOK_SECRET. --json prints the API's DeliveryList / DeliveryInfo /
NotifyTestResult.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchctl import render
from benchctl.exitcodes import JOB_FAILED, OK, USAGE, CliError

ACTIONS = ("list", "test", "retry")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                   help="list (default), test TARGET, retry DELIVERY")
    p.add_argument("arg", nargs="?", metavar="TARGET|DELIVERY",
                   help="the target to test, or the delivery id to retry")
    p.add_argument("--failed", action="store_true", help="list only dead-lettered deliveries")
    p.add_argument("--job", metavar="JOB", help="list only this job's deliveries (id or prefix)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    if args.action == "list":
        if args.arg is not None:
            raise CliError(f"unexpected argument {args.arg!r} (did you mean `notify test` or "
                           f"`notify retry`?)", USAGE)
        return _list(args, ctx)
    if args.arg is None:
        what = "TARGET" if args.action == "test" else "DELIVERY"
        raise CliError(f"notify {args.action}: {what} is missing", USAGE)
    if args.action == "test":
        return _test(args, ctx)
    raw = ctx.client.call_raw("POST", f"/api/notify/deliveries/{args.arg}/retry", {})
    if args.json:
        from benchctl import jsonout
        from benchd.schema import DeliveryInfo
        jsonout.emit(raw, DeliveryInfo)
    else:
        d = json.loads(raw)
        print(f"{d['id']}: queued again ({d['type']} of job {d['job_id']} to {d['target']})")
    return OK


def _list(args: argparse.Namespace, ctx: Any) -> int:
    from benchctl.client import query
    params: dict[str, Any] = {}
    if args.failed:
        params["status"] = "dead"
    if args.job:
        from benchctl.jobref import get_job
        params["job"] = get_job(ctx.client, args.job)["job_id"]
    raw = ctx.client.call_raw("GET", "/api/notify/deliveries" + query(**params))
    if args.json:
        from benchctl import jsonout
        from benchd.schema import DeliveryList
        jsonout.emit(raw, DeliveryList)
        return OK
    items = json.loads(raw)["deliveries"]
    if not items:
        print("no dead-lettered deliveries" if args.failed else "no deliveries")
        return OK
    colour = render.use_colour(sys.stdout)
    from benchd.states import JobState
    styles = {"sent": render.STATE_STYLE[JobState.COMPLETED],
              "dead": render.STATE_STYLE[JobState.FAILED]}
    rows, cell_styles = [], []
    for d in items:
        rows.append([d["id"], d["type"], d["job_id"], d["target"], d["status"],
                     str(d["attempts"]), d.get("last_error") or "-"])
        cell_styles.append([None, None, None, None, styles.get(d["status"]), None, None])
    print(render.table(["DELIVERY", "EVENT", "JOB", "TARGET", "STATE", "TRIES", "LAST ERROR"],
                       rows, cell_styles, colour))
    return OK


def _test(args: argparse.Namespace, ctx: Any) -> int:
    from benchctl import userconfig
    target = userconfig.target_for(args.arg, None, userconfig.load(), flag="notify test")
    raw = ctx.client.call_raw("POST", "/api/notify/test", target, timeout=60.0)
    if args.json:
        from benchctl import jsonout
        from benchd.schema import NotifyTestResult
        jsonout.emit(raw, NotifyTestResult)
    result = json.loads(raw)
    if not args.json:
        answer = f" {result['status']}" if result.get("status") is not None else ""
        said = f": {result['answer']}" if result.get("answer") else ""
        if result["ok"]:
            print(f"{result['target']}: delivered, answered{answer}{said}")
        else:
            print(f"{result['target']}: not delivered ({result.get('error')}){said}")
    return OK if result["ok"] else JOB_FAILED
