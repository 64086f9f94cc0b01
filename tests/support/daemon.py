"""A real `benchd` subprocess for tests: tmp root, fake orchestrator, short socket path.

    from tests.support.daemon import Daemon, daemon_factory  (fixture), wait_until

    with Daemon(tmp_path / "root") as d:           # starts, waits for /api/health
        d.set_spec(wait_for_file=str(gate))         # fake orchestrator behaviour for next jobs
        job = d.post_json("/api/benchmark/jobs", {"experiments": ["gmst_era"]}).json()
        d.kill9(); d.start()                        # crash + restart on the same root
        d.wait_job(job["job_id"])                   # bounded poll until final

Every process a Daemon starts (benchd, its per-job supervisors, orchestrators, their
double-forked grandchildren) carries BENCHD_TEST_MARKER=<uuid> in its environment; close()
SIGKILLs whatever still carries it, so a failing test leaves nothing behind.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchd import procs
from benchd.states import FINAL as FINAL_STATES
from tests.support import wait_until  # noqa: F401 (re-exported: one polling helper for all tests)

REPO = Path(__file__).resolve().parents[2]
FAKE_ORCHESTRATOR = [sys.executable, str(REPO / "tests" / "support" / "fake_orchestrator.py")]
BENCHD = [sys.executable, "-m", "benchd.cli"]
MARKER_ENV = "BENCHD_TEST_MARKER"
FINAL = tuple(s.value for s in FINAL_STATES)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the Host header is irrelevant to benchd)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, str]:
        """The {"code", "message"} of an error body."""
        return self.json()["error"]


def request(socket_path: str | os.PathLike[str], method: str, path: str,
            body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> Response:
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries BENCHD_TEST_MARKER=marker."""
    return procs.pids_with_env(MARKER_ENV, marker, frozenset({os.getpid()}))


def kill_marked(marker: str) -> int:
    """SIGKILL every process carrying the marker; returns how many there were."""
    pids = marked_pids(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


@dataclass
class Daemon:
    """One benchd on `root`. Start/kill/restart it as often as a test needs."""
    root: Path
    grace: float = 2.0
    on_stop: str = "leave"
    admin_group: str | None = None
    orchestrator: Sequence[str] | None = None     # default: the fake orchestrator
    spec: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    extra_args: Sequence[str] = ()
    socket_path: Path | None = None               # default: a short path under /tmp
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sock_dir: str | None = None
        if self.socket_path is None:  # tmp_path is often too long for sun_path (108 bytes)
            self._sock_dir = tempfile.mkdtemp(prefix="benchd-t-", dir="/tmp")
            self.socket_path = Path(self._sock_dir) / "benchd.sock"
        self.spec_path = self.root / "fake-orchestrator-spec.json"
        self.stderr_path = self.root / "benchd.stderr"
        self.set_spec(**self.spec)

    # --- process control -------------------------------------------------------------
    def argv(self) -> list[str]:
        argv = [*BENCHD, "--root", str(self.root), "--socket", str(self.socket_path),
                "--grace", str(self.grace), "--on-stop", self.on_stop,
                "--orchestrator", json.dumps(list(self.orchestrator or FAKE_ORCHESTRATOR))]
        if self.admin_group:
            argv += ["--admin-group", self.admin_group]
        return argv + list(self.extra_args)

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_", "JOURNAL_STREAM",
                                    "BENCHD_"))}
        env.update({MARKER_ENV: self.marker, "FAKE_ORCHESTRATOR_SPEC": str(self.spec_path),
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                os.environ.get("PYTHONPATH")]))})
        env.update(self.env)
        env.update(extra or {})
        return env

    def start(self, wait: bool = True, timeout: float = 20.0, *, argv: list[str] | None = None,
              extra_env: dict[str, str] | None = None, pass_fds: Sequence[int] = (),
              preexec_fn: Callable[[], None] | None = None) -> "Daemon":
        """Start benchd (stderr appended to root/benchd.stderr); by default wait for health."""
        if self.running():
            raise RuntimeError("benchd already running")
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv or self.argv(), cwd=self.root, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, env=self.process_env(extra_env),
                                         pass_fds=tuple(pass_fds), preexec_fn=preexec_fn)
        if wait:
            self.wait_ready(timeout)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """Poll /api/health until it answers 200; fail early with stderr if benchd exits."""
        def ready() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"benchd exited with {self.proc.returncode}:\n"
                                   + self.stderr_text()[-3000:])
            try:
                r = self.request("GET", "/api/health", timeout=2.0)
            except OSError:
                return None
            return r.json() if r.status == 200 else None
        return wait_until(ready, timeout, 0.02, "benchd /api/health")

    def kill9(self) -> None:
        """Crash benchd (SIGKILL) and reap it; its jobs keep running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal benchd and wait for it to exit; returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise
        return self.proc.returncode

    def restart(self, kill: bool = True, timeout: float = 20.0) -> "Daemon":
        """kill -9 (default) or SIGTERM benchd, then start it again on the same root."""
        self.kill9() if kill else self.stop()
        return self.start(timeout=timeout)

    def close(self) -> None:
        """Stop benchd and SIGKILL every process this daemon's tests started."""
        try:
            if self.running():
                try:
                    self.stop(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            kill_marked(self.marker)
            if self._sock_dir:
                shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> "Daemon":
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- fake orchestrator, files -------------------------------------------------------
    def set_spec(self, **spec: Any) -> None:
        """Behaviour of the fake orchestrator for jobs started from now on (atomic write)."""
        tmp = self.spec_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, self.spec_path)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_file(self, job_id: str) -> Path:
        return self.root / "logs" / f"{job_id}.log"

    # --- HTTP ---------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> Response:
        assert self.socket_path is not None
        return request(self.socket_path, method, path, body, headers, timeout)

    def get(self, path: str, timeout: float = 30.0) -> Response:
        return self.request("GET", path, timeout=timeout)

    def post_json(self, path: str, obj: Any = None, timeout: float = 60.0) -> Response:
        body = b"" if obj is None else json.dumps(obj).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"}, timeout)

    def start_job(self, **config: Any) -> dict[str, Any]:
        """POST a job; asserts 201 and returns the record."""
        r = self.post_json("/api/benchmark/jobs", config)
        assert r.status == 201, (r.status, r.body)
        return r.json()

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/api/benchmark/jobs/{job_id}")
        assert r.status == 200, (r.status, r.body)
        return r.json()

    def wait_job(self, job_id: str, statuses: Sequence[str] = FINAL,
                 timeout: float = 30.0) -> dict[str, Any]:
        """Bounded poll until the job's status is one of `statuses`; returns the record."""
        def done() -> dict[str, Any] | None:
            rec = self.job(job_id)
            return rec if rec["status"] in statuses else None
        return wait_until(done, timeout, 0.02, f"job {job_id} in {statuses}")


try:
    import pytest

    @pytest.fixture
    def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
        """make(**Daemon kwargs, start=True) -> a started Daemon on tmp_path/"root<N>";
        every daemon (and every process it spawned) is cleaned up after the test."""
        made: list[Daemon] = []

        def make(start: bool = True, **kw: Any) -> Daemon:
            kw.setdefault("root", tmp_path / f"root{len(made)}")
            d = Daemon(**kw)
            made.append(d)
            return d.start() if start else d

        yield make
        for d in made:
            d.close()
except ImportError:  # usable outside pytest too (bench scripts)
    pass
