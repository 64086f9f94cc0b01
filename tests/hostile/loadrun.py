"""One load scenario against a real benchd, shared by the test (short) and
bench/hostile_report.py (30 s): a firehose job writing `rate` lines/s, `followers` HTTP
followers of its log in one client process, `clients` clients hammering the read endpoints in
another, the daemon's RSS sampled throughout. Returns the figures and the checks' inputs."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon

HERE = Path(__file__).resolve().parent
FIREHOSE = HERE / "firehose.py"
LOADGEN = HERE / "loadgen.py"


def firehose_argv(rate: float, seconds: float, *extra: str) -> list[str]:
    return [sys.executable, str(FIREHOSE), "--rate", str(rate), "--seconds", str(seconds),
            *extra]


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@dataclass
class LoadResult:
    job: dict[str, Any]
    hammer: dict[str, Any]
    followers: list[dict[str, Any]]
    log_bytes: int
    log_sha256: str
    log_lines: int
    rss_max_kib: int
    rss_hwm_kib: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def followers_exact(self) -> int:
        """Followers whose bytes equal the log file exactly."""
        return sum(1 for f in self.followers if f["error"] is None
                   and f["bytes"] == self.log_bytes and f["sha256"] == self.log_sha256)

    @property
    def follower_errors(self) -> list[str]:
        return [f["error"] for f in self.followers if f["error"]]


def run_scenario(d: Daemon, *, seconds: float, rate: float = 5000.0, clients: int = 100,
                 followers: int = 50, timeout: float = 180.0) -> LoadResult:
    """`d` must run with the firehose as orchestrator (firehose_argv(rate, seconds + 1))."""
    assert d.proc is not None
    job = d.start_job(experiments=["gmst_era"])
    job_id = job["job_id"]
    env = d.process_env()
    follow = subprocess.Popen([sys.executable, str(LOADGEN), "follow", "--socket",
                               str(d.socket_path), "--job", job_id, "--followers", str(followers),
                               "--timeout", str(timeout)], stdout=subprocess.PIPE, env=env)
    hammer = subprocess.Popen([sys.executable, str(LOADGEN), "hammer", "--socket",
                               str(d.socket_path), "--job", job_id, "--clients", str(clients),
                               "--seconds", str(seconds)], stdout=subprocess.PIPE, env=env)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append(rss_kib(d.proc.pid))
            except OSError:
                return
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    try:
        h_out, _ = hammer.communicate(timeout=seconds + timeout)
        f_out, _ = follow.communicate(timeout=timeout)
    finally:
        stop.set()
        for p in (hammer, follow):
            if p.poll() is None:
                p.kill()
                p.wait()
    elapsed = time.monotonic() - t0
    sampler.join(5)
    hwm = rss_kib(d.proc.pid, "VmHWM")
    final = d.wait_job(job_id, timeout=timeout)
    data = d.log_file(job_id).read_bytes()
    return LoadResult(job=final, hammer=json.loads(h_out), followers=json.loads(f_out)["followers"],
                      log_bytes=len(data), log_sha256=hashlib.sha256(data).hexdigest(),
                      log_lines=data.count(b"\n"), rss_max_kib=max(samples, default=0),
                      rss_hwm_kib=hwm, seconds=elapsed)
