"""Interference benchmark (issue 12): does a neighbour spoil a job's ns/op?

One experiment is run by the real pipeline, `--repeats` times in each of four conditions:

  alone, pinned       a real benchd with --slots 1 --cpus 1: the job runs pinned to CPU 1
  beside, pinned      a real benchd with --slots 2 --cpus 0,1: a CPU-burning job takes CPU 0
                      (it is submitted first), the measured job is pinned to CPU 1
  alone, unpinned     `python -m pipeline` run directly, affinity {0,1}
  beside, unpinned    the same, beside a CPU burner with affinity {0,1} (no pinning at all)

and per library it prints the median ns/op of each condition (median over the repeats), the
ratio beside/alone, and the CVs: within a run (the pipeline's cv_pct over its rounds, median
over the repeats) and across the repeats (of the runs' medians). Targets: pinned ratio within
1.10 and CV < 5 %; the unpinned ratio is shown for contrast. Thread counts are fixed to 1 in
every condition (the pipeline does that itself), so the unpinned figure is the scheduler's
doing, not BLAS threads'.

    .venv/bin/python bench/isolation.py [--experiment gmst_era] [--repeats 3] [--ci]

The burner is one process spinning on the CPU (bench/isolation.py --burn STOPFILE): as a benchd
job it is this file run as the orchestrator (--orchestrator), told apart from the measured
job by its experiment (BURN_EXPERIMENT); everything else goes to the real `python -m pipeline`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BURN_EXPERIMENT = "frame_rotation_bpn"   # a burner job is submitted with this experiment
JOBS = "/api/benchmark/jobs"


def burn(stop: Path) -> int:
    """Spin until `stop` exists (checked every ~10 ms of spinning)."""
    while not stop.exists():
        t = time.perf_counter() + 0.01
        while time.perf_counter() < t:
            pass
    return 0


def as_orchestrator(argv: list[str]) -> int:
    """benchd's orchestrator: the burner for BURN_EXPERIMENT, else the real pipeline."""
    exps = argv[argv.index("--experiments") + 1] if "--experiments" in argv else ""
    if exps == BURN_EXPERIMENT:
        return burn(Path(os.environ["ISOLATION_STOP"]))
    os.execv(sys.executable, [sys.executable, "-m", "pipeline", *argv])
    return 127


def medians(run_dir: Path, experiment: str) -> dict[str, tuple[float, float]]:
    """library -> (median ns/op, within-run CV %) of one published run."""
    out = {}
    for f in sorted((run_dir / experiment).glob("*.json")):
        perf = json.loads(f.read_text()).get("perf")
        if perf:
            out[f.stem] = (perf["median_ns"], perf["cv_pct"])
    return out


def job_config(experiment: str, ci: bool) -> dict:
    return {"experiments": [experiment], "ci": ci}


def via_benchd(cpus: str, slots: int, experiment: str, ci: bool, repeats: int,
               beside: bool) -> list[dict[str, tuple[float, float]]]:
    from tests.support.daemon import Daemon, wait_until
    with tempfile.TemporaryDirectory(prefix="isobench-") as tmp:
        stop = Path(tmp) / "stop"
        d = Daemon(Path(tmp) / "root", orchestrator=[sys.executable, str(Path(__file__).resolve()),
                                                     "--as-orchestrator"],
                   extra_args=["--slots", str(slots), "--cpus", cpus],
                   env={"ISOLATION_STOP": str(stop)})
        try:
            d.start()
            burner = None
            if beside:
                burner = d.start_job(experiments=[BURN_EXPERIMENT])
                assert burner["status"] == "running" and burner["cpuset"] == [0], burner
            runs = []
            for _ in range(repeats):
                job = d.start_job(**job_config(experiment, ci))
                assert job["status"] == "running", job
                if beside:
                    assert job["cpuset"] == [1], job
                final = d.wait_job(job["job_id"], timeout=1800)
                assert final["status"] == "completed", final
                runs.append(medians(d.root / final["run_dir"], experiment))
            stop.touch()
            if burner is not None:
                d.wait_job(burner["job_id"], timeout=60)
            return runs
        finally:
            stop.touch()
            d.close()


def direct(experiment: str, ci: bool, repeats: int, beside: bool
           ) -> list[dict[str, tuple[float, float]]]:
    with tempfile.TemporaryDirectory(prefix="isobench-") as tmp:
        stop = Path(tmp) / "stop"
        burner = subprocess.Popen([sys.executable, __file__, "--burn", str(stop)]) \
            if beside else None
        try:
            runs = []
            for i in range(repeats):
                results = Path(tmp) / f"results{i}"
                argv = [sys.executable, "-m", "pipeline", "--experiments", experiment,
                        "--results-dir", str(results)] + (["--ci"] if ci else [])
                subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, check=False,
                               timeout=1800)
                published = [p for p in results.iterdir() if not p.name.startswith(".")]
                assert len(published) == 1, published
                runs.append(medians(published[0], experiment))
            return runs
        finally:
            stop.touch()
            if burner is not None:
                burner.wait(timeout=60)


def summarise(runs: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float, float]]:
    """library -> (median ns/op over repeats, median within-run CV %, CV % across repeats)."""
    out = {}
    for lib in runs[0]:
        ns = [r[lib][0] for r in runs if lib in r]
        cv = [r[lib][1] for r in runs if lib in r]
        across = 100 * statistics.stdev(ns) / statistics.mean(ns) if len(ns) > 1 else 0.0
        out[lib] = (statistics.median(ns), statistics.median(cv), across)
    return out


def main() -> int:
    if sys.argv[1:2] == ["--as-orchestrator"]:
        return as_orchestrator(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="gmst_era")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ci", action="store_true", default=True)
    p.add_argument("--full", dest="ci", action="store_false", help="the default n and rounds")
    p.add_argument("--burn", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.burn is not None:
        return burn(a.burn)
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("needs CPUs 0 and 1")
    t0 = time.monotonic()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    conds = {
        "alone pinned (cpu 1)": lambda: via_benchd("1", 1, a.experiment, a.ci, a.repeats, False),
        "beside pinned (burner cpu 0)": lambda: via_benchd("0,1", 2, a.experiment, a.ci,
                                                           a.repeats, True),
        "alone unpinned": lambda: direct(a.experiment, a.ci, a.repeats, False),
        "beside unpinned": lambda: direct(a.experiment, a.ci, a.repeats, True),
    }
    res = {}
    for name, run in conds.items():
        print(f"running: {name} ({a.repeats}x {a.experiment}{' --ci' if a.ci else ''})",
              flush=True)
        res[name] = summarise(run())
    names = list(conds)
    print(f"\n{a.experiment}, {a.repeats} runs per condition; ns/op = median over runs; "
          f"cv = within a run (median) / across runs")
    print(f"{'library':<10} " + " ".join(f"{n:>30}" for n in names)
          + f" {'pinned ratio':>13} {'unpinned ratio':>15}")
    pinned_r, unpinned_r = [], []
    for lib in res[names[0]]:
        cells = []
        for n in names:
            ns, cv, across = res[n].get(lib, (float("nan"),) * 3)
            cells.append(f"{ns:>12,.1f} cv {cv:4.1f}%/{across:4.1f}%")
        pr = res[names[1]][lib][0] / res[names[0]][lib][0]
        ur = res[names[3]][lib][0] / res[names[2]][lib][0]
        pinned_r.append(pr)
        unpinned_r.append(ur)
        print(f"{lib:<10} " + " ".join(f"{c:>30}" for c in cells) + f" {pr:>13.3f} {ur:>15.3f}")
    worst_cv = max(max(v[1], v[2]) for v in res[names[1]].values())
    print(f"\nmedian ratio beside/alone: pinned {statistics.median(pinned_r):.3f} "
          f"(target <= 1.10), unpinned {statistics.median(unpinned_r):.3f}; "
          f"worst CV beside pinned {worst_cv:.1f}% (target < 5%)")
    print(f"load average at end: {os.getloadavg()}; took {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
