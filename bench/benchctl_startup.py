"""benchctl start-up cost, side by side in one run: `benchctl status` / `benchctl history`
(the console script as users run it, against a real benchd; `status` once more from the lab
root's results/ without $BENCHD_SOCKET, so the socket is found and checked) vs
`supervisorctl status` (Debian's supervisor, a real supervisord with two programs on a Unix
socket) vs the bare interpreter (`python -I -S -c pass`, same interpreter as benchctl's).

Runs are interleaved (one of each per round) so drift hits every command alike. Target:
median of benchctl status/history <= 1/3 of supervisorctl status's.

    .venv/bin/python bench/benchctl_startup.py [--runs 30] [--jobs 50] [--no-install]
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchd.schema import JobConfig, JobRecord, Progress  # noqa: E402
from benchd.states import JobState  # noqa: E402
from benchd.store import Store  # noqa: E402
from tests.support.daemon import Daemon, wait_until  # noqa: E402

VENV_BIN = Path(sys.executable).parent
BENCHCTL = VENV_BIN / "benchctl"
PYTHON = VENV_BIN / "python"

SUPERVISOR_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock
[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=false
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
[program:sleeper_a]
command=sleep 3600
[program:sleeper_b]
command=sleep 3600
"""


def ensure_supervisor(install: bool) -> str:
    found = shutil.which("supervisorctl")
    if found or not install:
        if not found:
            sys.exit("supervisorctl not found (apt-get install -y supervisor, or drop --no-install)")
        return found
    print("installing Debian's supervisor package (apt-get install -y supervisor) ...")
    cmd = ["apt-get", "install", "-y", "-q", "supervisor"]
    if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    found = shutil.which("supervisorctl")
    if not found:
        sys.exit("supervisor installed but supervisorctl is not on PATH")
    return found


def seed_history(root: Path, count: int) -> None:
    """`count` finished jobs written with benchd's own store writer (a realistic history)."""
    store = Store(root)
    states = [JobState.COMPLETED] * 6 + [JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN]
    for i in range(count):
        t = f"2026-11-{1 + i % 27:02d}T{i % 24:02d}:00:00.000+00:00"
        store.save(JobRecord(
            job_id=secrets.token_hex(6), status=states[i % len(states)],
            config=JobConfig(experiments=["gmst_era", "equ_ecl"], n=1000 + i),
            requester_uid=1000, requester_name="alice", created_at=t, started_at=t,
            finished_at=t.replace(":00:00.000", ":17:42.000"), exit_code=0,
            run_dir=f"results/2026-11-{1 + i % 27:02d}_{i % 24:02d}-00-00",
            progress=Progress(k=2, total=2, phase="published")))


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    ap.add_argument("--jobs", type=int, default=50, help="finished jobs in history (default 50)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get supervisor")
    args = ap.parse_args()

    supervisorctl = ensure_supervisor(not args.no_install)
    # Both sides as installed: pip compiles supervisor's bytecode when it installs it, and a
    # user's venv keeps benchctl's after its first run. This environment sets
    # PYTHONDONTWRITEBYTECODE, which would otherwise make every benchctl run recompile its
    # sources (about 10-20 ms) while supervisorctl never does.
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(REPO / "benchctl"),
                    str(REPO / "benchd"), str(REPO / "pipeline")], check=True)
    supervisord = shutil.which("supervisord") or "/usr/bin/supervisord"
    work = Path(tempfile.mkdtemp(prefix="bctl-bench-", dir="/tmp"))
    conf = work / "supervisord.conf"
    conf.write_text(SUPERVISOR_CONF.format(dir=work))
    # the lab layout: socket in <root>/run, so `status` from <root>/results finds it by itself
    daemon = Daemon(work / "root", socket_path=work / "root" / "run" / "benchd.sock")
    gate = work / "gate"
    try:
        subprocess.run([supervisord, "-c", str(conf)], check=True)
        sv_status = [supervisorctl, "-c", str(conf), "status"]
        wait_until(lambda: subprocess.run(sv_status, capture_output=True, text=True)
                   .stdout.count("RUNNING") == 2, 30, 0.1, "supervisord programs running")

        seed_history(daemon.root, args.jobs)
        daemon.set_spec(wait_for_file=str(gate), lines=3)
        daemon.start()
        job = daemon.start_job(experiments=["gmst_era"], ci=True)  # an active job for status
        daemon.wait_job(job["job_id"], ("running",))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHD_", "NO_COLOR"))}
        found_env, env = env, {**env, "BENCHD_SOCKET": str(daemon.socket_path)}
        results = daemon.root / "results"
        results.mkdir(exist_ok=True)

        found = "benchctl status (socket found)"  # from results/: discovery + trust check
        cases: dict[str, list[str]] = {
            "python -I -S -c pass": [str(PYTHON), "-I", "-S", "-c", "pass"],
            "python -c pass (site)": [str(PYTHON), "-c", "pass"],
            "benchctl status": [str(BENCHCTL), "status"],
            found: [str(BENCHCTL), "status"],
            f"benchctl history ({args.jobs + 1} jobs)": [str(BENCHCTL), "history"],
            "supervisorctl status": sv_status,
        }
        how = {name: (found_env, results) if name == found else (env, None) for name in cases}
        for name, argv in cases.items():  # warm caches; check each works
            r = subprocess.run(argv, capture_output=True, env=how[name][0], cwd=how[name][1])
            if r.returncode != 0 or (name.startswith(("benchctl", "supervisorctl"))
                                     and not r.stdout):
                sys.exit(f"{name} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                t0 = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=how[name][0], cwd=how[name][1])
                times[name].append(time.perf_counter() - t0)
    finally:
        daemon.close()
        subprocess.run([supervisorctl, "-c", str(conf), "shutdown"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    sv = median_ms(times["supervisorctl status"])
    bare = median_ms(times["python -I -S -c pass"])
    print(f"\nbenchctl start-up, {args.runs} interleaved runs each "
          f"(wall time of the whole process, ms)\n")
    print(f"{'command':34s} {'median':>8s} {'p90':>8s} {'min':>8s} {'÷ supervisorctl':>16s} "
          f"{'÷ python -I -S':>15s}")
    for name, xs in times.items():
        xs_sorted = sorted(xs)
        p90 = xs_sorted[int(0.9 * (len(xs) - 1))] * 1000
        m = median_ms(xs)
        print(f"{name:34s} {m:8.1f} {p90:8.1f} {min(xs) * 1000:8.1f} {m / sv:16.2f} "
              f"{m / bare:15.2f}")
    worst = max(median_ms(times["benchctl status"]), median_ms(times[found]),
                median_ms(times[f"benchctl history ({args.jobs + 1} jobs)"]))
    ok = worst <= sv / 3
    print(f"\ntarget: benchctl status/history median <= 1/3 of supervisorctl status "
          f"({sv / 3:.1f} ms): {'MET' if ok else 'NOT MET'} (worst {worst:.1f} ms, "
          f"ratio {worst / sv:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
