"""The orchestrator end to end on real subprocesses, with the toy registry
(fixtures/toy_registry.py) standing in for libraries that crash, panic, hang or are missing."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402
import toy_registry  # noqa: E402

from pipeline import schema  # noqa: E402


def _lib(run: Path, exp: str, lib: str) -> schema.LibraryResult:
    return msgspec.json.decode((run / exp / f"{lib}.json").read_bytes(), type=schema.LibraryResult)


def _manifest(run: Path) -> schema.Manifest:
    return msgspec.json.decode((run / "manifest.json").read_bytes(), type=schema.Manifest)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, pr.Pipeline, Path]:
    """One accuracy-only toy run over a good experiment and one whose reference crashes."""
    results = tmp_path_factory.mktemp("toy") / "results"
    rc, p = pr.run(["--experiments", "gmst_era,equ_ecl", "--n", "400", "--seed", "7",
                    "--no-perf"], results, pr.toy_env())
    runs = pr.published(results)
    assert len(runs) == 1, p.output
    return rc, p, runs[0]


def test_failures_are_recorded_not_fatal(toy_run: tuple[int, pr.Pipeline, Path]) -> None:
    rc, p, run = toy_run
    crash = _lib(run, "gmst_era", "toy_crash")
    assert crash.status == schema.LIB_FAILED and "SIGABRT" in crash.reason
    panic = _lib(run, "gmst_era", "toy_panic")
    assert panic.status == schema.LIB_FAILED and "PanicException" in panic.reason
    assert "Ut1HorizonExceeded" in panic.reason
    skip = _lib(run, "gmst_era", "toy_unavailable")
    assert skip.status == schema.LIB_SKIPPED and "not installed" in skip.reason
    # the libraries after the crash still ran, and what they printed is kept
    close = _lib(run, "gmst_era", "toy_close")
    assert close.status == schema.LIB_OK and "a library warning on stderr" in close.log_tail
    assert _lib(run, "gmst_era", "toyref").log_tail is None
    # a crashing reference fails its experiment (exit 1) but the run is still published
    assert rc == 1, p.output
    m = _manifest(run)
    assert m.status == schema.RUN_COMPLETE
    assert m.experiments["equ_ecl"].status == schema.EXP_FAILED
    assert m.experiments["gmst_era"].status == schema.EXP_DONE
    assert "reference toy_crash failed" in _lib(run, "equ_ecl", "toy_close").warnings[0]
    summary = (run / "gmst_era" / "summary.md").read_text()
    assert "| toy_crash | failed |" in summary and "## Parity matrix" in summary


def test_accuracy_numbers_match_an_independent_computation(
        toy_run: tuple[int, pr.Pipeline, Path]) -> None:
    _, _, run = toy_run
    x = toy_registry.EXPERIMENTS["gmst_era"].generate_inputs(400, 7)["x"]
    err = 1e-3 * x   # toy_close is off by 1e-6 * x in both columns; error unit is 1e-3 of that
    acc = _lib(run, "gmst_era", "toy_close").accuracy
    assert acc is not None and acc.compared == 400 and acc.nan_count == 0
    assert acc.p50 == pytest.approx(np.percentile(err, 50), rel=1e-6)
    assert acc.p99 == pytest.approx(np.percentile(err, 99), rel=1e-6)
    assert acc.max == pytest.approx(err.max(), rel=1e-6)
    assert acc.rms == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-6)
    worst = acc.worst[0]
    assert worst.index == int(np.argmax(x)) and worst.inputs["x"] == pytest.approx(x.max())


def test_domain_and_failed_cases_are_counted(toy_run: tuple[int, pr.Pipeline, Path]) -> None:
    _, _, run = toy_run
    inp = toy_registry.EXPERIMENTS["gmst_era"].generate_inputs(400, 7)
    dom = _lib(run, "gmst_era", "toy_domain")
    outside = int((inp["x"] < 0.25).sum())
    assert outside > 0
    # toy_domain.compute raises if an out-of-domain case reaches it: status ok proves the mask
    assert dom.status == schema.LIB_OK
    assert (dom.domain.out_of_domain, dom.domain.in_domain) == (outside, 400 - outside)
    assert dom.accuracy.compared == 400 - outside
    nowhere = _lib(run, "gmst_era", "toy_nowhere")
    assert nowhere.status == schema.LIB_OK, nowhere.reason
    assert (nowhere.domain.in_domain, nowhere.domain.out_of_domain) == (0, 400)
    assert nowhere.accuracy.compared == 0 and nowhere.accuracy.max is None
    nan = _lib(run, "gmst_era", "toy_nan")
    bad = int((inp["y"] < -0.9).sum())
    assert bad > 0 and nan.domain.failed == bad and nan.accuracy.nan_count == bad
    assert all(w.error is None for w in nan.accuracy.worst)   # NaN ranks worst


def test_progress_lines(toy_run: tuple[int, pr.Pipeline, Path]) -> None:
    _, p, run = toy_run
    phases = [(e["phase"], e["k"], e["experiment"]) for e in p.progress]
    assert phases[0] == ("start", 0, None)
    assert ("experiment_done", 1, "gmst_era") in phases
    assert ("experiment_done", 2, "equ_ecl") in phases
    last = p.progress[-1]
    assert last["phase"] == "published" and last["total"] == 2
    assert last["run_dir"].endswith(run.name) and {e["run_id"] for e in p.progress} == {run.name}
    assert "[1/2] gmst_era · toy_close: ok" in p.output   # the human-readable line


def test_perf_statistics(tmp_path: Path) -> None:
    rc, p = pr.run(["--experiments", "kepler_solver", "--n", "300", "--perf-rounds", "4"],
                   tmp_path, pr.toy_env())
    assert rc == 0, p.output
    run = pr.published(tmp_path)[0]
    ref, cand = _lib(run, "kepler_solver", "toyref"), _lib(run, "kepler_solver", "toy_close")
    for r in (ref, cand):
        perf = r.perf
        assert perf.rounds >= 4 and perf.ops_per_call == 300   # adaptive: 4 at least
        assert len(perf.samples_ns) == perf.rounds and perf.ci_low_ns <= perf.median_ns
        assert perf.min_ns <= perf.median_ns <= perf.max_ns
        # inner repeats were scaled so a round lasts >= ~20 ms
        assert perf.inner_repeats * perf.call_ns >= 15e6
        assert r.peak_rss_kb and r.peak_rss_kb > 10_000
    assert ref.speed_ratio == 1.0
    assert cand.speed_ratio == pytest.approx(cand.perf.median_ns / ref.perf.median_ns)


def test_same_seed_same_numbers_other_seed_differs(tmp_path: Path) -> None:
    def acc(results: Path, seed: str) -> list:
        rc, p = pr.run(["--experiments", "gmst_era", "--n", "200", "--seed", seed, "--no-perf"],
                       results, pr.toy_env())
        assert rc == 0, p.output
        run = pr.published(results)[-1]
        return [msgspec.to_builtins(_lib(run, "gmst_era", lib).accuracy)
                for lib in ("toy_close", "toy_domain", "toy_nan")]
    a, b = acc(tmp_path / "a", "5"), acc(tmp_path / "b", "5")
    assert a == b
    assert acc(tmp_path / "c", "6") != a


def test_worker_timeout_is_a_recorded_failure(tmp_path: Path) -> None:
    # long enough for the other workers to start on a loaded machine, far below the sleep
    rc, p = pr.run(["--experiments", "kepler_solver", "--n", "10", "--no-perf",
                    "--worker-timeout", "4"], tmp_path, pr.toy_env(TOY_SLOW_SECONDS="60"))
    assert rc == 0, p.output
    slow = _lib(pr.published(tmp_path)[0], "kepler_solver", "toy_slow")
    assert slow.status == schema.LIB_FAILED and "timed out after 4 s" in slow.reason
    assert slow.worker_s < 30


def test_sigterm_publishes_nothing_then_resume_completes(tmp_path: Path) -> None:
    args = ["--experiments", "gmst_era,kepler_solver", "--n", "100", "--seed", "3", "--no-perf"]
    with pr.Pipeline(args, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e["phase"] == "adapter" and e["adapter"] == "toy_slow")
        worker = pr.wait_until(lambda: pr.children_of(p.proc.pid), 10, what="worker process")[0]
        assert os.getpgid(worker) == p.pgid        # workers live in the orchestrator's group
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        assert p.wait(30) == 143, p.output
        assert time.monotonic() - t0 < 10
        pr.wait_until(lambda: not p.group_alive(), 10, what="worker killed")
        assert p.progress[-1]["phase"] == "interrupted"
    assert pr.published(tmp_path) == []
    [stage] = pr.staged(tmp_path)
    m = _manifest(stage)
    assert m.status == schema.RUN_INTERRUPTED and "SIGTERM" in m.reason
    assert list(m.experiments) == ["gmst_era"]          # checkpointed before the signal
    # run by hand, the hint names this interpreter, not a bare `python` (maybe another one)
    hint = p.output.split("finish it with: ", 1)[1].split()
    assert os.path.samefile(hint[0], pr.PYTHON) and hint[1:4] == ["-m", "pipeline",
                                                                  "--results-dir"], p.output
    kept = (stage / "gmst_era" / "toy_close.json").read_bytes()

    rc, p2 = pr.run(["--resume", stage.name], tmp_path, pr.toy_env())
    assert rc == 0, p2.output
    [run] = pr.published(tmp_path)
    assert run.name == stage.name and pr.staged(tmp_path) == []
    assert (run / "gmst_era" / "toy_close.json").read_bytes() == kept   # not redone
    assert "already done" in p2.output
    kept_line = next(e for e in p2.progress if e["phase"] == "experiment_done")
    assert (kept_line["experiment"], kept_line["k"], kept_line.get("kept")) == ("gmst_era", 1, True)
    m = _manifest(run)
    assert m.status == schema.RUN_COMPLETE and list(m.experiments) == ["gmst_era", "kepler_solver"]
    assert (m.config.n, m.config.seed, m.config.no_perf) == (100, 3, True)
    assert len(m.resumed_at) == 1
    assert _lib(run, "kepler_solver", "toy_slow").status == schema.LIB_OK
    assert not any(p.name.startswith(".") for p in run.iterdir())   # no scratch published


def test_sigint_exits_130(tmp_path: Path) -> None:
    with pr.Pipeline(["--experiments", "kepler_solver", "--n", "10", "--no-perf"], tmp_path,
                     pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e["adapter"] == "toy_slow")
        p.proc.send_signal(signal.SIGINT)
        assert p.wait(30) == 130, p.output
    assert pr.published(tmp_path) == []
    assert _manifest(pr.staged(tmp_path)[0]).status == schema.RUN_INTERRUPTED


@pytest.mark.parametrize("phase", ["start", "inputs", "reference", "adapter"])
def test_sigterm_to_the_orchestrator_alone_at_any_phase_stops_the_run_and_its_worker(
        tmp_path: Path, phase: str) -> None:
    """Only the orchestrator gets the signal (as from `kill PID`), at a moment that falls
    before, during or after a worker spawn: it must kill its worker itself and never hang."""
    with pr.Pipeline(["--experiments", "kepler_solver", "--n", "10", "--no-perf"], tmp_path,
                     pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e["phase"] == phase)
        p.proc.send_signal(signal.SIGTERM)
        assert p.wait(30) == 143, p.output
        pr.wait_until(lambda: not p.group_alive(), 10, what="worker gone with the orchestrator")
    assert pr.published(tmp_path) == []
    assert _manifest(pr.staged(tmp_path)[0]).status == schema.RUN_INTERRUPTED


def test_two_orchestrators_in_the_same_second_publish_two_runs(tmp_path: Path) -> None:
    args = ["--experiments", "gmst_era", "--n", "20", "--no-perf"]
    for _attempt in range(5):
        results = tmp_path / f"r{_attempt}"
        # start both just after a second boundary so they claim their id in the same second
        pr.wait_until(lambda: time.time() % 1.0 < 0.05, 2, interval=0.002)
        a = pr.Pipeline(args, results, pr.toy_env())
        b = pr.Pipeline(args, results, pr.toy_env())
        try:
            assert a.wait(60) == 0 and b.wait(60) == 0, a.output + b.output
        finally:
            a.close()
            b.close()
        runs = [r.name for r in pr.published(results)]
        assert len(runs) == 2 and pr.staged(results) == []
        if runs[0][:19] == runs[1][:19]:
            assert runs[1] == runs[0] + "_02"
            ids = {e["run_id"] for e in a.progress} | {e["run_id"] for e in b.progress}
            assert ids == set(runs)
            return
    pytest.fail("could not start two orchestrators within one second in 5 attempts")


def test_resume_refusals(tmp_path: Path) -> None:
    rc, p = pr.run(["--experiments", "gmst_era", "--n", "10", "--no-perf"], tmp_path,
                   pr.toy_env())
    done = pr.published(tmp_path)[0].name
    for rid, words in [(done, "already published"), ("2020-01-01_00-00-00", "no staged run"),
                       ("../../etc", "not a run id"), (".staging", "not a run id")]:
        rc, p = pr.run(["--resume", rid], tmp_path, pr.toy_env())
        assert rc == 2 and words in p.output, p.output
    rc, p = pr.run(["--resume", done, "--n", "5"], tmp_path, pr.toy_env())
    assert rc == 2 and "--n" in p.output


def test_sigterm_to_the_whole_group_as_a_supervisor_sends_it(tmp_path: Path) -> None:
    with pr.Pipeline(["--experiments", "kepler_solver", "--n", "10", "--no-perf"], tmp_path,
                     pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e["adapter"] == "toy_slow")
        os.killpg(p.pgid, signal.SIGTERM)
        assert p.wait(30) == 143, p.output
        pr.wait_until(lambda: not p.group_alive(), 10, what="group gone")
    assert pr.published(tmp_path) == []
    m = _manifest(pr.staged(tmp_path)[0])
    assert m.status == schema.RUN_INTERRUPTED and m.experiments == {}


def test_a_checkpoint_request_stops_at_the_next_boundary_and_resume_finishes(
        tmp_path: Path) -> None:
    """pipeline.checkpoint: the request file seen at the boundary after the experiment in
    progress: exit 75, that experiment kept in the staged run, nothing published; a resume
    runs only what is missing and publishes the same run."""
    request = tmp_path / "checkpoint.request"
    results = tmp_path / "results"
    results.mkdir()
    args = ["--experiments", "kepler_solver,precession", "--n", "50", "--seed", "3", "--no-perf"]
    env = pr.toy_env(TOY_SLOW_SECONDS="1", PIPELINE_CHECKPOINT_REQUEST=str(request))
    with pr.Pipeline(args, results, env) as p:
        p.wait_progress(lambda e: e["phase"] == "adapter" and e["adapter"] == "toy_slow")
        request.touch()                              # during the first experiment
        assert p.wait(60) == 75, p.output
        assert p.progress[-1]["phase"] == "checkpointed"
    assert pr.published(results) == []
    [stage] = pr.staged(results)
    m = _manifest(stage)
    assert m.status == schema.RUN_INTERRUPTED and "checkpointed" in m.reason
    assert list(m.experiments) == ["kepler_solver"]  # finished, then stopped at the boundary
    kept = (stage / "kepler_solver" / "toy_slow.json").read_bytes()
    request.unlink()
    rc, p2 = pr.run(["--resume", stage.name], results, env)
    assert rc == 0, p2.output
    [run] = pr.published(results)
    assert run.name == stage.name
    assert (run / "kepler_solver" / "toy_slow.json").read_bytes() == kept   # not redone


def test_a_checkpoint_request_during_the_last_experiment_publishes(tmp_path: Path) -> None:
    request = tmp_path / "checkpoint.request"
    results = tmp_path / "results"
    results.mkdir()
    args = ["--experiments", "gmst_era,kepler_solver", "--n", "50", "--seed", "3", "--no-perf"]
    env = pr.toy_env(TOY_SLOW_SECONDS="1", PIPELINE_CHECKPOINT_REQUEST=str(request))
    with pr.Pipeline(args, results, env) as p:
        p.wait_progress(lambda e: e["phase"] == "adapter" and e["adapter"] == "toy_slow")
        request.touch()                              # no boundary is left before publishing
        assert p.wait(60) == 0, p.output
    assert len(pr.published(results)) == 1 and pr.staged(results) == []

def test_run_records_its_cpus_threads_and_cost(toy_run: tuple[int, pr.Pipeline, Path]) -> None:
    """Metadata and summary.md say where the run was pinned (its affinity, which benchd sets
    per job) and with how many BLAS/OpenMP threads; the manifest says what it cost."""
    _, p, run = toy_run
    meta = _manifest(run).metadata
    assert meta.cpuset == sorted(os.sched_getaffinity(0))   # inherited from this process
    assert set(meta.thread_env.values()) == {"1"}
    assert meta.cpu_time_s is not None and meta.cpu_time_s > 0
    assert meta.peak_rss_bytes is not None and meta.peak_rss_bytes > 10 << 20
    cpus = ",".join(map(str, meta.cpuset))
    assert f"Ran on: CPUs {cpus} (affinity) · threads 1 " in \
        (run / "gmst_era" / "summary.md").read_text()
