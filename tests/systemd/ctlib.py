"""A throw-away real systemd (ct-boot from shared/systemd) with benchd installed in it by
scripts/install-service, and a small HTTP client for its socket.

The host talks to the container's socket through /proc/<container pid 1>/root/..., so the
requests come from the host's root (uid 0 in the same user namespace); commands run inside
through ct-exec. Nothing here is mocked: real systemd, real units, real benchd.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.daemon import UnixHTTPConnection, wait_until

REPO = Path(__file__).resolve().parents[2]
SOCKET = "/run/benchd/benchd.sock"
STATE = "/var/lib/benchd"
TEST_DIR = f"{STATE}/systemd-test"          # spec and go-files for the fake orchestrator
SPEC = f"{TEST_DIR}/spec.json"
UNIT = "benchd.service"
POLL_S = 0.05                               # polls run ct-exec: not every 10 ms
FAKE_ORCHESTRATOR = REPO / "tests" / "support" / "fake_orchestrator.py"


def find_ct_tools() -> Path | None:
    """ct-boot & co: $BENCHD_CT_TOOLS, else the shared/ beside the checkout (as CI lays it)."""
    for cand in (os.environ.get("BENCHD_CT_TOOLS"), REPO.parent / "shared" / "systemd"):
        if cand and (Path(cand) / "ct-boot").is_file():
            return Path(cand)
    return None


class Container:
    """One booted systemd; stop() powers it off and removes it."""

    def __init__(self, tools: Path, *, timeout: float = 60) -> None:
        self.tools = tools
        # ct-boot gives up (and cleans up) after its own --timeout; ours only backs that up
        out = subprocess.run([str(tools / "ct-boot"), "--bind", str(REPO), "--timeout",
                              str(int(timeout))], capture_output=True, text=True,
                             timeout=timeout + 40)
        if out.returncode != 0:
            raise RuntimeError(f"ct-boot failed ({out.returncode}): {out.stderr.strip()}")
        self.dir = Path(out.stdout.strip().splitlines()[-1])
        self.pid1 = int((self.dir / "pid1").read_text())

    def stop(self) -> None:
        subprocess.run([str(self.tools / "ct-stop"), str(self.dir)], capture_output=True,
                       timeout=60)

    # -- inside ---------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            user: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = list(argv) if user is None else ["runuser", "-u", user, "--", *argv]
        res = subprocess.run([str(self.tools / "ct-exec"), str(self.dir), *cmd],
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\n"
                                 f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def host_path(self, path: str) -> str:
        """The container's `path` as the host sees it (through its pid 1's root)."""
        return f"/proc/{self.pid1}/root{path}"

    def write(self, path: str, text: str) -> None:
        """Write a file inside, readable by the service (atomic, owned by benchd)."""
        self.run("install", "-d", "-o", "benchd", "-g", "benchd", os.path.dirname(path))
        tmp = self.host_path(path + ".tmp")
        Path(tmp).write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.host_path(path))

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", *args, check=check, timeout=timeout)

    def show(self, unit: str = UNIT, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self) -> int:
        return int(self.show(UNIT, "MainPID")["MainPID"])

    def cgroup_procs(self, unit: str = UNIT, sub: str = "") -> list[int]:
        """Pids (container namespace) in the unit's cgroup and the cgroups below it (benchd
        runs in <unit>/daemon, each job in <unit>/job-<id>), or only in `sub` below it."""
        res = self.run("find", f"/sys/fs/cgroup/system.slice/{unit}/{sub}", "-name",
                       "cgroup.procs", "-exec", "cat", "{}", "+", check=False)
        return sorted(int(x) for x in res.stdout.split()) if res.returncode == 0 else []

    def cgroup_of(self, pid: int) -> str:
        """The cgroup path of `pid`, from the unit's cgroup on: "benchd.service/job-…"."""
        res = self.run("cat", f"/proc/{pid}/cgroup", check=False)
        path = next((ln[3:] for ln in res.stdout.splitlines() if ln.startswith("0::")), "")
        return path[path.find(UNIT):] if UNIT in path else path

    def cmdline(self, pid: int) -> str:
        res = self.run("cat", f"/proc/{pid}/cmdline", check=False)
        return res.stdout.replace("\0", " ").strip()

    def journal(self, unit: str = UNIT) -> str:
        return self.run("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout

    def journal_json(self, unit: str = UNIT) -> list[dict[str, Any]]:
        out = self.run("journalctl", "-u", unit, "--no-pager", "-o", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # -- benchd ---------------------------------------------------------------------------
    def install(self, *extra: str) -> None:
        """scripts/install-service in --use-venv mode (the checkout's venv), not started."""
        self.run(str(REPO / "scripts" / "install-service"), "--use-venv", str(REPO / ".venv"),
                 "--no-start", *extra, timeout=120)

    def dropin(self, name: str, text: str, unit: str = UNIT) -> None:
        d = f"/etc/systemd/system/{unit}.d"
        self.run("mkdir", "-p", d)
        Path(self.host_path(f"{d}/{name}")).write_text(text)
        self.systemctl("daemon-reload")

    def use_fake_orchestrator(self, **settings: str) -> None:
        """Drop-in: jobs run tests/support/fake_orchestrator.py, told what to do by SPEC."""
        argv = json.dumps([str(REPO / ".venv" / "bin" / "python"), str(FAKE_ORCHESTRATOR)])
        env = {"BENCHD_ORCHESTRATOR": argv, "FAKE_ORCHESTRATOR_SPEC": SPEC}
        lines = ["[Service]"] + [f"Environment={json.dumps(f'{k}={v}')}"
                                 for k, v in env.items()]
        lines += [f"{k}={v}" for k, v in settings.items()]
        self.dropin("50-test.conf", "\n".join(lines) + "\n")

    def api(self, method: str, path: str, body: Any = None,
            timeout: float = 30) -> tuple[int, Any]:
        conn = UnixHTTPConnection(self.host_path(SOCKET), timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("Content-Type", "")
            return resp.status, (json.loads(raw) if "json" in ctype else raw.decode())
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        status, body = self.api("GET", "/api/health", timeout=60)
        assert status == 200, (status, body)
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/api/benchmark/jobs/{job_id}")
        assert status == 200, (status, body)
        return body

    def start_job(self, spec: dict[str, Any], config: dict[str, Any] | None = None) -> dict:
        self.write(SPEC, json.dumps(spec))
        status, body = self.api("POST", "/api/benchmark/jobs", config or {}, timeout=60)
        assert status == 201, (status, body)
        return body

    def wait_status(self, job_id: str, statuses: set[str], timeout: float = 30) -> dict:
        want = "/".join(sorted(statuses))
        return wait_until(lambda: (r := self.job(job_id))["status"] in statuses and r,
                          timeout, interval=POLL_S, what=f"job {job_id} to be {want}")

    def log(self, job_id: str) -> str:
        status, body = self.api("GET", f"/api/benchmark/jobs/{job_id}/logs")
        assert status == 200, (status, body)
        return body


def have_tools() -> tuple[Path | None, str]:
    """(tools, reason-to-skip)."""
    if os.geteuid() != 0:
        return None, "the systemd tests boot a container with ct-boot, which needs root"
    tools = find_ct_tools()
    if tools is None:
        return None, ("ct-boot not found (set BENCHD_CT_TOOLS or put shared/systemd beside "
                      "the checkout)")
    if not shutil.which("nsenter") or not shutil.which("unshare"):
        return None, "nsenter/unshare (util-linux) missing"
    if not Path("/lib/systemd/systemd").exists():
        return None, "/lib/systemd/systemd missing: systemd is not installed"
    if not (REPO / ".venv" / "bin" / "benchd").exists():
        return None, "the checkout's .venv has no benchd: run scripts/bootstrap"
    return tools, ""
