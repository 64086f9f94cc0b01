"""Preemption and pause of a running job end to end with the real pipeline (`python -m
pipeline`, the real registry: 3 experiments, n=200, fixed seed, accuracy only to keep it
cheap): a real benchd, real supervisors, the real benchctl. The job that was stopped and
resumed publishes the same accuracy tables, field for field, as an uninterrupted run of the
same configuration (run directly with `python -m pipeline`, once for the module)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.benchctl_run import bc
from tests.support.daemon import REPO, daemon_factory, wait_until  # noqa: F401 (fixture)

EXPERIMENTS = ["gmst_era", "equ_ecl", "kepler_solver"]   # the fewest workers: cheap
CONFIG = {"experiments": EXPERIMENTS, "n": 200, "seed": 7, "no_perf": True}
PIPELINE = [sys.executable, "-m", "pipeline"]
# what is measured about accuracy; timing (perf, speed_ratio, worker_s, peak_rss_kb), the run
# id and log tails differ between any two runs and are not compared
ACCURACY_FIELDS = ("experiment", "library", "role", "status", "reference", "version", "model",
                   "n", "seed", "domain", "accuracy")


def accuracy_tables(run_dir: Path) -> dict[str, dict]:
    """experiment/library -> the accuracy fields of its published result."""
    out = {}
    for exp in EXPERIMENTS:
        files = sorted((run_dir / exp).glob("*.json"))
        assert files, f"no results in {run_dir / exp}"
        for f in files:
            rec = json.loads(f.read_bytes())
            out[f"{exp}/{f.stem}"] = {k: rec.get(k) for k in ACCURACY_FIELDS}
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict]:
    """The accuracy tables of one uninterrupted run with CONFIG (no benchd involved)."""
    results = tmp_path_factory.mktemp("uninterrupted") / "results"
    results.mkdir()
    p = subprocess.run([*PIPELINE, "--experiments", ",".join(EXPERIMENTS), "--n", "200",
                        "--seed", "7", "--no-perf", "--results-dir", str(results)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    [run] = [d for d in results.iterdir() if not d.name.startswith(".")]
    return accuracy_tables(run)


def _first_experiment_underway(d, job_id: str) -> str:
    """The job's run id once it works on its first experiment (its staged run exists)."""
    def underway():
        prog = d.job(job_id).get("progress") or {}
        return prog.get("run_id") if prog.get("k", 0) >= 1 and prog.get("run_id") else None
    return wait_until(underway, 120, 0.02, f"job {job_id} working on its first experiment")


def test_a_preempted_job_publishes_the_accuracy_of_an_uninterrupted_run(
        daemon_factory, uninterrupted) -> None:
    d = daemon_factory(orchestrator=PIPELINE)
    low = d.start_job(**CONFIG, label="low")["job_id"]
    run_id = _first_experiment_underway(d, low)
    urgent = d.start_job(experiments=["gmst_era"], n=200, seed=7, no_perf=True, priority=5,
                         label="urgent")                   # as root: may go above 0
    assert urgent["status"] == "queued", urgent
    rec = d.job(low)
    assert rec["status"] == "preempting" and rec["preempted_by"] == urgent["job_id"], rec
    assert rec["stop_mode"] == "boundary"
    r = bc(d, "status")                                    # the waiting job is shown too
    assert r.returncode == 0 and urgent["job_id"] in r.stdout and "urgent" in r.stdout, r.stdout
    done = d.wait_job(urgent["job_id"], timeout=180)
    assert done["status"] == "completed", done
    final = d.wait_job(low, timeout=300)
    assert final["status"] == "completed", final
    assert final["checkpoints"] == 1 and final["resume_run"] == run_id
    assert final["run_dir"] == f"results/{run_id}"          # the same run, resumed
    assert final["started_at"] >= done["finished_at"]       # its second segment came after
    log = d.log_file(low).read_text()
    assert "checkpointed at an experiment boundary" in log and f"resuming {run_id}" in log
    # nothing was measured twice: every experiment ran in exactly one segment
    for exp in EXPERIMENTS:
        assert log.count(f'"experiment":"{exp}","adapter":null,"phase":"inputs"') == 1, exp
    assert accuracy_tables(d.root / "results" / run_id) == uninterrupted


def test_pause_now_of_a_running_job_then_resume_publishes_the_same_accuracy(
        daemon_factory, uninterrupted) -> None:
    d = daemon_factory(orchestrator=PIPELINE)
    job = d.start_job(**CONFIG)["job_id"]
    run_id = _first_experiment_underway(d, job)
    r = bc(d, "pause", job, "--now")
    assert r.returncode == 0 and "now (SIGTERM)" in r.stdout, (r.returncode, r.stdout, r.stderr)
    rec = d.wait_job(job, ("paused",), timeout=60)
    assert rec["reason"].startswith("paused by") and "SIGTERM" in rec["reason"], rec["reason"]
    assert rec["resume_run"] == run_id and d.get("/api/health").json()["active_job"] is None
    staged = json.loads(bc(d, "results", "--staged", "--json").stdout)["runs"]
    assert [(s["run_id"], s["resumable"]) for s in staged] == [(run_id, True)]
    r = bc(d, "resume", job)
    assert r.returncode == 0, r.stderr
    final = d.wait_job(job, timeout=300)
    assert final["status"] == "completed", final
    assert final["run_dir"] == f"results/{run_id}" and final["checkpoints"] == 1
    assert f"resuming {run_id}" in d.log_file(job).read_text()
    assert accuracy_tables(d.root / "results" / run_id) == uninterrupted
