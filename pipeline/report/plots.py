"""The figures, drawn with matplotlib (Agg backend) and returned as SVG text.

Reproducible: each figure gets its own fixed `svg.hashsalt` (ids stay distinct between the
figures of one page and identical between two renders), `metadata={'Date': None}` drops the
date, and text stays text (`svg.fonttype: none`): small, searchable, no embedded glyphs.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pipeline.report import PlotsUnavailable

REF_COLOR = "#d62728"
COLOR = "#1f77b4"
GREY = "#7f7f7f"
_RC = {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10, "figure.dpi": 100,
       "axes.grid": True, "grid.alpha": 0.3}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise PlotsUnavailable("matplotlib is not installed: plots (and HTML reports) are "
                               "unavailable (pip install matplotlib)") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


@contextmanager
def figure(key: str, width: float = 7.0, height: float = 3.6) -> Iterator[tuple[Any, Any]]:
    """A new figure and axes under reproducible settings; `key` salts its SVG ids."""
    plt = _pyplot()
    with plt.rc_context({**_RC, "svg.hashsalt": f"benchd-{key}"}):
        fig, ax = plt.subplots(figsize=(width, height))
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def to_svg(fig: Any, key: str) -> str:
    """The figure as an <svg> element (no XML prolog, no DOCTYPE: it sits inside HTML)."""
    plt = _pyplot()
    buf = io.StringIO()
    with plt.rc_context({**_RC, "svg.hashsalt": f"benchd-{key}"}):
        fig.tight_layout()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _positive(xs: Sequence[float | None]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x) and x > 0]


def ecdf(key: str, curves: dict[str, list[float]], unit: str, title: str) -> str:
    """Error distribution: per library the fraction of cases with |error| <= x (log x).
    `curves` maps a label to its error quantiles at equally spaced levels 0..1."""
    with figure(key) as (fig, ax):
        drawn, zero = 0, []
        for label, qs in curves.items():
            k = len(qs)
            pts = [(q, i / (k - 1)) for i, q in enumerate(qs)
                   if q is not None and math.isfinite(q) and q > 0] if k > 1 else []
            if not pts:
                zero.append(label)
                continue
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=label)
            drawn += 1
        if drawn:
            ax.set_xscale("log")
            ax.legend(loc="lower right", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no non-zero finite error to draw", ha="center",
                    transform=ax.transAxes)
        if zero:
            ax.text(0.01, 0.97, "no error > 0 (not drawn): " + ", ".join(zero),
                    transform=ax.transAxes, va="top", fontsize=7, color=GREY)
        ax.set_xlabel(f"|error| ({unit}), log scale")
        ax.set_ylabel("fraction of cases ≤ error")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        return to_svg(fig, key)


def speed(key: str, rows: list[tuple[str, float, float | None, float | None, bool]],
          title: str) -> str:
    """Median ns/op per library (log x) with CI whiskers; the reference in red with a
    dashed line. rows: (label, median, ci_low, ci_high, is_reference)."""
    with figure(key, height=max(1.6, 0.35 * len(rows) + 1.0)) as (fig, ax):
        for i, (label, med, lo, hi, ref) in enumerate(rows):
            color = REF_COLOR if ref else COLOR
            if lo is not None and hi is not None:
                ax.errorbar([med], [i], xerr=[[max(0.0, med - lo)], [max(0.0, hi - med)]], fmt="o", color=color,
                            capsize=3)
            else:
                ax.plot([med], [i], "o", color=color)
            if ref:
                ax.axvline(med, color=REF_COLOR, linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(rows)), [r[0] + (" (ref)" if r[4] else "") for r in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("median ns/op, log scale (whiskers: 95 % CI where recorded)")
        ax.set_title(title)
        return to_svg(fig, key)


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The points no other point beats on both speed and error (lower is better), by speed."""
    front: list[tuple[str, float, float]] = []
    best = math.inf
    for p in sorted(points, key=lambda p: (p[1], p[2])):
        if p[2] < best:
            front.append(p)
            best = p[2]
    return front


def scatter(key: str, points: list[tuple[str, float, float]], unit: str, title: str,
            ref_ns: float | None) -> str:
    """Accuracy (p99 error) versus speed (median ns/op), both log, with the Pareto front."""
    with figure(key, height=4.0) as (fig, ax):
        pts = [p for p in points if p[1] > 0 and p[2] > 0]
        if pts:
            front = pareto_front(pts)
            ax.plot([p[1] for p in pts], [p[2] for p in pts], "o", color=COLOR)
            ax.step([p[1] for p in front], [p[2] for p in front], where="post",
                    color=GREY, linestyle="--", label="Pareto front")
            for name, x, y in pts:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(loc="lower left", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no library has both a timing and a non-zero p99 error",
                    ha="center", transform=ax.transAxes)
        if ref_ns:
            ax.axvline(ref_ns, color=REF_COLOR, linestyle="--", linewidth=0.8)
        ax.set_xlabel("median ns/op, log scale (red: the reference)")
        ax.set_ylabel(f"p99 |error| ({unit}), log scale")
        ax.set_title(title)
        return to_svg(fig, key)


def forest(key: str, rows: list[tuple[str, float, float | None, float | None, bool]],
           threshold: float, title: str) -> str:
    """Ratios head/base with their CIs (log x), 1 and the threshold marked; regressed rows in
    red. rows: (label, ratio, ci_low, ci_high, regressed)."""
    with figure(key, height=max(1.6, 0.3 * len(rows) + 1.0)) as (fig, ax):
        for i, (_label, r, lo, hi, bad) in enumerate(rows):
            color = REF_COLOR if bad else COLOR
            if lo is not None and hi is not None:
                ax.errorbar([r], [i], xerr=[[max(0.0, r - lo)], [max(0.0, hi - r)]], fmt="s",
                            color=color, capsize=3)
            else:
                ax.plot([r], [i], "s", color=color, markerfacecolor="none")
        ax.axvline(1.0, color="black", linewidth=0.8)
        for t in (threshold, 1 / threshold):
            ax.axvline(t, color=GREY, linestyle=":", linewidth=0.8)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(f"ratio head/base of median ns/op, log scale (> 1 slower; dotted: "
                      f"×{threshold:g} and ÷{threshold:g}; open: no samples, no CI)")
        ax.set_title(title)
        return to_svg(fig, key)


def series(key: str, lines: dict[str, list[tuple[int, float, float | None, float | None]]],
           xlabels: list[str], ylabel: str, title: str,
           marks: Sequence[tuple[int, str]] = ()) -> str:
    """Values over runs (x: run index, labelled by run id) per library, log y, CI bars where
    present; `marks` draws a vertical line with a label (a library version change)."""
    with figure(key, height=3.8) as (fig, ax):
        drawn = 0
        for label, pts in lines.items():
            pts = [p for p in pts if p[1] is not None and p[1] > 0]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            line, = ax.plot(xs, ys, "o-", label=label, markersize=3)
            # a CI that does not contain the median (it was measured on other samples) draws
            # no whisker on that side rather than failing the whole report
            lows = [max(0.0, p[1] - p[2]) if p[2] is not None else 0.0 for p in pts]
            highs = [max(0.0, p[3] - p[1]) if p[3] is not None else 0.0 for p in pts]
            if any(lows) or any(highs):
                ax.errorbar(xs, ys, yerr=[lows, highs], fmt="none", color=line.get_color(),
                            capsize=2)
            drawn += 1
        for x, text in marks:
            ax.axvline(x, color=GREY, linestyle=":", linewidth=0.8)
            ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=6, color=GREY)
        if drawn:
            ax.set_yscale("log")
            ax.legend(loc="best", fontsize=7)
        step = max(1, len(xlabels) // 12)
        ticks = list(range(0, len(xlabels), step))
        ax.set_xticks(ticks, [xlabels[i] for i in ticks], rotation=30, ha="right", fontsize=6)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return to_svg(fig, key)
