"""List the experiments and the adapters (libraries, with their models) that run each.

The first call after benchd starts may take a few seconds: benchd describes the adapters in a
child interpreter, which imports the astronomy libraries. --json prints the API's list of
ExperimentInfo.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchctl.exitcodes import OK

DESCRIBE_TIMEOUT_S = 180.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the API's JSON list")


def run(args: argparse.Namespace, ctx: Any) -> int:
    raw = ctx.client.call_raw("GET", "/api/experiments", timeout=DESCRIBE_TIMEOUT_S)
    if args.json:
        from benchctl import jsonout
        from pipeline.schema import ExperimentInfo
        jsonout.emit(raw, list[ExperimentInfo])
        return OK
    from benchctl import render
    width = render.Out.of(sys.stdout).width   # a terminal's: lines are cut to fit
    out = []
    for exp in json.loads(raw):
        ref = exp.get("reference") or {}
        out.append(f"{exp.get('experiment')}: {exp.get('title', '')}")
        out.append(f"  unit:      {exp.get('unit', '-')}")
        out.append(f"  reference: {ref.get('name', '-')} ({ref.get('model', '-')})")
        adapters = exp.get("adapters") or []
        if adapters:
            names = [f"{a.get('name')} ({a.get('model')})" if a.get("model")
                     else str(a.get("name")) for a in adapters]
            if width is None:
                out.append("  adapters:  " + ", ".join(names))
            else:
                out.append("  adapters:  " + render.short_list(names, max(8, width - 13), ", "))
        else:
            out.append("  adapters:  none besides the reference")
        out.append("")
    if width is not None:
        out = [render.cut(line, width) for line in out]
    render.page("\n".join(out), ctx.pager)
    return OK
