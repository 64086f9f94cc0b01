"""The compare report: the ratios head/base with their CIs as a forest plot, the table of
rows, and what differs between the runs."""
from __future__ import annotations

from pipeline import compare, schema
from pipeline.report import page, plots

PLOTS = 1


def render_compare(rep: schema.CompareReport) -> str:
    """The whole compare report (raises PlotsUnavailable without matplotlib)."""
    title = f"compare {rep.base_run_id} → {rep.head_run_id}"
    cls = "bad" if rep.verdict == schema.VERDICT_REGRESSION else "good"
    body = [f"<h1>{page.esc(title)}</h1>",
            f'<p class="{cls}">verdict: {page.esc(rep.verdict)}</p>',
            f'<p class="note">A regression: ratio head/base above {rep.threshold:g} and '
            f"significant (Mann-Whitney U p &lt; {rep.alpha:g}, or the 99 % CI of the ratio "
            f"with too few rounds), p99/max error up by more than ×{rep.error_tolerance:g}, "
            f"more NaN/Inf errors, or ok → failed.</p>"]
    timed = [r for r in rep.rows if r.ratio is not None]
    forest = [(f"{r.experiment}/{r.library}", r.ratio, r.ratio_ci_low, r.ratio_ci_high,
               bool(r.regressions)) for r in timed]
    body.append(page.figure(plots.forest(f"{rep.base_run_id}-{rep.head_run_id}-forest",
                                         forest, rep.threshold,  # type: ignore[arg-type]
                                         "speed ratio head/base"),
                            "Forest plot: each square is a ratio of medians with its 95 % "
                            "bootstrap CI; red: a regression."))
    rows = [[r.experiment, r.library, r.head_version or "-" if r.base_version == r.head_version
             else f"{r.base_version or '-'} → {r.head_version or '-'}",
             page.num(r.ratio, ".3f"),
             "-" if r.ratio_ci_low is None or r.ratio_ci_high is None
             else f"[{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}]",
             page.num(r.p_value, ".2g"), f"{r.base_rounds}+{r.head_rounds}",
             f"{page.num(r.base_p99, '.3g')} → {page.num(r.head_p99, '.3g')}",
             f"{page.num(r.base_max, '.3g')} → {page.num(r.head_max, '.3g')}", r.unit or "-",
             compare.row_mark(r), "; ".join(r.notes)] for r in rep.rows]
    body.append(page.table(["experiment", "library", "version", "ratio", "95% CI", "p",
                            "rounds", "p99 error", "max error", "unit", "verdict", "notes"],
                           rows, numeric=(3, 5), classes=["bad" if r.regressions else None
                                                          for r in rep.rows]))
    for title_, diffs in (("Configuration differences", rep.config),
                          ("Environment differences", rep.environment)):
        body.append(f"<h2>{title_}</h2>")
        body.append(page.table(["field", "base", "head"], [[d.field, d.base, d.head]
                                                           for d in diffs])
                    if diffs else "<p>none</p>")
    for n in rep.notes:
        body.append(f'<p class="note">{page.esc(n)}</p>')
    return page.page(title, body)
