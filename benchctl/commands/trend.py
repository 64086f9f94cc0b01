"""Show one experiment's ns/op and p99 error over every stored run and library version.

Per library (or only --library L), one line per published run that has the experiment,
oldest first: status, library version, n, median ns/op with its 95 % CI where the run
recorded one, p99 error; then, when the version changed, a line per version. --json prints
the API's TrendReport; --html a self-contained report with the time series plotted (needs
matplotlib). Exits 4 when no published run has the experiment.
"""
from __future__ import annotations

import argparse
from typing import Any

from benchctl.client import query
from benchctl.exitcodes import OK, UNKNOWN_JOB

TREND_TIMEOUT_S = 120.0   # reads one experiment of every stored run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", metavar="EXPERIMENT", help="an experiment name (gmst_era, ...)")
    p.add_argument("--library", metavar="L", help="only this library")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the API's TrendReport")
    out.add_argument("--html", action="store_true",
                     help="print a self-contained HTML report (plots; needs matplotlib)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    from benchctl import reportout
    from pipeline.schema import TrendReport
    raw = ctx.client.call_raw("GET", "/api/results/trend" + query(
        experiment=args.experiment, library=args.library), timeout=TREND_TIMEOUT_S)
    rep = reportout.decode(raw, TrendReport)
    reportout.emit(rep, args.json, _html if args.html else None, _markdown)
    return OK if rep.runs_read else UNKNOWN_JOB


def _html() -> Any:
    from pipeline.report.trend_report import render_trend
    return render_trend


def _markdown() -> Any:
    from pipeline.trend import render_markdown
    return render_markdown
