"""The trend report: ns/op (with CIs where recorded) and p99 error of one experiment over
every stored run, library version changes marked."""
from __future__ import annotations

from pipeline import schema
from pipeline.report import page, plots

PLOTS = 2


def version_changes(series: schema.TrendSeries) -> list[tuple[str, str, str]]:
    """(run_id, old version, new version) at each run where the library's version changed."""
    out, last = [], None
    for p in series.points:
        if p.version and last and p.version != last:
            out.append((p.run_id, last, p.version))
        last = p.version or last
    return out


def render_trend(rep: schema.TrendReport) -> str:
    """The whole trend report (raises PlotsUnavailable without matplotlib)."""
    runs = sorted({p.run_id for s in rep.series for p in s.points})
    index = {r: i for i, r in enumerate(runs)}
    marks = []
    for s in rep.series:
        for run_id, old, new in version_changes(s):
            marks.append((index[run_id], f"{s.library} {old}→{new}"))
    speed = {s.library: [(index[p.run_id], p.median_ns, p.ci_low_ns, p.ci_high_ns)
                         for p in s.points if p.median_ns is not None] for s in rep.series}
    error = {s.library: [(index[p.run_id], p.p99, None, None) for p in s.points
                         if p.p99 is not None] for s in rep.series}
    unit = next((s.unit for s in rep.series if s.unit), "?")
    key = f"trend-{rep.experiment}-{rep.library or 'all'}"
    title = f"trend of {rep.experiment}" + (f" · {rep.library}" if rep.library else "")
    body = [f"<h1>{page.esc(title)}</h1>",
            f'<p class="note">{rep.runs_read} run(s) with this experiment; x: runs in start '
            f"order; dotted lines: a library version change.</p>",
            page.figure(plots.series(f"{key}-speed", speed, runs,  # type: ignore[arg-type]
                                     "median ns/op, log scale", "speed over runs", marks),
                        "Median ns/op per run; bars: 95 % CI where the run recorded one."),
            page.figure(plots.series(f"{key}-p99", error, runs,  # type: ignore[arg-type]
                                     f"p99 |error| ({unit}), log scale", "p99 error over runs",
                                     marks),
                        "p99 error against the reference per run.")]
    for s in rep.series:
        body.append(f"<h2>{page.esc(s.library)}" + (" (reference)" if s.role ==
                                                     schema.ROLE_REFERENCE else "") + "</h2>")
        body.append(page.table(
            ["run", "status", "version", "n", "seed", "ns/op", "95% CI", f"p99 ({unit})",
             f"max ({unit})"],
            [[p.run_id, p.status, p.version or "-", p.n if p.n is not None else "-",
              p.seed if p.seed is not None else "-", page.num(p.median_ns),
              "-" if p.ci_low_ns is None or p.ci_high_ns is None
              else f"[{p.ci_low_ns:.4g}, {p.ci_high_ns:.4g}]",
              page.num(p.p99, ".3g"), page.num(p.max, ".3g")] for p in s.points],
            numeric=(5, 7, 8)))
    for w in rep.warnings:
        body.append(f'<p class="note">{page.esc(w)}</p>')
    return page.page(title, body)
