"""Each job in its own cgroup under a real systemd (ct-boot): benchd.service delegates its
subtree, benchd runs in <unit>/daemon and each job's supervisor, orchestrator and whatever
they start in <unit>/job-<id>. The container does not enforce cgroup controllers, so CPU
pinning is checked by affinity (Cpus_allowed_list of the real processes)."""
from __future__ import annotations

import pytest

from tests.systemd.ctlib import POLL_S, UNIT, Container, wait_until
from tests.systemd.test_service import held_job, release_and_finish, restarted

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(120)]


def _status_field(ct: Container, pid: int, name: str) -> str:
    out = ct.run("cat", f"/proc/{pid}/status", check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                 if ln.startswith(name + ":")), "")


def _job_pids(ct: Container, job_id: str) -> list[int]:
    return ct.cgroup_procs(sub=f"job-{job_id}")


def test_a_job_runs_pinned_in_its_own_cgroup_and_survives_a_restart(ct: Container) -> None:
    job = held_job(ct)
    jid, sup = job["job_id"], job["supervisor_pid"]
    assert ct.cgroup_of(ct.main_pid()) == f"{UNIT}/daemon"
    assert ct.cgroup_of(sup) == f"{UNIT}/job-{jid}"
    orch = job["pgid"]                                   # the orchestrator leads its group
    assert ct.cgroup_of(orch) == f"{UNIT}/job-{jid}"
    assert {sup, orch} <= set(_job_pids(ct, jid))
    cpus = ",".join(map(str, job["cpuset"]))
    assert _status_field(ct, orch, "Cpus_allowed_list") == cpus, job["cpuset"]
    old = ct.main_pid()
    ct.systemctl("restart", UNIT)
    restarted(ct, old)
    rec = ct.job(jid)
    assert rec["status"] == "running" and rec["cpuset"] == job["cpuset"], rec
    assert ct.cgroup_of(sup) == f"{UNIT}/job-{jid}"     # the restart left it where it was
    assert ct.cgroup_of(ct.main_pid()) == f"{UNIT}/daemon"
    assert release_and_finish(ct, jid)["status"] == "completed"
    wait_until(lambda: ct.run("test", "-e", f"/sys/fs/cgroup/system.slice/{UNIT}/job-{jid}",
                              check=False).returncode != 0, 10, interval=POLL_S,
               what="the job's cgroup to be removed")


def test_an_escaped_descendant_dies_with_the_jobs_cgroup(ct: Container) -> None:
    """The orchestrator leaves a double-forked, setsid'd grandchild with an empty
    environment (no job marks, not in the job's process group); then its supervisor is
    SIGKILLed, so no subreaper holds it either. Only the cgroup still knows it is the
    job's: benchd kills the cgroup and says so."""
    job = held_job(ct, double_fork=True, grandchild_env_empty=True, grandchild_tag="escapee")
    jid = job["job_id"]
    def escapee() -> int:
        return next((p for p in _job_pids(ct, jid) if "escapee" in ct.cmdline(p)), 0)
    pid = wait_until(escapee, 10, interval=POLL_S, what="the escaped grandchild")
    assert ct.run("cat", f"/proc/{pid}/environ").stdout == ""     # it cleared its env
    ct.run("kill", "-KILL", str(job["supervisor_pid"]))
    rec = ct.wait_status(jid, {"unknown", "failed", "cancelled"})
    assert "killed with its cgroup" in rec["reason"] and f"{pid} (" in rec["reason"], rec
    wait_until(lambda: ct.run("test", "-e", f"/proc/{pid}", check=False).returncode != 0,
               10, interval=POLL_S, what="the escaped grandchild to be gone")
    assert ct.cgroup_procs() == [ct.main_pid()], ct.cgroup_procs()
