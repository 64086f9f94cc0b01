"""Compare two result runs: speed ratios with CIs, significance, error and version changes.

BASE and HEAD are run ids, unique prefixes of one, `latest` or `results/<id>`. For each
experiment x library in both runs: the ratio head/base of median ns/op with its 95 %
bootstrap CI, a two-sided Mann-Whitney U test over the stored round samples, p99 and max
error before and after, and version changes; then what differs in configuration and
environment (CPU, Python, numpy, BLAS, threads, load). A regression (asv's rule) is a ratio
above --threshold whose difference is significant (p < 0.002; with too few rounds for U to
reach that, the 99 % CI of the ratio beyond 1), a p99 or max error up by more than
--error-tolerance (same n and seed only), more NaN/Inf errors, or a library that was ok and
now fails. Runs without round samples get the ratio of medians only, never a regression
verdict on speed. Prints Markdown; --json the API's CompareReport; --html a self-contained
report with a forest plot of the ratios (needs matplotlib). Exits 0 when there is no
regression and 1 when there is one, so a CI pipeline can gate on it.
"""
from __future__ import annotations

import argparse
from typing import Any

from benchctl.argtypes import factor_at_least_one, ratio_above_one
from benchctl.client import query
from benchctl.exitcodes import OK, REGRESSION

COMPARE_TIMEOUT_S = 150.0   # benchd computes it in a child interpreter (scipy import, bootstrap)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help="the earlier run: id, prefix, latest")
    p.add_argument("head", metavar="HEAD", help="the later run: id, prefix, latest")
    p.add_argument("--threshold", type=ratio_above_one, default=1.10, metavar="X",
                   help="a significant speed ratio above X is a regression (default 1.10)")
    p.add_argument("--error-tolerance", type=factor_at_least_one, default=1.10, metavar="F",
                   help="p99/max error growing by more than ×F is a regression (default 1.10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the API's CompareReport")
    out.add_argument("--html", action="store_true",
                     help="print a self-contained HTML report (forest plot; needs matplotlib)")


def _run_ref(ref: str) -> str:
    return ref[len("results/"):] if ref.startswith("results/") else ref


def run(args: argparse.Namespace, ctx: Any) -> int:
    from benchctl import reportout
    from pipeline.schema import VERDICT_REGRESSION, CompareReport
    raw = ctx.client.call_raw(
        "GET", "/api/results/compare" + query(base=_run_ref(args.base), head=_run_ref(args.head),
                                              threshold=repr(args.threshold),
                                              error_tolerance=repr(args.error_tolerance)),
        timeout=COMPARE_TIMEOUT_S)
    rep = reportout.decode(raw, CompareReport)
    reportout.emit(rep, args.json, _html if args.html else None, _markdown)
    return REGRESSION if rep.verdict == VERDICT_REGRESSION else OK


def _html() -> Any:
    from pipeline.report.compare_report import render_compare
    return render_compare


def _markdown() -> Any:
    from pipeline.compare import render_markdown
    return render_markdown
