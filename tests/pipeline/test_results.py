"""Run ids, staging, publish and resume on real directories (and real racing processes)."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline import results, schema

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _claim_one(args: tuple[str, float]) -> str:
    results_dir, _ = args
    s = results.claim_run(Path(results_dir), NOW)
    return s.run_id   # lock released at process exit; the staging dir stays claimed


def test_concurrent_claims_in_one_second_are_unique_and_sorted(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        ids = pool.map(_claim_one, [(str(tmp_path), 0.0)] * 16)
    assert len(set(ids)) == 16
    assert sorted(ids)[0] == "2026-01-02_03-04-05"
    assert sorted(ids)[1:] == [f"2026-01-02_03-04-05_{i:02d}" for i in range(2, 17)]
    assert all(results.RUN_ID_RE.fullmatch(i) for i in ids)
    # lexicographic order is start order: a later second sorts after every suffix
    assert max(ids) < "2026-01-02_03-04-06"


def test_claim_never_reuses_a_published_id(tmp_path: Path) -> None:
    (tmp_path / "2026-01-02_03-04-05").mkdir()
    s = results.claim_run(tmp_path, NOW)
    assert s.run_id == "2026-01-02_03-04-05_02"
    s.close()


def _manifest(run_id: str) -> schema.Manifest:
    cfg = schema.RunConfigRecord(experiments=["gmst_era"], n=1, seed=0, perf_rounds=1,
                                 no_perf=True, ci=False, worker_timeout_s=10)
    md = schema.Metadata(utc_time="t", hostname="h", cpu_model="c", cores=1, os="o", python="p",
                         numpy="n", git_sha=None, git_dirty=None, adapter_versions={}, seed=0,
                         argv=[])
    return schema.Manifest(run_id=run_id, status=schema.RUN_RUNNING, created_at="t", config=cfg,
                           metadata=md)


def test_publish_is_one_rename_without_scratch(tmp_path: Path) -> None:
    s = results.claim_run(tmp_path, NOW)
    s.write_manifest(_manifest(s.run_id))
    (s.work_dir("gmst_era", "erfa") / "outputs.npy").write_bytes(b"x")
    (s.begin_experiment("gmst_era") / "erfa.json").write_text("{}")
    s.commit_experiment("gmst_era")
    s.begin_experiment("equ_ecl")       # never committed: must not be published
    final = s.publish()
    s.close()
    assert final == tmp_path / s.run_id
    assert sorted(p.name for p in final.iterdir()) == ["gmst_era", "manifest.json"]
    assert not (tmp_path / ".staging" / s.run_id).exists()


def test_publish_never_replaces(tmp_path: Path) -> None:
    s = results.claim_run(tmp_path, NOW)
    (tmp_path / s.run_id).mkdir()       # someone else's run appeared under our id
    (tmp_path / s.run_id / "keep").write_text("theirs")
    with pytest.raises(FileExistsError):
        s.publish()
    assert (tmp_path / s.run_id / "keep").read_text() == "theirs"
    s.close()


def test_resume_locks_and_drops_unrecorded_experiments(tmp_path: Path) -> None:
    s = results.claim_run(tmp_path, NOW)
    m = _manifest(s.run_id)
    s.write_manifest(m)
    s.begin_experiment("gmst_era")
    with pytest.raises(results.ResumeError, match="another orchestrator"):
        results.open_for_resume(tmp_path, s.run_id)   # s still holds the lock
    s.close()
    r, m2 = results.open_for_resume(tmp_path, s.run_id)
    assert m2.run_id == s.run_id and not (r.path / "gmst_era.partial").exists()
    r.close()
    for bad in ("../x", "2026-01-02", "", "2026-01-02_03-04-05/../../etc"):
        with pytest.raises(results.ResumeError, match="not a run id"):
            results.open_for_resume(tmp_path, bad)


def test_check_results_dir(tmp_path: Path) -> None:
    d = results.check_results_dir(tmp_path / "new" / "results")
    assert (d / ".staging").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(results.ResultsDirError, match="not writable"):
        results.check_results_dir(tmp_path / "file" / "results")
