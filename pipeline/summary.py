"""summary.md of one experiment: the top-line table and the parity matrix (README "Reading
summary.md" explains every column). Pure rendering from LibraryResult records."""
from __future__ import annotations

from pipeline import schema


def _num(x: float | None) -> str:
    if x is None:
        return "–"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def _ns(p: schema.PerfStats | None) -> str:
    if p is None:
        return "–"
    s = f"{p.median_ns:,.0f}" if p.median_ns >= 100 else f"{p.median_ns:.3g}"
    return s if p.valid else s + " ⚠"


def _ns_plain(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _ci(p: schema.PerfStats | None) -> str:
    if p is None or p.ci_low_ns is None or p.ci_high_ns is None:
        return "–"
    return f"{_ns_plain(p.ci_low_ns)}–{_ns_plain(p.ci_high_ns)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def render(experiment: str, title: str, unit: str, perf_contract: str, run_id: str, n: int,
           seed: int, reference: str, libraries: list[schema.LibraryResult],
           environment: str | None = None) -> str:
    """Markdown for <experiment>/summary.md; reference first, then candidates by name."""
    lines = [f"# {experiment} — {title}", "",
             f"Run `{run_id}` · n = {n} · seed = {seed} · reference **{reference}** · "
             f"errors in **{unit}** vs the reference.", "",
             f"Perf contract: {perf_contract}", "",
             *([f"Ran on: {environment}", ""] if environment else []),
             f"| library | status | version | p50 ({unit}) | p99 ({unit}) | max ({unit}) | "
             f"NaN/Inf | median ns/op | 95% CI | CPU ns/op | harness ns/op | × ref | rounds | "
             f"in domain | out of domain | failed |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes: list[str] = []
    for r in libraries:
        a, d = r.accuracy, r.domain
        name = f"{r.library} (reference)" if r.role == schema.ROLE_REFERENCE else r.library
        lines.append("| " + " | ".join(_cell(c) for c in [
            name, r.status, r.version or "–",
            _num(a.p50) if a else "–", _num(a.p99) if a else "–", _num(a.max) if a else "–",
            f"{a.nan_count + a.inf_count}" if a else "–",
            _ns(r.perf), _ci(r.perf), _ns_plain(r.perf.cpu_median_ns) if r.perf else "–",
            _ns_plain(r.perf.harness_ns) if r.perf else "–",
            f"{r.speed_ratio:.2f}" if r.speed_ratio is not None else "–",
            str(r.perf.rounds) if r.perf else "–",
            str(d.in_domain) if d else "–", str(d.out_of_domain) if d else "–",
            str(d.failed) if d else "–"]) + " |")
        if r.reason:
            notes.append(f"- **{r.library}** {r.status}: {r.reason.splitlines()[0]}")
        for w in (r.perf.warnings if r.perf else []) + r.warnings:
            notes.append(f"- {r.library}: {w}")
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "Timing: median ns/op is the raw wall time of the timed call per case, with "
              "the 95% bootstrap CI of that median over the rounds; CPU ns/op is the worker's "
              "CPU time (above wall time: the library used more than one thread, flagged "
              "`threaded`); harness ns/op is what the same timing loop (and, for per-case "
              "libraries, the same per-case loop) costs around a no-op call: shown, never "
              "subtracted. × ref compares raw medians."]
    lines += ["", "## Parity matrix (adapter → model)", "", "| library | model |", "|---|---|"]
    for r in libraries:
        lines.append(f"| {_cell(r.library)} | {_cell(r.model or '–')} |")
    return "\n".join(lines) + "\n"
