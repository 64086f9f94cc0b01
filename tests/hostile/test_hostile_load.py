"""Load: 100 clients hammering status/history/job/log endpoints while a job writes 5,000
lines/s and 50 HTTP followers tail it (two client processes, a real benchd). Zero errors, and
every follower gets the complete log exactly once (byte for byte against the file). The 30 s
version with the figures is bench/hostile_report.py; this one runs 5 s."""
from __future__ import annotations

import os

import pytest

from tests.hostile.loadrun import firehose_argv, run_scenario

SECONDS = float(os.environ.get("BENCHD_HOSTILE_LOAD_S", "5"))


@pytest.mark.timeout(240)
def test_100_clients_and_50_followers_during_a_5000_lines_per_s_job(daemon_factory) -> None:
    d = daemon_factory(orchestrator=firehose_argv(5000, SECONDS + 1))
    r = run_scenario(d, seconds=SECONDS)
    print(f"\nload: {r.hammer['requests']} requests, p50 {r.hammer['p50_ms']:.1f} ms, "
          f"p99 {r.hammer['p99_ms']:.1f} ms, max {r.hammer['max_ms']:.1f} ms; "
          f"log {r.log_lines} lines; RSS max {r.rss_max_kib / 1024:.1f} MiB")
    assert r.job["status"] == "completed", r.job
    # the job really streamed at the rate: (SECONDS+1) s at 5,000 lines/s
    assert r.log_lines >= 5000 * (SECONDS + 1)
    assert r.hammer["errors"] == 0, r.hammer["error_samples"]
    assert r.hammer["requests"] >= 100 * 5, r.hammer  # every client got answers, repeatedly
    assert all(v["n"] > 0 for v in r.hammer["by_path"].values()), r.hammer["by_path"]
    assert r.follower_errors == []
    assert r.followers_exact == 50, [(f["bytes"], r.log_bytes) for f in r.followers]
    # the daemon stayed small: it never holds a log in memory
    assert r.rss_max_kib < 200 * 1024, r.rss_max_kib
    assert d.get("/api/health").status == 200
