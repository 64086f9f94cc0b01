"""pipeline.loader over legacy fixtures and runs the real orchestrator published."""
from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402

from pipeline import loader, schema  # noqa: E402

LEGACY = Path(__file__).parent / "fixtures" / "legacy_results"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Legacy fixtures + one real published toy run + staging and unpublished debris."""
    d = tmp_path_factory.mktemp("mixed") / "results"
    shutil.copytree(LEGACY, d)
    rc, p = pr.run(["--experiments", "gmst_era", "--n", "50", "--no-perf"], d, pr.toy_env())
    assert rc == 0, p.output
    (d / ".staging" / "2030-01-01_00-00-00").mkdir(parents=True)      # staging: ignored
    unpub = d / "2031-01-01_00-00-00"                                   # not complete
    unpub.mkdir()
    (unpub / "manifest.json").write_text('{"run_id": 1}')
    (d / "2032-01-01").symlink_to(d / "2025-06-01")                    # a link: never followed
    return d


def test_list_runs_newest_first_and_skips_malformed(mixed: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.loader"):
        runs = loader.list_runs(mixed)
    ids = [r.run_id for r in runs]
    assert ids == sorted(ids, reverse=True)
    assert ids[1:] == ["2025-06-01", "2025-05-20"]          # 2025-05-01 has nothing readable
    new = runs[0]
    assert new.layout == "v1" and new.experiments == ["gmst_era"] and new.n == 50
    assert new.libraries == len(list((mixed / new.run_id / "gmst_era").glob("*.json")))
    legacy = runs[1]
    assert legacy.layout == "legacy" and legacy.experiments == ["frame_rotation_bpn", "gmst_era"]
    assert legacy.libraries == 5 and (legacy.n, legacy.seed) == (1000, 42)
    assert runs[2].seed is None
    assert "skyfield.json" in caplog.text and "2031-01-01_00-00-00" in caplog.text


def test_load_legacy_run(mixed: Path) -> None:
    d = loader.load_run(mixed, "2025-06-01")
    assert d.layout == "legacy" and d.manifest is None
    g = d.experiments["gmst_era"].libraries
    assert set(g) == {"erfa", "astropy", "palpy"}
    assert g["astropy"].legacy and g["astropy"].accuracy.max == 0.0073
    assert g["astropy"].perf.median_ns == 731.5 and g["erfa"].role == schema.ROLE_REFERENCE
    assert g["palpy"].accuracy.p99 is None      # never recorded in the old format
    f = d.experiments["frame_rotation_bpn"].libraries
    assert set(f) == {"erfa", "novas"} and f["novas"].status == schema.LIB_SKIPPED
    assert len(d.warnings) == 2 and any("skyfield.json" in w for w in d.warnings)
    s = loader.load_run(mixed, "2025-05-20").experiments["solar_position"]
    assert s.summary_md.startswith("# solar_position") and s.libraries["de421"].role == "reference"


def test_load_v1_run(mixed: Path) -> None:
    rid = loader.latest_run_id(mixed)
    d = loader.load_run(mixed, rid)
    assert d.layout == "v1" and d.manifest.run_id == rid and d.warnings == []
    e = d.experiments["gmst_era"]
    assert e.status == schema.EXP_DONE and "| toy_close | ok |" in e.summary_md
    assert e.libraries["toy_close"].accuracy.compared == 50


@pytest.mark.parametrize("bad", ["../legacy_results", "2025-06-01/../2025-05-20", ".staging",
                                 "latest", "", "2025-06-01\n", "/etc", "2025-06-01/gmst_era"])
def test_load_refuses_path_tricks(mixed: Path, bad: str) -> None:
    with pytest.raises(loader.InvalidRunIdError):
        loader.load_run(mixed, bad)


@pytest.mark.parametrize("missing", ["1999-01-01", "2030-01-01_00-00-00", "2031-01-01_00-00-00",
                                     "2025-05-01", "2032-01-01"])
def test_unknown_staged_or_unpublished_is_not_found(mixed: Path, missing: str) -> None:
    with pytest.raises(loader.RunNotFoundError):
        loader.load_run(mixed, missing)


def test_empty_or_missing_results_dir(tmp_path: Path) -> None:
    assert loader.list_runs(tmp_path / "nope") == []
    with pytest.raises(loader.RunNotFoundError):
        loader.latest_run_id(tmp_path)


def test_a_run_removed_while_it_is_read_is_not_listed_and_not_found(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """Retention renames runs away while the API lists them. A CI run caught the rename
    landing between pathlib's is_dir() check and its scandir() inside Path.glob, which then
    raised FileNotFoundError out of the listing (a 500). That instant cannot be hit on
    purpose, so glob is made to raise exactly that for this run (the one thing simulated
    here; the files and the rest are real). Listing skips the run; loading says not found."""
    rc, p = pr.run(["--experiments", "gmst_era", "--n", "20", "--no-perf"], tmp_path,
                   pr.toy_env())
    assert rc == 0, p.output
    [run] = loader.list_runs(tmp_path)
    real_glob = Path.glob

    def glob_of_a_vanished_run(self: Path, pattern: str):  # type: ignore[no-untyped-def]
        if self.parent.name == run.run_id:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_glob(self, pattern)
    monkeypatch.setattr(Path, "glob", glob_of_a_vanished_run)
    assert loader.list_runs(tmp_path) == []
    with pytest.raises(loader.RunNotFoundError, match="removed while it was read"):
        loader.load_run(tmp_path, run.run_id)
