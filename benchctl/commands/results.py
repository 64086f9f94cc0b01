"""List result runs, or show one run's tables (RUN: run id or prefix, latest, job id, date).

RUN is a run id, any unique prefix of one, `latest`, the `results/<id>` form that `history`
prints (always that exact run), or a job id (or unique job id prefix): that job's run. A date
(`2026-12-03`) lists that day's runs; a legacy run named by a date is listed with them and
shown with `results/2026-12-03`. Run ids are tried before job ids.
--html prints the run's self-contained report.html (plots of error distributions, speed,
accuracy versus speed; exit 11 when it has none and matplotlib is missing where benchd runs).

The list shows each run's id, status, creation time, N, seed, experiments and library count
(newest first), and REGR: the automatic regression check made when it was published
against the newest earlier comparable run (REGRESSION, ok, not_checked when the check
failed, or - when there was none to compare with). One run prints its regression verdict,
then, per experiment, its summary table (summary.md: accuracy against the reference and
speed ratios); --experiment NAME shows only that one. On a terminal tables fit its width and
long output goes through $PAGER; piped, nothing is cut. --staged lists unpublished runs instead (cancelled,
interrupted or broken; `benchctl run --resume RUN` finishes one); --discard RUN deletes one
(yours, or anyone's for root and the admin group; published runs are never deleted).
--pin RUN [--note TEXT] keeps a published run whatever the retention policy says (the note is
shown in the list), --unpin RUN undoes it, --restore RUN unpacks an archived run (the run's
owner, root and the admin group may do these). --json prints the API's {"runs": [RunSummary]},
RunDetail, {"runs": [StagedRunSummary]}, DiscardedRun, Pin or RunSummary.
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any
from urllib.parse import quote

from benchctl import render, runref
from benchctl.client import query
from benchctl.exitcodes import OK, UNKNOWN_JOB, USAGE, CliError

HTML_TIMEOUT_S = 150.0   # a run without a stored report is drawn by benchd in a child


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="run id or unique prefix, `latest`, results/<id>, a job id (its run), "
                        "or a date YYYY-MM-DD (that day's runs)")
    p.add_argument("--staged", action="store_true",
                   help="list unpublished runs that `run --resume` can finish")
    p.add_argument("--discard", action="store_true",
                   help="delete the staged run RUN (it can no longer be resumed)")
    p.add_argument("--experiment", "-e", metavar="NAME",
                   help="with RUN: show only this experiment's table")
    p.add_argument("--pin", action="store_true",
                   help="pin the published run RUN: no retention rule deletes or archives it")
    p.add_argument("--note", metavar="TEXT", help="with --pin: why it is kept (shown in the list)")
    p.add_argument("--unpin", action="store_true", help="unpin the run RUN")
    p.add_argument("--restore", action="store_true",
                   help="unpack the archived run RUN back into results/")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.add_argument("--html", action="store_true",
                   help="print RUN's report.html (self-contained, with plots)")


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if (abs(x) >= 1e5 or 0 < abs(x) < 1e-3) else f"{x:.4g}"


def _library_table(libraries: dict[str, Any], out: render.Out) -> str:
    """A compact table when a run has no summary.md (legacy layout)."""
    rows = []
    for name, r in libraries.items():
        acc, perf = r.get("accuracy") or {}, r.get("perf") or {}
        rows.append([name, r.get("status", "?"), _num(acc.get("p50")), _num(acc.get("p99")),
                     _num(acc.get("max")), acc.get("unit", "-"), _num(perf.get("median_ns")),
                     _num(r.get("speed_ratio"))])
    return render.table(["LIBRARY", "STATUS", "P50", "P99", "MAX", "UNIT", "NS/OP", "×REF"],
                        rows, None, False, out.width, keep=(1, 2, 3, 4, 5, 6, 7))


def _show_run(detail: dict[str, Any], out: render.Out, only: str | None = None) -> str:
    lines = []
    manifest = detail.get("manifest") or {}
    head = f"run {detail.get('run_id')} ({detail.get('layout')})"
    if manifest:
        cfg = manifest.get("config") or {}
        head += (f" · {manifest.get('status')} · created "
                 f"{render.short_time(manifest.get('created_at'), out.human)}"
                 f" · n = {cfg.get('n')} · seed = {cfg.get('seed')}")
    lines.append(head)
    meta = manifest.get("metadata") or {}
    if meta.get("cpuset"):   # runs since issue 12: where it was pinned and what it cost
        threads = "/".join(sorted(set((meta.get("thread_env") or {}).values()))) or "?"
        text = f"cpus {render.cpus_text(meta)} · threads {threads}"
        if meta.get("cpu_time_s") is not None:
            text += f" · cpu time {meta['cpu_time_s']:.1f}s"
        if meta.get("peak_rss_bytes") is not None:
            text += f" · peak memory {render.memory_text(meta['peak_rss_bytes'])}"
        lines.append(text)
    reg = manifest.get("regression")
    if reg:
        text = f"regression check: {reg.get('verdict')}"
        if reg.get("base_run_id"):
            text += f" against {reg['base_run_id']}"
        if reg.get("reason"):
            text += f" ({reg['reason']})"
        lines.append(text)
        for r in reg.get("rows") or []:
            ratio = r.get("ratio")
            lines.append(f"  {r.get('experiment')}/{r.get('library')}: "
                         f"{', '.join(r.get('regressions') or [])}"
                         + (f" (×{ratio:.3f} slower, p = {r.get('p_value'):.2g})"
                            if ratio is not None and r.get("p_value") is not None else ""))
    experiments = detail.get("experiments") or {}
    if only is not None:
        if only not in experiments:
            from pipeline.catalog import did_you_mean
            raise CliError(f"--experiment: run {detail.get('run_id')} has no experiment "
                           f"{only!r}{did_you_mean(only, list(experiments))}; it has: "
                           f"{', '.join(experiments) or 'none'}", UNKNOWN_JOB)
        experiments = {only: experiments[only]}
    for name, exp in experiments.items():
        lines.append("")
        if exp.get("summary_md"):
            lines.append(exp["summary_md"].rstrip("\n"))
        else:
            lines.append(f"# {name}" + (f" ({exp['status']})" if exp.get("status") else ""))
            lines.append("")
            lines.append(_library_table(exp.get("libraries") or {}, out))
    for w in detail.get("warnings") or []:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _pin_text(r: dict[str, Any]) -> str:
    if not r.get("pinned"):
        return "-"
    return f"yes: {r['pin_note']}" if r.get("pin_note") else "yes"


def _regr_text(r: dict[str, Any]) -> str:
    """The automatic check's verdict, loud when it found a regression."""
    from pipeline.schema import VERDICT_NOT_CHECKED, VERDICT_OK, VERDICT_REGRESSION
    verdict = r.get("regression")
    if verdict == VERDICT_REGRESSION:
        return "REGRESSION"
    return verdict if verdict in (VERDICT_OK, VERDICT_NOT_CHECKED) else "-"


def _html(client: Any, ref: str) -> int:
    """The run's report.html (benchd serves the stored file or draws one)."""
    import json
    run_id = json.loads(runref.fetch(client, ref))["run_id"]   # prefixes, job ids, latest
    body = client.call_raw("GET", f"/api/results/{quote(run_id, safe='')}/report.html",
                           timeout=HTML_TIMEOUT_S)
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return OK


def _list_staged(client: Any, as_json: bool, out: render.Out, pager: bool) -> int:
    if as_json:
        from benchctl import jsonout
        from pipeline.schema import StagedRunList
        jsonout.emit(client.call_raw("GET", "/api/results/staged"), StagedRunList)
        return OK
    runs = client.call("GET", "/api/results/staged")["runs"]
    if not runs:
        print("no staged runs")
        return OK
    rows = [[r["run_id"], r["status"] + (" (in use)" if r.get("in_use") else ""),
             render.short_time(r.get("created_at"), out.human), str(r.get("n")),
             str(r.get("seed")),
             f"{len(r.get('done') or [])}/{len(r.get('experiments') or [])}",
             (r.get("reason") or "-").splitlines()[0]] for r in runs]
    render.page(render.table(["RUN", "STATUS", "CREATED", "N", "SEED", "DONE", "REASON"],
                             rows, None, False, out.width, keep=(0, 1, 2, 3, 4, 5)), pager)
    return OK


def _discard(client: Any, run_id: str | None, as_json: bool) -> int:
    if not run_id or run_id == "latest":
        raise CliError("--discard takes the id of a staged run (`benchctl results --staged` "
                       "lists them)", USAGE)
    path = f"/api/results/staged/{quote(run_id, safe='')}"
    if as_json:
        from benchctl import jsonout
        from pipeline.schema import DiscardedRun
        jsonout.emit(client.call_raw("DELETE", path), DiscardedRun)
        return OK
    run = client.call("DELETE", path).get("run")
    done = f" ({len(run.get('done') or [])}/{len(run.get('experiments') or [])} experiments " \
        "were done)" if run else ""
    print(f"discarded staged run {run_id}{done}")
    return OK


def _list_runs(client: Any, as_json: bool, day: str | None, out: render.Out,
               pager: bool) -> int:
    """Every published run, or (`day`) those of one date, newest first."""
    path = "/api/results" + query(prefix=day)
    if as_json:
        from benchctl import jsonout
        from pipeline.schema import RunList
        jsonout.emit(client.call_raw("GET", path), RunList)
        return OK
    runs = client.call("GET", path)["runs"]
    if not runs:
        if day:
            raise CliError(f"no run on {day} (`benchctl results` lists them all)", UNKNOWN_JOB)
        print("no result runs yet")
        return OK
    rows = [[r["run_id"], r.get("status", "?") + (" (archived)" if r.get("archived") else ""),
             render.short_time(r.get("created_at"), out.human),
             str(r.get("n") if r.get("n") is not None else "-"),
             str(r.get("seed") if r.get("seed") is not None else "-"),
             render.experiments_cell({"experiments": r.get("experiments")},
                                     out.width is not None) if r.get("experiments") else "-",
             str(r.get("libraries", 0)), r.get("failed_experiments") or "-", _regr_text(r),
             _pin_text(r)]
            for r in runs]
    headers = ["RUN", "STATUS", "CREATED", "N", "SEED", "EXPERIMENTS", "LIBS", "FAILED", "REGR",
               "PINNED"]
    if out.width is not None and not any(r.get("pinned") for r in runs):
        render.drop_column(headers, rows, None, "PINNED")
    if out.width is not None and all(_regr_text(r) == "-" for r in runs):
        render.drop_column(headers, rows, None, "REGR")
    render.page(render.table(headers, rows, None, False, out.width, keep=(0, 1)), pager)
    return OK


def _keep(client: Any, args: argparse.Namespace) -> int:
    """--pin, --unpin, --restore: one of them, on one published run."""
    modes = [m for m in ("pin", "unpin", "restore", "discard", "staged") if getattr(args, m)]
    if len(modes) > 1:
        raise CliError(f"--{modes[0]} and --{modes[1]} cannot be combined", USAGE)
    mode = modes[0]
    if not args.run or args.run == "latest" or runref.day(args.run):
        raise CliError(f"--{mode} takes one run: an id, a prefix of one, or a job id "
                       f"(`benchctl results` lists them)", USAGE)
    import json
    run_id = json.loads(runref.fetch(client, args.run))["run_id"]  # prefixes, job ids, ...
    path = f"/api/results/{quote(run_id, safe='')}/" + ("restore" if mode == "restore"
                                                         else "pin")
    method = "DELETE" if mode == "unpin" else "POST"
    body = {"note": args.note} if mode == "pin" and args.note is not None else None
    if args.json:
        from benchctl import jsonout
        from pipeline.schema import Pin, RunSummary
        jsonout.emit(client.call_raw(method, path, body), Pin if mode == "pin" else RunSummary)
        return OK
    client.call(method, path, body)
    done = {"pin": "pinned", "unpin": "unpinned", "restore": "restored"}[mode]
    print(f"{done} run {run_id}" + (f" ({args.note})" if mode == "pin" and args.note else ""))
    return OK


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    out = render.Out.of(sys.stdout)
    if args.experiment is not None and (not args.run or args.staged or args.discard
                                        or runref.day(args.run)):
        raise CliError("--experiment picks one experiment of a run: give RUN too "
                       "(`benchctl results latest --experiment gmst_era`)", USAGE)
    if args.html and (not args.run or runref.day(args.run) or args.staged or args.discard
                      or args.pin or args.unpin or args.restore):
        raise CliError("--html takes one published run (an id, a prefix, latest or a job id)",
                       USAGE)
    if args.note is not None and not args.pin:
        raise CliError("--note goes with --pin", USAGE)
    if args.pin or args.unpin or args.restore:
        return _keep(client, args)
    if args.discard:
        if args.staged:
            raise CliError("--discard and --staged cannot be combined", USAGE)
        return _discard(client, args.run, args.json)
    if args.staged:
        if args.run:
            raise CliError("--staged lists staged runs; it takes no RUN", USAGE)
        return _list_staged(client, args.json, out, ctx.pager)
    if not args.run or runref.day(args.run):
        return _list_runs(client, args.json, args.run, out, ctx.pager)
    run_id = args.run
    if run_id == "latest":
        runs = client.call("GET", "/api/results")["runs"]
        if not runs:
            raise CliError("no result runs yet", UNKNOWN_JOB)
        run_id = max(runs, key=lambda r: (r.get("created_at") or "", r["run_id"]))["run_id"]
    if args.html:
        if args.json:
            raise CliError("--html and --json cannot be combined", USAGE)
        return _html(client, run_id)
    raw = runref.fetch(client, run_id)
    if args.json:
        from benchctl import jsonout
        from pipeline.schema import RunDetail
        jsonout.emit(raw, RunDetail)
        return OK
    import json
    render.page(_show_run(json.loads(raw), out, args.experiment), ctx.pager)
    return OK
