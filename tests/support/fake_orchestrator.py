"""A stand-in for `python -m pipeline` in benchd tests: same argv, scripted behaviour.

Accepts the real orchestrator argv (--experiments ... --n ... --seed ... --perf-rounds ...
[--no-perf] [--ci] --results-dir DIR) and reads what to do from the JSON file named by env
FAKE_ORCHESTRATOR_SPEC (all keys optional; defaults: a short successful run):
  lines: int            plain log lines to print ("line <i> of <n>")
  lines_per_s: float    pace of those lines (0 = as fast as possible)
  progress: bool        emit pipeline progress lines (start / experiment_done per experiment,
                        then "published" with a run_dir)  [default true]
  wait_for_file: str    block (polling 5 ms) until this path exists: holds a job running
                        without sleeps in the test
  sleep_s: float        then sleep this long
  ignore_sigterm: bool  SIG_IGN for SIGTERM (a job that must be SIGKILLed)
  double_fork: bool     leave a setsid'd grandchild that sleeps for an hour (escapes the group)
  grandchild_env_empty: bool   ...and exec it with an empty environment (no job marks at all)
  grandchild_tag: str   put this word in the grandchild's argv (a test finds it by it)
  exit_code: int        exit status at the end
  stderr_line: str      one line printed to stderr just before exiting
  staging: bool         stage the run in <results-dir>/.staging/<run id>/ as the pipeline
                        does (moved to <results-dir>/<run id> when published, else left)
Like the pipeline (pipeline.checkpoint), it honours a checkpoint request at each experiment
boundary after the first experiment (exit 75, staged run kept, marked CHECKPOINTED_MARK).
`--resume RUN` finishes run RUN (one experiment, "resumed"; its staged directory is
published), following the rest of the spec, when RUN is one it checkpointed itself or the
spec says
  resume_ok: bool       resume any run id
and is refused otherwise (exit 2, like an un-resumable run).

  per_experiment: {name: {...}}  keys above for a job whose first experiment is `name`
                        (two jobs of one daemon behaving differently)
  report_to: str        write {"affinity": [...], "env": {thread vars}} as JSON to this path
                        (+ the job id) at the start: what the job was really given
  allocate_mb: int      allocate (and touch) this many MiB, then hold them until the end;
                        a MemoryError is not caught (Python reports it as any program would)
  burn_cpu_s: float     spin on the CPU for this much process CPU time
It is the real thing a test needs: a real process with a real pid, group, signals and output.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import checkpoint, progress  # noqa: E402  (stdlib-only modules)

SPEC_ENV = "FAKE_ORCHESTRATOR_SPEC"
CHECKPOINTED_MARK = ".fake-checkpointed"


def _spec() -> dict:
    path = os.environ.get(SPEC_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def _double_fork(empty_env: bool = False, tag: str = "") -> None:
    """Leave a grandchild in its own session that outlives us unless someone kills it
    (with `empty_env`, it carries none of the environment it inherited)."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            # grandchild: an hour of nothing, marked in argv for anyone scanning /proc
            argv = [sys.executable, "-c", "import time; time.sleep(3600)"
                    f"  # fake-orchestrator-grandchild {tag}"]
            os.execve(sys.executable, argv, {} if empty_env else dict(os.environ))
        os._exit(0)
    os.waitpid(pid, 0)


def _new_run_id(results_dir: Path) -> str:
    """A time-based run id no other run in results_dir has (two jobs in one second: _01)."""
    base = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
    for n in range(100):
        run_id = base if n == 0 else f"{base}_{n:02d}"
        if not ((results_dir / run_id).exists()
                or (results_dir / ".staging" / run_id).exists()):
            return run_id
    return base


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fake_orchestrator")
    p.add_argument("--resume", default=None)
    resume = "--resume" in (sys.argv[1:] if argv is None else argv)
    p.add_argument("--experiments", required=not resume, default="resumed")
    p.add_argument("--n", type=int, required=not resume, default=0)
    p.add_argument("--seed", type=int, required=not resume, default=0)
    p.add_argument("--perf-rounds", type=int, required=not resume, default=0)
    p.add_argument("--no-perf", action="store_true")
    p.add_argument("--ci", action="store_true")
    p.add_argument("--results-dir", required=True, type=Path)
    a = p.parse_args(argv)
    spec = _spec()
    marked = a.resume is not None and (a.results_dir / ".staging" / a.resume
                                       / CHECKPOINTED_MARK).exists()
    if a.resume is not None and not (spec.get("resume_ok") or marked):
        print(f"fake orchestrator: --resume {a.resume} refused (spec has no resume_ok)",
              flush=True)
        return 2

    spec.update(spec.get("per_experiment", {}).get(a.experiments.split(",")[0], {}))
    if spec.get("report_to"):
        names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMEXPR_NUM_THREADS", "BENCHD_JOB_CPUS")
        report = {"affinity": sorted(os.sched_getaffinity(0)),
                  "env": {k: os.environ.get(k) for k in names}}
        out = Path(f"{spec['report_to']}.{os.environ.get('BENCHD_JOB_ID', 'x')}")
        tmp = Path(f"{out}.tmp")
        tmp.write_text(json.dumps(report))
        os.rename(tmp, out)
    held = bytearray(int(spec["allocate_mb"]) << 20) if spec.get("allocate_mb") else None
    if held is not None:
        held[::4096] = b"x" * len(held[::4096])   # touch every page: resident, not just reserved
    if spec.get("burn_cpu_s"):
        until = time.process_time() + float(spec["burn_cpu_s"])
        while time.process_time() < until:
            pass
    if spec.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if spec.get("double_fork"):
        _double_fork(bool(spec.get("grandchild_env_empty")), str(spec.get("grandchild_tag", "")))
    experiments = a.experiments.split(",")
    run_id = a.resume or _new_run_id(a.results_dir)
    print(f"fake orchestrator pid {os.getpid()}: experiments={a.experiments} n={a.n} "
          f"seed={a.seed} perf_rounds={a.perf_rounds} resume={a.resume}", flush=True)
    emit = spec.get("progress", True)
    staging_dir = a.results_dir / ".staging" / run_id
    if spec.get("staging"):
        staging_dir.mkdir(parents=True, exist_ok=True)
    total = len(experiments)
    if emit:
        progress.emit("start", run_id=run_id, k=1, total=total, experiment=experiments[0])
    n_lines = int(spec.get("lines", 3))
    rate = float(spec.get("lines_per_s", 0) or 0)
    for i in range(n_lines):
        print(f"line {i} of {n_lines}", flush=True)
        if rate:
            time.sleep(1.0 / rate)
    if spec.get("wait_for_file"):
        target = Path(spec["wait_for_file"])
        while not target.exists():
            time.sleep(0.005)
    if spec.get("sleep_s"):
        time.sleep(float(spec["sleep_s"]))
    if emit:
        for k, exp in enumerate(experiments, 1):
            if k > 1 and checkpoint.requested():
                staging_dir.mkdir(parents=True, exist_ok=True)
                (staging_dir / CHECKPOINTED_MARK).touch()
                progress.emit("checkpointed", run_id=run_id, k=k - 1, total=total)
                return checkpoint.EXIT_CHECKPOINTED
            progress.emit("experiment_done", run_id=run_id, k=k, total=total, experiment=exp)
    code = int(spec.get("exit_code", 0))
    if emit and code == 0:
        run_dir = a.results_dir / run_id
        if staging_dir.is_dir():
            os.rename(staging_dir, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        progress.emit("published", run_id=run_id, k=total, total=total,
                      run_dir=f"results/{run_id}")
    if spec.get("stderr_line"):
        print(spec["stderr_line"], file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
