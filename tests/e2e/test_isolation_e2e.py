"""Parallel slots isolated for real (README "CPUs and memory"): a real benchd with --slots and
--cpus, real supervisors pinning real processes (sched_getaffinity as the job itself sees
it), real RLIMIT_DATA refusing a real allocation, real rusage. Fake orchestrators (a real
process per job, tests/support/fake_orchestrator.py) report what they were given."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.benchctl_run import bc
from tests.support.daemon import daemon_factory, wait_until  # noqa: F401 (fixture)

JOBS = "/api/benchmark/jobs"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "BENCHD_JOB_CPUS")

needs_two_cpus = pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0),
                                    reason="needs CPUs 0 and 1")


def _report(base: Path, job_id: str, timeout: float = 30.0) -> dict:
    path = Path(f"{base}.{job_id}")
    wait_until(path.exists, timeout, 0.01, f"{path} written by job {job_id}")
    return json.loads(path.read_text())


@needs_two_cpus
def test_running_jobs_get_disjoint_cpus_and_an_exclusive_job_waits_for_all(
        daemon_factory) -> None:
    """Three slots but two CPUs: two 1-CPU jobs run on CPU 0 and CPU 1 with 1 thread each;
    a third waits although a slot is free; an exclusive job waits for the whole set, then
    runs alone on both with 2 threads. Final records carry CPU set, CPU time, peak memory;
    `benchctl status` and `history` show them."""
    d = daemon_factory(extra_args=["--slots", "3", "--cpus", "0,1"])
    gate, report = d.root / "gate", d.root / "report"
    d.set_spec(wait_for_file=str(gate), lines=1, report_to=str(report),
               per_experiment={"equ_ecl": {"burn_cpu_s": 0.3, "allocate_mb": 64}})
    a = d.start_job(experiments=["gmst_era"])["job_id"]
    b = d.start_job(experiments=["equ_ecl"])["job_id"]
    ra, rb = _report(report, a), _report(report, b)
    assert sorted(ra["affinity"] + rb["affinity"]) == [0, 1], (ra, rb)
    for r in (ra, rb):
        assert r["env"] == dict.fromkeys(THREAD_VARS, "1"), r
    assert d.job(a)["cpuset"] == ra["affinity"] and d.job(b)["cpuset"] == rb["affinity"]
    c = d.start_job(experiments=["gmst_era"])
    assert c["status"] == "queued", c                      # a slot is free, no CPU is
    x = d.start_job(experiments=["gmst_era"], exclusive=True)
    assert x["status"] == "queued" and x["queue_position"] == 2, x
    r = bc(d, "status")
    assert r.returncode == 0 and re.search(rf"^cpus: +{ra['affinity'][0]} \(1 thread ",
                                           r.stdout, re.M), r.stdout
    gate.touch()
    finals = {j: d.wait_job(j, timeout=60) for j in (a, b, c["job_id"], x["job_id"])}
    assert all(f["status"] == "completed" for f in finals.values()), finals
    fx = finals[x["job_id"]]
    assert fx["cpuset"] == [0, 1] and _report(report, x["job_id"])["env"] == \
        dict.fromkeys(THREAD_VARS, "2")
    assert fx["started_at"] >= max(finals[j]["finished_at"] for j in (a, b, c["job_id"]))
    fb = finals[b]
    assert fb["cpu_user_s"] + fb["cpu_sys_s"] >= 0.3, fb   # burnt 0.3 s of CPU
    assert fb["peak_memory_bytes"] >= 64 << 20, fb          # held 64 MiB, touched
    r = bc(d, "status", b)
    assert re.search(r"^cpu time: +[0-9.]+s \(user ", r.stdout, re.M), r.stdout
    assert re.search(r"^peak memory: +[0-9.]+ MiB", r.stdout, re.M), r.stdout
    r = bc(d, "history")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[-4:] == ["CPUS", "CPU-TIME", "PEAK-MEM", "RESULTS"], r.stdout
    cells = next(ln for ln in lines if ln.startswith(b)).split()
    assert cells[-5] == str(rb["affinity"][0]) and cells[-4].endswith("s") \
        and cells[-2] == "MiB", r.stdout


def test_a_job_over_its_memory_limit_fails_out_of_memory_and_the_other_slot_is_unharmed(
        daemon_factory) -> None:
    """--job-memory-max 256M: a job that allocates 512 MiB ends failed 'out of memory (limit
    256 MiB)' while the job in the other slot keeps running and completes; benchd is fine."""
    d = daemon_factory(extra_args=["--slots", "2", "--job-memory-max", "256M"])
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1,
               per_experiment={"equ_ecl": {"allocate_mb": 512, "wait_for_file": None}})
    other = d.start_job(experiments=["gmst_era"])["job_id"]
    d.wait_job(other, ("running",))
    hog = d.start_job(experiments=["equ_ecl"])["job_id"]
    f = d.wait_job(hog, timeout=60)
    assert f["status"] == "failed", f
    assert f["reason"].startswith("out of memory (limit 256 MiB)"), f["reason"]
    assert f["memory_limit"] == 256 << 20
    assert d.job(other)["status"] == "running"
    assert d.get("/api/health").status == 200
    gate.touch()
    assert d.wait_job(other, timeout=60)["status"] == "completed"


def test_resource_requests_are_checked_and_errors_name_the_field(daemon_factory) -> None:
    d = daemon_factory(extra_args=["--cpus", "0", "--job-memory-max", "1G"])
    for body, field in (({"cpus": 2}, "cpus"), ({"cpus": 0}, "cpus"), ({"cpus": "2"}, "cpus"),
                        ({"exclusive": "yes"}, "exclusive"), ({"memory_max": "2G"}, "memory_max"),
                        ({"memory_max": "lots"}, "memory_max"), ({"memory_max": 0}, "memory_max")):
        r = d.post_json(JOBS, body)
        assert r.status == 400 and r.error["message"].startswith(field), (body, r.body)
    r = bc(d, "run", "--cpus", "2")
    assert r.returncode != 0 and "cpus" in r.stderr, (r.returncode, r.stderr)


@needs_two_cpus
def test_a_restarted_benchd_knows_the_cpus_of_the_jobs_it_reattaches(daemon_factory) -> None:
    """kill -9 of benchd while a job runs on one CPU: after the restart, the next job gets
    the other CPU (not the one still in use), and a third waits."""
    d = daemon_factory(extra_args=["--slots", "2", "--cpus", "0,1"])
    gate, report = d.root / "gate", d.root / "report"
    d.set_spec(wait_for_file=str(gate), lines=1, report_to=str(report))
    a = d.start_job(experiments=["gmst_era"])["job_id"]
    first = _report(report, a)["affinity"]
    d.kill9()
    d.start()
    assert d.job(a)["status"] == "running" and d.job(a)["cpuset"] == first
    b = d.start_job(experiments=["gmst_era"])
    assert b["status"] == "running", b
    assert _report(report, b["job_id"])["affinity"] == [c for c in (0, 1) if c not in first]
    assert d.start_job(experiments=["gmst_era"])["status"] == "queued"
    gate.touch()
    assert d.wait_job(a, timeout=60)["status"] == "completed"
