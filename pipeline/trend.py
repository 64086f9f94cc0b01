"""One experiment's figures over every stored run: ns/op (with its CI when recorded) and p99
error per library, oldest run first, with the library version of each run.

Reads only that experiment's files of each run (pipeline.loader.load_experiment), so
thousands of runs cost thousands of small reads, not a full load of each; benchd calls it
off its event loop. Markdown rendering here; the plotted report is pipeline.report.
"""
from __future__ import annotations

from pathlib import Path

from pipeline import loader, schema


class TrendError(ValueError):
    """Bad trend parameters (the message names the parameter)."""


def trend(results_dir: Path, experiment: str, library: str | None = None) -> schema.TrendReport:
    """The TrendReport of `experiment` (one library, or all) over every published run."""
    if not experiment or not experiment.replace("_", "").replace("-", "").isalnum():
        raise TrendError(f"experiment: not an experiment name: {experiment[:60]!r}")
    rep = schema.TrendReport(experiment=experiment, library=library)
    series: dict[str, schema.TrendSeries] = {}
    for run_id in reversed(loader.run_ids(results_dir)):     # oldest first
        found = loader.load_experiment(results_dir, run_id, experiment)
        if found is None:
            continue
        summary, exp = found
        rep.runs_read += 1
        for lib, r in exp.libraries.items():
            if library is not None and lib != library:
                continue
            s = series.setdefault(lib, schema.TrendSeries(library=lib, role=r.role))
            if r.accuracy and s.unit is None:
                s.unit = r.accuracy.unit
            perf, acc = r.perf, r.accuracy
            s.points.append(schema.TrendPoint(
                run_id=run_id, created_at=summary.created_at, status=r.status,
                version=r.version, n=summary.n, seed=summary.seed,
                median_ns=perf.median_ns if perf else None,
                ci_low_ns=perf.ci_low_ns if perf else None,
                ci_high_ns=perf.ci_high_ns if perf else None,
                p99=acc.p99 if acc else None, max=acc.max if acc else None, legacy=r.legacy))
    rep.series = sorted(series.values(), key=lambda s: (s.role != schema.ROLE_REFERENCE,
                                                         s.library))
    if rep.runs_read == 0:
        rep.warnings.append(f"no published run has experiment {experiment!r}")
    elif library is not None and not rep.series:
        rep.warnings.append(f"library {library!r} never ran {experiment!r} in a published run")
    return rep


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def render_markdown(rep: schema.TrendReport) -> str:
    """What `benchctl trend` prints: per library, one line per run, then per version."""
    out = [f"# trend of {rep.experiment}" + (f" · {rep.library}" if rep.library else ""), "",
           f"{rep.runs_read} run(s) with this experiment, oldest first."]
    for s in rep.series:
        unit = s.unit or "-"
        out += ["", f"## {s.library}" + (" (reference)" if s.role == schema.ROLE_REFERENCE
                                          else ""), "",
                f"| run | status | version | n | ns/op | 95% CI | p99 ({unit}) |",
                "|---|---|---|---|---|---|---|"]
        for p in s.points:
            ci = "-" if p.ci_low_ns is None or p.ci_high_ns is None \
                else f"[{p.ci_low_ns:.4g}, {p.ci_high_ns:.4g}]"
            out.append(f"| {p.run_id} | {p.status} | {p.version or '-'} | "
                       f"{p.n if p.n is not None else '-'} | {_num(p.median_ns)} | {ci} | "
                       f"{_num(p.p99, '.3g')} |")
        by_version: dict[str, list[schema.TrendPoint]] = {}
        for p in s.points:
            by_version.setdefault(p.version or "-", []).append(p)
        if len(by_version) > 1:
            out += ["", "| version | runs | first run | last run | median of ns/op | "
                        f"last p99 ({unit}) |", "|---|---|---|---|---|---|"]
            for v, pts in by_version.items():
                ns = sorted(p.median_ns for p in pts if p.median_ns is not None)
                med = ns[len(ns) // 2] if ns else None
                out.append(f"| {v} | {len(pts)} | {pts[0].run_id} | {pts[-1].run_id} | "
                           f"{_num(med)} | {_num(pts[-1].p99, '.3g')} |")
    out += [f"\n{w}" for w in rep.warnings]
    return "\n".join(out) + "\n"
