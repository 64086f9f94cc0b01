"""Whose processes are these? A benchd must never signal a process another root owns, and must
never claim it killed what it cannot see. Real daemons, real copies of a root's logs/, real
kill -9 of a supervisor, a real double-forked grandchild that clears its environment."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support import grandchild_started, pid_alive, pids_of_job
from tests.support.daemon import wait_until


def _copy_logs(src: Path, dest: Path, how: str) -> None:
    """A backup / test copy of a root's logs/ taken while a job runs: a plain copy (new
    inodes, as cp -a, rsync or tar make) or a hard-linked one (cp -al: the same inodes, so
    the job's lock file in the copy is the one its supervisor holds)."""
    if how == "copy":
        shutil.copytree(src, dest, symlinks=True)
    else:
        subprocess.run(["cp", "-al", str(src), str(dest)], check=True, timeout=30)


def _pids_with_tag(tag: str) -> list[int]:
    """Processes whose argv carries `tag` (the grandchild has no environment to find it by)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if tag.encode() in f.read() and pid_alive(int(name)):
                    out.append(int(name))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("how", ["copy", "hardlinks"])
def test_benchd_on_a_copy_of_logs_leaves_the_original_job_alone(daemon_factory, tmp_path,
                                                                how) -> None:
    """logs/ is copied while a job runs and a second benchd starts on the copy: its reconcile
    sees a running job whose supervisor is not its own. It must record the copy's job
    unknown and signal nothing; the original job runs on and completes."""
    gate = tmp_path / "gate"
    original = daemon_factory(spec={"wait_for_file": str(gate), "double_fork": True})
    job = original.start_job(experiments=["gmst_era"])
    job_id = job["job_id"]
    job_pids = wait_until(lambda: grandchild_started(job_id), what="grandchild exec'd")
    copy = daemon_factory(start=False, root=tmp_path / "copy")
    _copy_logs(original.root / "logs", copy.root / "logs", how)
    copy.start()  # reconciles the copied records before it answers health

    rec = copy.job(job_id)
    assert rec["status"] == "unknown", rec
    assert "started by another root" in rec["reason"] and "no process was signalled" in \
        rec["reason"], rec["reason"]
    assert copy.get("/api/health").json()["active_job"] is None
    assert pid_alive(job["supervisor_pid"]) and pid_alive(job["pgid"])
    assert all(pid_alive(p) for p in job_pids)  # the escaped, still marked grandchild too
    assert original.job(job_id)["status"] == "running"
    gate.touch()
    final = original.wait_job(job_id)
    assert final["status"] == "completed", final
    assert pids_of_job(job_id) == []  # the grandchild too, killed by its own supervisor


@pytest.mark.parametrize("benchd_up", [True, False], ids=["benchd-up", "benchd-restarted"])
def test_escaped_grandchild_after_supervisor_kill9_is_reported_honestly(daemon_factory,
                                                                        tmp_path,
                                                                        benchd_up) -> None:
    """The job double-forks, setsid()s and execs a grandchild with an empty environment; then
    its supervisor is killed -9 (with benchd up, or while benchd is down). Without the
    supervisor (subreaper) nothing outside a cgroup can find that grandchild: the reason must
    name exactly what was killed and say that such a process may still run, never claim all
    were killed. The test kills the grandchild itself."""
    tag = f"escapee-{uuid.uuid4().hex}"
    d = daemon_factory(spec={"wait_for_file": str(tmp_path / "never"), "double_fork": True,
                             "grandchild_env_empty": True, "grandchild_tag": tag})
    try:
        job = d.start_job(experiments=["gmst_era"])
        job_id = job["job_id"]
        (escapee,) = wait_until(lambda: _pids_with_tag(tag), what="grandchild exec'd")
        assert Path(f"/proc/{escapee}/environ").read_bytes() == b""
        if not benchd_up:
            d.kill9()
        os.kill(job["supervisor_pid"], signal.SIGKILL)
        if not benchd_up:
            wait_until(lambda: not pid_alive(job["supervisor_pid"]), what="supervisor gone")
            d.start()
        rec = d.wait_job(job_id)
        assert rec["status"] == "unknown", rec
        reason = rec["reason"]
        assert f"1 leftover process(es) killed: {job['pgid']} (" in reason, reason
        assert "cleared its environment cannot be found outside systemd and may still be " \
               "running" in reason, reason
        wait_until(lambda: not pid_alive(job["pgid"]), what="orchestrator killed")
        assert pid_alive(escapee)  # the gap the reason names (closed only by a cgroup)
    finally:
        for pid in _pids_with_tag(tag):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pids_with_tag(tag), what="grandchild killed by the test")
