"""Retention against a real benchd: pins, prunes, archives, job records, legacy runs, kill -9
in the middle of a prune, and a real full tmpfs. Runs are real orchestrator output (toy
registry), cloned under ids of the wanted age (tests/support/runs.py)."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.benchctl_run import bc
from tests.support.daemon import Daemon, daemon_factory, wait_until  # noqa: F401 (fixture)
from tests.support.runs import clone_run, run_is_whole, toy_run

LEGACY = Path(__file__).resolve().parents[1] / "pipeline" / "fixtures" / "legacy_results"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return toy_run(tmp_path_factory.mktemp("template"))


def run_id(days_ago: float, k: int = 0) -> str:
    t = time.gmtime(time.time() - days_ago * 86400 - k)
    return time.strftime("%Y-%m-%d_%H-%M-%S", t)


def listed(d: Daemon) -> dict[str, dict]:
    r = d.get("/api/results")
    assert r.status == 200, r.body
    return {run["run_id"]: run for run in r.json()["runs"]}


def test_pins_keep_runs_that_keep_days_would_delete(daemon_factory, template, tmp_path):
    root = tmp_path / "root"
    results = root / "results"
    results.mkdir(parents=True)
    old = [run_id(40 + i) for i in range(4)]
    young = run_id(2)
    for r in old + [young]:
        clone_run(template, results, r, pad_bytes=2048)
    shutil.copytree(LEGACY / "2025-06-01", results / "2025-06-01")     # the older layout
    (results / "2025-13-45").mkdir()                                      # not a run: untouched
    d = daemon_factory(start=False, root=root, extra_args=("--keep-days", "30"))
    # pin one before benchd ever prunes: written straight to the pins directory by the API of
    # a first daemon without a policy
    plain = Daemon(root)
    plain.start()
    r = plain.post_json(f"/api/results/{old[1]}/pin", {"note": "paper figure 3"})
    assert r.status == 200, r.body
    dry = bc(plain, "prune", "--dry-run")
    assert dry.returncode == 0 and "no run is due" in dry.stdout, dry.stdout
    plain.close()
    d.start()                                      # prunes at start: keep-days 30
    wait_until(lambda: not (results / old[0]).exists(), timeout=30)
    runs = listed(d)
    assert set(runs) == {old[1], young}, runs                # legacy 2025-06-01 aged out too
    assert runs[old[1]]["pinned"] and runs[old[1]]["pin_note"] == "paper figure 3"
    assert run_is_whole(results / old[1]) and run_is_whole(results / young)
    assert (results / "2025-13-45").is_dir()
    shown = bc(d, "results")
    assert "yes: paper figure 3" in shown.stdout
    hist = bc(d, "prune", "--history", "--json")
    entries = json.loads(hist.stdout)["entries"]
    assert {e["what"] for e in entries} == {old[0], old[2], old[3], "2025-06-01"}
    assert all(e["rule"] == "keep-days" and e["trigger"] == "start" for e in entries)
    assert "retention: deleted " + old[0] in d.stderr_text()
    # unpinned, the next prune takes it
    assert d.request("DELETE", f"/api/results/{old[1]}/pin").status == 200
    out = bc(d, "prune")
    assert out.returncode == 0 and old[1] in out.stdout and "keep-days" in out.stdout
    assert set(listed(d)) == {young}
    assert not (results / ".trash").exists() or not any((results / ".trash").iterdir())


def test_archive_keeps_a_run_listed_and_readable_and_restore_brings_it_back(
        daemon_factory, template, tmp_path):
    root = tmp_path / "root"
    (root / "results").mkdir(parents=True)
    rid, newest = run_id(10), run_id(1)
    clone_run(template, root / "results", rid)
    clone_run(template, root / "results", newest)
    before = Daemon(root)
    before.start()
    detail = before.get(f"/api/results/{rid}").json()
    before.close()
    d = daemon_factory(start=False, root=root, extra_args=("--archive-after", "5"))
    d.start()
    wait_until(lambda: (root / "results" / ".archive" / f"{rid}.tar.xz").exists(), timeout=30)
    wait_until(lambda: not (root / "results" / rid).exists(), timeout=30)
    assert listed(d)[rid]["archived"] is True
    assert d.get(f"/api/results/{rid}").json()["experiments"] == detail["experiments"]
    out = bc(d, "results", "--restore", rid)
    assert out.returncode == 0, out.stderr
    assert run_is_whole(root / "results" / rid)
    assert not (root / "results" / ".archive" / f"{rid}.tar.xz").exists()
    assert listed(d)[rid]["archived"] is False


def test_job_records_go_only_with_their_runs(daemon_factory, template, tmp_path):
    d = daemon_factory()
    jobs = [d.start_job()["job_id"] for _ in range(1)]
    for j in jobs:
        d.wait_job(j)
    job = d.job(jobs[0])
    run = job["progress"]["run_id"]
    # the fake orchestrator publishes a stand-in directory: make its run a real one
    d.close()
    shutil.rmtree(d.root / "results" / run)
    rec_path = d.root / "logs" / "jobs" / f"{jobs[0]}.json"
    rec = json.loads(rec_path.read_text())
    rec["finished_at"] = "2020-01-01T00:00:00+00:00"
    rec_path.write_text(json.dumps(rec))
    clone_run(template, d.root / "results", run)
    clone_run(template, d.root / "results", run_id(0.5))     # a newer run: the newest stays
    d2 = daemon_factory(start=False, root=d.root, extra_args=("--keep-job-days", "1"))
    d2.start()
    assert bc(d2, "prune").returncode == 0
    assert d2.job(jobs[0])["job_id"] == jobs[0], "its run is still there: the record stays"
    d2.close()
    old_run = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(time.time() - 90 * 86400))
    (d.root / "results" / run).rename(d.root / "results" / old_run)
    d3 = daemon_factory(start=False, root=d.root,
                        extra_args=("--keep-job-days", "1", "--keep-days", "30"))
    d3.start()
    wait_until(lambda: d3.get(f"/api/benchmark/jobs/{jobs[0]}").status == 404, timeout=30)
    assert not (d.root / "logs" / f"{jobs[0]}.log").exists()
    assert not rec_path.exists()


def test_kill9_in_the_middle_of_a_prune_leaves_whole_runs_or_none(template, tmp_path):
    """20 times: 50 runs due for deletion, benchd killed at a random moment of the prune.
    Every run is whole or gone, and the next start empties the trash."""
    rng = random.Random(1234)
    ids = [run_id(100, k) for k in range(50)] + [run_id(0)]
    master = tmp_path / "master"
    master.mkdir()
    for r in ids:
        clone_run(template, master, r, pad_bytes=20_000)
    for round_ in range(20):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        results = root / "results"
        subprocess.run(["cp", "-al", str(master), str(results)], check=True)  # hard links
        d = Daemon(root, extra_args=("--keep-days", "30"))
        try:
            d.start()
            time.sleep(rng.uniform(0, 0.3))   # the crash point is what is random here
            d.kill9()
            for r in ids:
                p = results / r
                assert not p.exists() or run_is_whole(p), f"round {round_}: {r} is torn"
            d.start()
            wait_until(lambda: set(listed(d)) == {ids[-1]}, timeout=60)
            wait_until(lambda: not any((results / ".trash").iterdir()), timeout=30)
        finally:
            d.close()


def test_a_full_results_disk_is_pruned_before_a_job_and_507_names_the_pins(
        tmpfs, daemon_factory, template, tmp_path):
    root = tmp_path / "root"
    results = tmpfs(root / "results", "4m")
    ids = []
    k = 0
    while True:                                        # fill it with runs
        rid = run_id(50, k)
        try:
            clone_run(template, results, rid, pad_bytes=300_000)
        except OSError:
            shutil.rmtree(results / rid, ignore_errors=True)
            break
        ids.append(rid)
        k += 1
    filler = results / "filler"                        # and the last bytes
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    filler.unlink()                                    # free a little, not enough
    with open(filler, "wb") as f:
        try:
            f.write(b"\0" * (1 << 22))
        except OSError:
            pass
    d = daemon_factory(start=False, root=root, extra_args=("--keep-runs", "2"))
    d.start()
    r = d.post_json("/api/benchmark/jobs", {})
    assert r.status == 201, r.body                     # pruned first, then started
    d.wait_job(r.json()["job_id"])
    assert len(listed(d)) < len(ids)
    assert len(listed(d)) >= 2
    # now everything left is pinned, and the disk is full again
    for rid in listed(d):
        assert d.post_json(f"/api/results/{rid}/pin", {"note": "keep"}).status == 200
    try:
        with open(results / "filler2", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    r = d.post_json("/api/benchmark/jobs", {})
    assert r.status == 507, r.body
    msg = r.error["message"]
    assert "results" in msg and "pinned" in msg, msg
    for rid in listed(d):
        assert rid in msg
