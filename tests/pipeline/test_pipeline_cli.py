"""Bad input is refused before any work: exit 2, a message naming the bad value, no files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402

from pipeline import catalog  # noqa: E402


@pytest.mark.parametrize("args, words", [
    (["--experiments", "gmst_era,warp_drive"], ["--experiments", "'warp_drive'"]),
    (["--experiments", ""], ["--experiments"]),
    (["--n", "0"], ["--n", "got 0"]),
    (["--n", str(catalog.N_MAX + 1)], ["--n", f"got {catalog.N_MAX + 1}"]),
    (["--n", "many"], ["--n", "'many'"]),
    (["--seed", "-1"], ["--seed", "got -1"]),
    (["--perf-rounds", "0"], ["--perf-rounds", "got 0"]),
    (["--worker-timeout", "-3"], ["--worker-timeout", "-3"]),
    (["--max-perf-seconds", "0"], ["--max-perf-seconds", "got 0.0"]),
    (["--max-perf-seconds", "5000"], ["--max-perf-seconds", "got 5000.0"]),
    (["--bogus"], ["--bogus"]),
])
def test_bad_input_exits_2_naming_the_value(tmp_path: Path, args: list[str],
                                            words: list[str]) -> None:
    results = tmp_path / "results"
    rc, p = pr.run(args, results, pr.toy_env(), timeout=60)
    assert rc == 2, p.output
    for w in words:
        assert w in p.output, p.output
    assert not results.exists()          # refused before any work


def test_unwritable_results_dir_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc, p = pr.run(["--experiments", "gmst_era"], blocker / "results", pr.toy_env(), timeout=60)
    assert rc == 2 and "--results-dir" in p.output and str(blocker) in p.output, p.output


def test_help_documents_exit_codes() -> None:
    rc, p = pr.run(["--help"], Path("results"), pr.toy_env(), timeout=60)
    assert rc == 0 and "--resume" in p.output and "--experiments" in p.output
    assert "Exit codes:" in p.output and "143 SIGTERM" in p.output
