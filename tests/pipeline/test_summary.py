"""pipeline.summary: the markdown an astronomer reads."""
from __future__ import annotations

from pipeline import schema, summary


def _perf(ns: float, valid: bool = True) -> schema.PerfStats:
    return schema.PerfStats(rounds=3, inner_repeats=1, ops_per_call=10, median_ns=ns, mean_ns=ns,
                            stdev_ns=0, min_ns=ns, max_ns=ns, cv_pct=0, call_ns=ns * 10,
                            timer_resolution_ns=1, valid=valid,
                            warnings=[] if valid else ["unstable: CV 30.0% over 3 rounds (> 10%)"],
                            samples_ns=[ns] * 3, ci_low_ns=ns * 0.98, ci_high_ns=ns * 1.02,
                            cpu_median_ns=ns * 0.995 if ns < 100 else ns, harness_ns=0.25)


def test_render_table_notes_and_parity() -> None:
    dom = schema.DomainCounts(total=10, in_domain=8, out_of_domain=2, failed=1)
    ref = schema.LibraryResult(run_id="r", experiment="gmst_era", library="erfa", role="reference",
                               status="ok", reference="erfa", version="2.0", model="gmst06",
                               domain=schema.DomainCounts(10, 10, 0, 0), perf=_perf(61.3),
                               speed_ratio=1.0)
    acc = schema.AccuracyStats(unit="mas", compared=8, finite=7, nan_count=1, inf_count=0,
                               p50=0.0031, p99=0.0069, max=0.0073)
    cand = schema.LibraryResult(run_id="r", experiment="gmst_era", library="astropy",
                                role="candidate", status="ok", reference="erfa", version="8.0",
                                model="sidereal_time | IAU2006", domain=dom, accuracy=acc,
                                perf=_perf(1425.0, valid=False), speed_ratio=23.25)
    bad = schema.LibraryResult(run_id="r", experiment="gmst_era", library="novas",
                               role="candidate", status="failed", reference="erfa",
                               reason="worker killed by SIGSEGV without a result\ntraceback...")
    md = summary.render("gmst_era", "GMST and ERA", "mas", "gmst and era per epoch", "r", 10, 42,
                        "erfa", [ref, cand, bad])
    lines = md.splitlines()
    assert lines[0] == "# gmst_era — GMST and ERA"
    assert ("| erfa (reference) | ok | 2.0 | – | – | – | – | 61.3 | 60.1–62.5 | 61 | 0.25 | "
            "1.00 | 3 | 10 | 0 | 0 |") in lines
    assert ("| astropy | ok | 8.0 | 0.0031 | 0.0069 | 0.0073 | 1 | 1,425 ⚠ | 1,396–1,454 | "
            "1,425 | 0.25 | 23.25 | 3 | 8 | 2 | 1 |") in lines
    assert "- **novas** failed: worker killed by SIGSEGV without a result" in lines
    assert "- astropy: unstable: CV 30.0% over 3 rounds (> 10%)" in lines
    assert "| astropy | sidereal_time \\| IAU2006 |" in lines      # pipes escaped
    header = next(l for l in lines if l.startswith("| library | status"))
    assert header.count("|") == lines[lines.index(header) + 1].count("|")
