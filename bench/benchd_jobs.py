"""Job-layer figures, side by side in one run (prints a table):

  start latency   JobManager.start() call -> orchestrator process running, vs a bare
                  subprocess.Popen of the same command (Popen returns once it has exec'd),
                  and vs one Python interpreter boot (the supervisor's unavoidable cost)
  cancel latency  JobManager.cancel() of a SIGTERM-obeying job -> final record, vs a bare
                  killpg(SIGTERM) + wait of the same command       (target p99 < 100 ms)
  log follow      a line written by the job -> the same line yielded by follow_log(), with
                  1 and with 50 followers                          (target p99 < 25 ms)
  history         10,000 records on disk: JobManager() + reconcile() (load + settle),
                  and list_jobs() of all of them                   (target < 100 ms)

    .venv/bin/python bench/benchd_jobs.py [--runs 30] [--history 10000]

The orchestrator is tests/support/fake_orchestrator.py (a real Python process with the real
argv), so the figures are benchd's own overhead, not the pipeline's.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchd.jobs import JobManager  # noqa: E402
from benchd.schema import JobConfig, JobList, JobRecord, Progress  # noqa: E402
from benchd.states import JobState  # noqa: E402
from pipeline.catalog import to_argv, validate_config  # noqa: E402
from tests.support import fake_orchestrator_argv, write_spec  # noqa: E402

CFG = JobConfig(experiments=["gmst_era"], ci=True)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def row(name: str, xs: list[float], unit: str = "ms") -> str:
    return (f"{name:<44} {len(xs):>5} {pct(xs, 50):>9.2f} {pct(xs, 99):>9.2f} "
            f"{max(xs):>9.2f} {unit}")


async def final(m: JobManager, job_id: str) -> JobRecord:
    rec = None
    async for rec in m.watch(job_id):
        pass
    return rec


async def wait_ready(m: JobManager, job_id: str) -> None:
    """The fake prints its first line once set up (signal dispositions in place)."""
    deadline = time.monotonic() + 10
    while m.log_size(job_id) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("orchestrator never printed")
        await asyncio.sleep(0.002)


async def bench_start_cancel(tmp: Path, runs: int) -> list[str]:
    root = tmp / "lab"
    root.mkdir()
    spec = tmp / "spec.json"
    os.environ["FAKE_ORCHESTRATOR_SPEC"] = str(spec)
    argv = [*fake_orchestrator_argv(), *to_argv(validate_config(["gmst_era"], ci=True)),
            "--results-dir", str(root / "results")]
    m = JobManager(root, orchestrator=fake_orchestrator_argv(), grace=10.0)
    await m.reconcile()

    write_spec(spec, lines=0, progress=False)
    start_mgr, start_bare, py_boot = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        rec = await m.start(CFG, uid=os.getuid(), user="bench")
        start_mgr.append((time.perf_counter() - t0) * 1e3)
        assert rec.status == JobState.RUNNING, rec
        await final(m, rec.job_id)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, process_group=0)
        start_bare.append((time.perf_counter() - t0) * 1e3)
        p.wait()
        t0 = time.perf_counter()  # what the supervisor costs at least: one interpreter boot
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        py_boot.append((time.perf_counter() - t0) * 1e3)

    write_spec(spec, lines=0, progress=False, wait_for_file=str(tmp / "never"))
    cancel_mgr, cancel_bare = [], []
    for _ in range(runs):
        rec = await m.start(CFG, uid=os.getuid(), user="bench")
        await wait_ready(m, rec.job_id)
        t0 = time.perf_counter()
        done = await m.cancel(rec.job_id, uid=os.getuid())
        cancel_mgr.append((time.perf_counter() - t0) * 1e3)
        assert done.status == JobState.CANCELLED, done
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, process_group=0)
        p.stdout.readline()  # set up
        t0 = time.perf_counter()
        os.killpg(p.pid, signal.SIGTERM)
        p.wait()
        cancel_bare.append((time.perf_counter() - t0) * 1e3)
        p.stdout.close()
    await m.close()
    return [row("start: JobManager.start() -> running", start_mgr),
            row("start: bare Popen of the same command", start_bare),
            row("start: one python boot (python -c pass)", py_boot),
            f"{'  ratio of medians, start / python boot':<44} {'':>5} "
            f"{statistics.median(start_mgr) / statistics.median(py_boot):>9.2f}x",
            row("cancel: JobManager.cancel() -> final", cancel_mgr),
            row("cancel: bare killpg(SIGTERM) + wait", cancel_bare),
            f"{'  ratio of medians, cancel / bare':<44} {'':>5} "
            f"{statistics.median(cancel_mgr) / statistics.median(cancel_bare):>9.2f}x"]


WRITER = r"""
import sys, time
n, every = int(sys.argv[1]), float(sys.argv[2])
for i in range(n):
    print("ts %d" % time.monotonic_ns(), flush=True)  # CLOCK_MONOTONIC: same clock as ours
    time.sleep(every)
"""


async def bench_follow(tmp: Path, followers: int, lines: int) -> list[float]:
    root = tmp / f"follow{followers}"
    root.mkdir()
    # the "orchestrator" writes timestamped lines; the pipeline argv it gets is ignored
    m = JobManager(root, orchestrator=[sys.executable, "-c", WRITER, str(lines), "0.01"])
    await m.reconcile()
    rec = await m.start(CFG, uid=os.getuid(), user="bench")
    lat: list[float] = []

    async def follower() -> None:
        buf = b""
        async for chunk in m.follow_log(rec.job_id, 0):
            now = time.monotonic_ns()
            *done, buf = (buf + chunk).split(b"\n")
            lat.extend((now - int(line[3:])) / 1e6 for line in done if line.startswith(b"ts "))
    await asyncio.gather(*(follower() for _ in range(followers)))
    await m.close()
    assert len(lat) == followers * lines, (len(lat), followers * lines)
    return lat


def write_history(root: Path, n: int) -> None:
    """n final records, written directly (no fsync: this is set-up, not what is measured)."""
    jobs = root / "logs" / "jobs"
    jobs.mkdir(parents=True)
    enc = msgspec.json.Encoder()
    base = time.time() - n
    for i in range(n):
        job_id = f"{i:012x}"
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i)) + ".000+00:00"
        rec = JobRecord(job_id=job_id, status=JobState.COMPLETED if i % 7 else JobState.FAILED,
                        config=JobConfig(experiments=["gmst_era", "equ_ecl"], n=1000, seed=i),
                        requester_uid=1000, requester_name="alice", created_at=created,
                        started_at=created, finished_at=created, exit_code=0 if i % 7 else 1,
                        run_dir=f"results/run-{i}", reason=None if i % 7 else "exited with code 1",
                        progress=Progress(k=2, total=2, experiment="equ_ecl", phase="published",
                                          run_id=f"run-{i}"),
                        supervisor_pid=100000 + i, supervisor_start_ticks=12345, pgid=100001 + i)
        (jobs / f"{job_id}.json").write_bytes(enc.encode(rec))


async def bench_history(tmp: Path, n: int, reps: int) -> list[str]:
    root = tmp / "history"
    write_history(root, n)
    load, listing, encode = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        m = JobManager(root)
        await m.reconcile()
        load.append((time.perf_counter() - t0) * 1e3)
        assert len(m.list_jobs()) == n
        for _ in range(10):
            t0 = time.perf_counter()
            jobs = m.list_jobs()
            listing.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            msgspec.json.encode(JobList(jobs=jobs))
            encode.append((time.perf_counter() - t0) * 1e3)
        await m.close()
    return [row(f"history: JobManager()+reconcile(), {n} jobs", load),
            row(f"history: list_jobs() of all {n}", listing),
            row(f"history: msgspec-encode JobList of {n}", encode)]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--lines", type=int, default=200, help="lines per log-follow run")
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--history-reps", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="benchd-jobs-bench-") as d:
        tmp = Path(d)
        lines = await bench_start_cancel(tmp, a.runs)
        for n in (1, 50):
            lines.append(row(f"log follow: write -> follow_log, {n} follower(s)",
                             await bench_follow(tmp, n, a.lines)))
        lines += await bench_history(tmp, a.history, a.history_reps)
    print(f"benchd job layer  (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"{'measure':<44} {'n':>5} {'p50':>9} {'p99':>9} {'max':>9}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
