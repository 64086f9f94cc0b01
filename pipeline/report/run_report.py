"""report.html of one run: per experiment a table, the error distribution of every library
(ECDF from the stored quantiles), the speed plot and accuracy versus speed with its Pareto
front. Always three figures per experiment (an empty one says why it is empty)."""
from __future__ import annotations

from pipeline import schema
from pipeline.report import page, plots

PLOTS_PER_EXPERIMENT = 3
_LEVELS_OF_PERCENTILES = (0.5, 0.9, 0.95, 0.99, 1.0)


def _curve(acc: schema.AccuracyStats) -> list[float]:
    """Error quantiles at equally spaced levels; from the p50..max figures (older runs, no
    stored quantiles) as a coarse staircase at those levels."""
    if acc.quantiles:
        return acc.quantiles
    known = dict(zip(_LEVELS_OF_PERCENTILES, (acc.p50, acc.p90, acc.p95, acc.p99, acc.max)))
    out: list[float] = []
    for i in range(101):
        level = i / 100
        above = [v for lv, v in known.items() if lv >= level and v is not None]
        out.append(above[0] if above else float("nan"))
    return out


def _experiment(run_id: str, name: str, exp: schema.ExperimentDetail) -> list[str]:
    libs = exp.libraries
    unit = next((r.accuracy.unit for r in libs.values() if r.accuracy), "?")
    out = [f'<h2 id="{page.esc(name)}">{page.esc(name)}</h2>']
    if exp.status and exp.status != schema.EXP_DONE:
        out.append(f'<p class="bad">experiment {page.esc(exp.status)}</p>')
    rows, classes = [], []
    for lib, r in libs.items():
        acc, perf = r.accuracy, r.perf
        ci = (f"[{perf.ci_low_ns:.4g}, {perf.ci_high_ns:.4g}]"
              if perf and perf.ci_low_ns is not None and perf.ci_high_ns is not None else "-")
        rows.append([lib + (" (ref)" if r.role == schema.ROLE_REFERENCE else ""), r.status,
                     r.version or "-", r.model or "-",
                     page.num(acc.p50 if acc else None), page.num(acc.p99 if acc else None),
                     page.num(acc.max if acc else None),
                     page.num(perf.median_ns if perf else None), ci,
                     page.num(r.speed_ratio, ".3g")])
        classes.append("bad" if r.status == schema.LIB_FAILED else None)
    out.append(page.table(["library", "status", "version", "model", f"p50 ({unit})",
                           f"p99 ({unit})", f"max ({unit})", "ns/op", "95% CI", "×ref"],
                          rows, numeric=(4, 5, 6, 7, 9), classes=classes))
    key = f"{run_id}-{name}"
    curves = {lib: _curve(r.accuracy) for lib, r in libs.items() if r.accuracy}
    out.append(page.figure(plots.ecdf(f"{key}-ecdf", curves, unit,
                                      f"{name}: error distribution"),
                           f"ECDF of |error| against the reference, in {unit}, one line per "
                           f"library (from 101 stored quantiles; older runs: p50-max only)."))
    speed = [(lib, r.perf.median_ns, r.perf.ci_low_ns, r.perf.ci_high_ns,
              r.role == schema.ROLE_REFERENCE)
             for lib, r in libs.items() if r.perf and r.perf.median_ns > 0]
    out.append(page.figure(plots.speed(f"{key}-speed", speed, f"{name}: speed"),
                           "Median ns per operation; whiskers are the 95 % bootstrap CI when "
                           "the run recorded one; red: the reference."))
    ref_ns = next((s[1] for s in speed if s[4]), None)
    points = [(lib, r.perf.median_ns, r.accuracy.p99) for lib, r in libs.items()
              if r.perf and r.accuracy and r.accuracy.p99 is not None]
    out.append(page.figure(plots.scatter(f"{key}-scatter", points, unit,  # type: ignore[arg-type]
                                         f"{name}: accuracy versus speed", ref_ns),
                           "p99 error versus median ns/op; the dashed staircase joins the "
                           "libraries no other library beats on both (the Pareto front)."))
    return out


def render_run(detail: schema.RunDetail) -> str:
    """The whole report.html of a run (raises PlotsUnavailable without matplotlib)."""
    m = detail.manifest
    body = [f"<h1>Benchmark run {page.esc(detail.run_id)}</h1>"]
    if m is not None:
        meta = m.metadata
        body.append(page.table(["n", "seed", "perf rounds", "CPU", "cores", "Python", "numpy",
                                "OS", "git"],
                               [[m.config.n, m.config.seed, m.config.perf_rounds,
                                 meta.cpu_model, meta.cores, meta.python, meta.numpy, meta.os,
                                 (meta.git_sha or "-")[:12] + (" (dirty)" if meta.git_dirty
                                                               else "")]]))
        reg = m.regression
        if reg is not None:
            cls = "bad" if reg.verdict == schema.VERDICT_REGRESSION else "good"
            text = f"regression check: {reg.verdict}"
            if reg.base_run_id:
                text += f" against {reg.base_run_id}"
            if reg.rows:
                text += " — " + ", ".join(f"{r.experiment}/{r.library} "
                                          f"({', '.join(r.regressions)})" for r in reg.rows)
            if reg.reason:
                text += f" ({reg.reason})"
            body.append(f'<p class="{cls}">{page.esc(text)}</p>')
    else:
        body.append('<p class="note">legacy run: no manifest, no metadata</p>')
    body.append("<p>" + " · ".join(f'<a href="#{page.esc(n)}">{page.esc(n)}</a>'
                                   for n in detail.experiments) + "</p>")
    for name, exp in detail.experiments.items():
        body += _experiment(detail.run_id, name, exp)
    return page.page(f"benchd run {detail.run_id}", body)
