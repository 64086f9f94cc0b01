"""Damaged results under a real benchd: runs published by the real pipeline, then broken the
ways disks and people break them. /api/results keeps answering (the damaged runs are
skipped or refused, never a 500), and nothing outside results/ is ever read."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tests.hostile.rawhttp import call
from tests.support.daemon import Daemon

RUN = "2026-01-0{}_00-00-00"
LEGACY = Path(__file__).resolve().parents[1] / "pipeline" / "fixtures" / "legacy_results"


def test_damaged_runs_are_skipped_or_refused_never_a_500(daemon_factory) -> None:
    d: Daemon = daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"])
    final = d.wait_job(d.start_job(experiments=["gmst_era"], ci=True, no_perf=True)["job_id"],
                       timeout=240)
    assert final["status"] == "completed", final
    results = d.root / "results"
    good = results / final["run_dir"].split("/")[-1]
    manifest = (good / "manifest.json").read_bytes()
    outside = d.root / "outside"
    (outside / "gmst_era").mkdir(parents=True)
    (outside / "gmst_era" / "summary.md").write_text("OUTSIDE-SECRET\n")

    def clone(i: int) -> os.PathLike:
        dst = results / RUN.format(i)
        shutil.copytree(good, dst)
        return dst

    clone(1)                                                     # an intact copy
    (clone(2) / "manifest.json").write_bytes(manifest[: len(manifest) // 2])  # truncated
    (clone(3) / "manifest.json").write_bytes(os.urandom(512))    # garbage
    (clone(4) / "manifest.json").unlink()                        # missing
    lib = next((clone(5) / "gmst_era").glob("*.json"))
    lib.write_bytes(b"\x00" * 100)                               # one library file zeroed
    m = json.loads(manifest)                                     # an experiment path escaping
    m["experiments"] = {"../../outside/gmst_era": next(iter(m["experiments"].values()))}
    (clone(6) / "manifest.json").write_text(json.dumps(m))
    (results / RUN.format(7)).symlink_to(outside)                # a run that is a symlink
    (results / RUN.format(8)).write_text("not a dir")            # a file named like a run
    (results / "2026-01-09").mkdir()                             # legacy layout, garbage
    (results / "2026-01-09" / "gmst_era").mkdir()
    (results / "2026-01-09" / "gmst_era" / "erfa.json").write_bytes(b"{]")

    r = call(d.socket_path, "GET", "/api/results")
    assert r.status == 200, r.body[:500]
    listed = [x["run_id"] for x in r.json()["runs"]]
    assert good.name in listed and RUN.format(1) in listed
    for bad in (2, 3, 4, 7, 8):
        assert RUN.format(bad) not in listed, bad
    for run in [RUN.format(i) for i in range(1, 9)] + ["2026-01-09", "latest", good.name]:
        r = call(d.socket_path, "GET", f"/api/results/{run}")
        assert r.status in (200, 404), (run, r.status, r.body[:300])
        assert b"OUTSIDE-SECRET" not in r.body, run
        if r.status == 404:
            assert set(r.json()["error"]) == {"code", "message"}
    assert call(d.socket_path, "GET", f"/api/results/{good.name}").status == 200
    assert call(d.socket_path, "GET", f"/api/results/{RUN.format(6)}").status == 404
    assert "unexpected error" not in d.stderr_text()  # no 500 was logged


def test_huge_fifo_and_linked_results_files_are_skipped_not_read(daemon_factory) -> None:
    """Results files that are a 1 TiB sparse file, a symlink to /dev/zero, or a FIFO (a
    manifest, a summary): /api/results neither exhausts benchd's memory nor hangs on them;
    the run around them is served with a warning naming each, the others as before."""
    d: Daemon = daemon_factory()
    results = d.root / "results"
    shutil.copytree(LEGACY, results, dirs_exist_ok=True)
    exp = results / "2025-05-20" / "solar_position"
    (exp / "summary.md").unlink()
    os.mkfifo(exp / "summary.md")
    with open(exp / "huge.json", "wb") as f:
        f.truncate(1 << 40)                                      # sparse: no disk used
    (exp / "zero.json").symlink_to("/dev/zero")
    (results / RUN.format(1)).mkdir()
    os.mkfifo(results / RUN.format(1) / "manifest.json")        # a run whose manifest is a FIFO

    r = call(d.socket_path, "GET", "/api/results", timeout=30)
    assert r.status == 200, r.body[:500]
    listed = [x["run_id"] for x in r.json()["runs"]]
    assert "2025-05-20" in listed and "2025-06-01" in listed and RUN.format(1) not in listed
    r = call(d.socket_path, "GET", "/api/results/2025-05-20", timeout=30)
    assert r.status == 200, r.body[:500]
    run = r.json()
    solar = run["experiments"]["solar_position"]
    assert sorted(solar["libraries"]) == ["de421", "erfa"] and solar["summary_md"] is None
    warnings = "\n".join(run["warnings"])
    assert "huge.json: larger than 16 MiB" in warnings and "zero.json is a symlink" in warnings
    assert call(d.socket_path, "GET", f"/api/results/{RUN.format(1)}", timeout=30).status == 404
    assert "unexpected error" not in d.stderr_text()
