"""State damage: what a real benchd does with broken files at start-up and under its feet:
truncated/empty/garbage job records, a record pointing at a recycled pid, a log deleted or
truncated mid-run, a stale socket and lock file, several daemons racing for one root."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from benchd.schema import ExitRecord, JobConfig, JobRecord
from benchd.states import JobState
from benchd.store import Store
from tests.hostile.rawhttp import call
from tests.support.daemon import Daemon, wait_until

JOBS = "/api/benchmark/jobs"


def _record(job_id: str, status: JobState = JobState.COMPLETED, **kw: object) -> JobRecord:
    base = dict(job_id=job_id, status=status, config=JobConfig(experiments=["gmst_era"]),
                requester_uid=0, requester_name="root", created_at="2026-01-01T00:00:00.000+00:00")
    if status in (JobState.COMPLETED, JobState.FAILED):
        base.update(finished_at="2026-01-01T00:01:00.000+00:00",
                    exit_code=0 if status == JobState.COMPLETED else 1)
    base.update(kw)
    return JobRecord(**base)


def test_damaged_records_at_startup_are_moved_aside_and_the_rest_served(daemon_factory) -> None:
    d = daemon_factory(start=False)
    store = Store(d.root)
    good = [_record(f"{i:012x}") for i in range(1, 4)]
    for rec in good:
        store.save(rec)
    full = msgspec.json.encode(_record("0000000000aa"))
    damaged = {
        "0000000000aa.json": full[: len(full) // 2],                 # truncated mid-write
        "0000000000bb.json": b"",                                  # empty (crash after create)
        "0000000000cc.json": os.urandom(300),                      # garbage bytes
        "0000000000dd.json": b'{"job_id": "0000000000dd"}',         # valid JSON, not a record
        "0000000000ee.json": msgspec.json.encode(_record("0000000000ff")),  # names another job
        "0000000000ef.json": b"[1, 2, 3]",                          # wrong JSON type
        "0000000000f0.json": json.dumps({**json.loads(full), "job_id": "0000000000f0",
                                         "status": "exploded"}).encode(),   # unknown state
        "0000000000f1.json": b"\x00" * 4096,                         # zero-filled block
    }
    jobs_dir = d.root / "logs" / "jobs"
    for name, data in damaged.items():
        (jobs_dir / name).write_bytes(data)
    (jobs_dir / "0000000000f2.json").mkdir()                      # a directory named like one
    (jobs_dir / "notes.txt").write_text("not a record\n")           # foreign files are ignored
    (jobs_dir / ".0000000000f3.json.abc.tmp").write_bytes(full[:10])  # a crashed writer's temp
    d.start()
    listed = [j["job_id"] for j in d.get(JOBS).json()["jobs"]]
    assert sorted(listed) == sorted(r.job_id for r in good)
    corrupt = jobs_dir / "corrupt"
    moved = {p.name.split(".json")[0] + ".json": p.read_bytes() for p in corrupt.iterdir()
             if not p.is_dir()}
    assert moved == damaged  # every damaged file kept byte for byte, for a person to look at
    for name in damaged:
        assert name in d.stderr_text(), name  # ...and each one named in the daemon's log
        assert not (jobs_dir / name).exists()
    # a directory where a record belongs is damage too: moved aside whole, and said so
    assert [p.name for p in corrupt.iterdir() if p.is_dir()][0].startswith("0000000000f2.json.")
    assert "0000000000f2.json moved to" in d.stderr_text() and "(a directory)" in d.stderr_text()
    assert (jobs_dir / "notes.txt").exists() and not (jobs_dir / "0000000000f2.json").exists()
    # the damaged ids are unknown to the API, and the daemon works normally
    assert call(d.socket_path, "GET", f"{JOBS}/0000000000aa").status == 404
    job = d.start_job()
    assert d.wait_job(job["job_id"])["status"] == "completed"
    # a second restart finds nothing more to move aside
    d.restart(kill=False)
    assert len(list(corrupt.iterdir())) == len(damaged) + 1
    assert len(d.get(JOBS).json()["jobs"]) == len(good) + 1


def test_a_running_record_whose_pid_was_recycled_is_not_reattached_or_killed(
        daemon_factory) -> None:
    """benchd died with a job running; by the time it restarts, the supervisor is gone and its
    pid belongs to an unrelated process. benchd must record the job unknown, not adopt (or
    kill) the stranger."""
    d = daemon_factory(start=False)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        ticks = int(Path(f"/proc/{stranger.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        store = Store(d.root)
        store.save(_record("00000000000a", JobState.RUNNING, supervisor_pid=stranger.pid,
                           supervisor_start_ticks=ticks + 1, pgid=stranger.pid,
                           started_at="2026-01-01T00:00:01.000+00:00"))
        store.save(_record("00000000000b", JobState.STARTING))
        # a live pid with the RIGHT ticks but no job lock: still not our supervisor
        store.save(_record("00000000000c", JobState.RUNNING, supervisor_pid=stranger.pid,
                           supervisor_start_ticks=ticks, pgid=None,
                           created_at="2026-01-01T00:00:02.000+00:00"))
        d.start()
        a = d.job("00000000000a")
        b = d.job("00000000000b")
        c = d.job("00000000000c")
        assert a["status"] == "unknown" and a["reason"], a
        assert b["status"] in ("failed", "unknown") and b["reason"], b
        assert c["status"] == "unknown", c
        assert d.get("/api/health").json()["active_job"] is None
        assert stranger.poll() is None, "benchd killed an unrelated process"
        job = d.start_job()  # not busy: nothing was adopted
        assert d.wait_job(job["job_id"])["status"] == "completed"
        # the settled records are final on disk too
        for jid in ("00000000000a", "00000000000b", "00000000000c"):
            rec = msgspec.json.decode((d.root / "logs" / "jobs" / f"{jid}.json").read_bytes(),
                                      type=JobRecord)
            assert rec.status in (JobState.UNKNOWN, JobState.FAILED)
    finally:
        stranger.kill()
        stranger.wait()


def test_garbage_supervisor_files_do_not_break_reconcile(daemon_factory) -> None:
    d = daemon_factory(start=False)
    store = Store(d.root)
    store.save(_record("00000000000d", JobState.RUNNING, supervisor_pid=2**22 + 7,
                       supervisor_start_ticks=1))
    jobs_dir = d.root / "logs" / "jobs"
    (jobs_dir / "00000000000d.exit").write_bytes(b'{"job_id": "00000000000d", "exit_co')
    (jobs_dir / "00000000000d.pid").write_bytes(os.urandom(64))
    (jobs_dir / "00000000000d.cancel").write_bytes(b"\xff")
    d.start()
    rec = d.job("00000000000d")
    assert rec["status"] == "unknown" and rec["reason"]
    assert d.get("/api/health").status == 200
    assert d.wait_job(d.start_job()["job_id"])["status"] == "completed"


ONE_TIB, THREE_GIB = 1 << 40, 3 << 30
DEAD_PID = 2**22 + 7   # above pid_max: no process has it


def _plant(path: Path, kind: str, content: bytes = b"") -> str:
    """Put a hostile file of `kind` where a job file belongs; returns how benchd should
    describe it. The big ones are sparse (os.truncate): no disk is used."""
    if kind in ("1tib", "3gib"):
        path.write_bytes(content)
        os.truncate(path, ONE_TIB if kind == "1tib" else THREE_GIB)
        return "larger than 1 MiB"
    if kind == "fifo":
        os.mkfifo(path)
        return "a FIFO"
    if kind == "dir":
        path.mkdir()
        return "a directory"
    assert kind == "devzero"
    path.symlink_to("/dev/zero")
    return "a symlink"


def _moved_aside(d: Daemon, name: str, why: str) -> bool:
    """`name` is gone from logs/jobs, kept under corrupt/, and named in benchd's log with why."""
    jobs_dir = d.root / "logs" / "jobs"
    kept = [p for p in (jobs_dir / "corrupt").iterdir() if p.name.startswith(name + ".")]
    return (not os.path.lexists(jobs_dir / name) and len(kept) == 1
            and f"{name} moved to {kept[0]} ({why})" in d.stderr_text())


@pytest.mark.parametrize("kind", ["1tib", "3gib", "fifo", "devzero", "dir"])
def test_a_record_that_is_not_a_small_regular_file_is_moved_aside_and_the_rest_served(
        daemon_factory, kind: str) -> None:
    """A 1 TiB or 3 GiB (sparse) record, a FIFO, a symlink to /dev/zero or a directory where
    a record belongs: benchd neither reads it all into memory, nor blocks on it, nor follows
    the link. It starts, moves the file aside saying why, and serves the other records."""
    d = daemon_factory(start=False)
    store = Store(d.root)
    good = [_record(f"{i:012x}") for i in range(1, 3)]
    for rec in good:
        store.save(rec)
    name = "0000000000a1.json"
    why = _plant(d.root / "logs" / "jobs" / name, kind,
                 msgspec.json.encode(_record("0000000000a1")))
    d.start()
    assert sorted(j["job_id"] for j in d.get(JOBS).json()["jobs"]) == [r.job_id for r in good]
    assert _moved_aside(d, name, why), d.stderr_text()[-2000:]
    assert d.wait_job(d.start_job()["job_id"])["status"] == "completed"


@pytest.mark.parametrize("suffix,kind", [(".exit", "dir"), (".exit", "devzero"),
                                         (".pid", "fifo"), (".lock", "fifo")])
def test_a_side_file_that_is_not_a_small_regular_file_does_not_break_reconcile(
        daemon_factory, suffix: str, kind: str) -> None:
    """benchd died with a job active; one of the job's supervisor files is now a directory,
    a symlink to /dev/zero or a FIFO. Start-up moves it aside (saying why) and settles the
    job from what is left, like any job whose supervisor vanished."""
    d = daemon_factory(start=False)
    job_id = "00000000000d"
    if suffix == ".lock":   # probed when no supervisor pid is known: a job that was starting
        Store(d.root).save(_record(job_id, JobState.STARTING))
    else:
        Store(d.root).save(_record(job_id, JobState.RUNNING, supervisor_pid=DEAD_PID,
                                   supervisor_start_ticks=1))
    why = _plant(d.root / "logs" / "jobs" / f"{job_id}{suffix}", kind)
    d.start()
    rec = d.job(job_id)
    assert rec["status"] in ("unknown", "failed") and rec["reason"], rec
    assert _moved_aside(d, f"{job_id}{suffix}", why), d.stderr_text()[-2000:]
    assert d.wait_job(d.start_job()["job_id"])["status"] == "completed"


def test_a_job_known_only_by_its_exit_record_survives_a_pid_file_linked_to_dev_zero(
        daemon_factory) -> None:
    """The record is gone, the supervisor left its exit record (exit 4), and its pid file is
    a symlink to /dev/zero: the job is rebuilt from the exit record with its true outcome."""
    d = daemon_factory(start=False)
    job_id = "00000000000e"
    store = Store(d.root)
    store.write_exit(ExitRecord(job_id=job_id, exit_code=4, signal=None, cancelled=False,
                                finished_at="2026-01-01T00:01:00.000+00:00", reason="exit 4"))
    why = _plant(store.paths(job_id).info, "devzero")
    d.start()
    rec = d.job(job_id)
    assert rec["status"] == "failed" and rec["exit_code"] == 4, rec
    assert _moved_aside(d, f"{job_id}.pid", why), d.stderr_text()[-2000:]


def test_the_supervisor_ignores_a_cancel_order_that_is_a_fifo(daemon_factory) -> None:
    """Someone puts a FIFO where the cancel order goes and signals the supervisor: it does
    not block opening it (the job would then never be cancelled or reaped); it says so in
    the job log, moves it aside, and a real cancel afterwards works."""
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1)
    job_id = d.start_job()["job_id"]
    rec = d.wait_job(job_id, ("running",))
    cancel = d.root / "logs" / "jobs" / f"{job_id}.cancel"
    os.mkfifo(cancel)
    os.kill(rec["supervisor_pid"], signal.SIGUSR1)
    wait_until(lambda: "without a readable cancel order" in d.log_file(job_id).read_text(),
               30, what="the supervisor's note about the unreadable cancel order")
    assert not os.path.lexists(cancel)
    assert any(p.name.startswith(f"{job_id}.cancel.")
               for p in (cancel.parent / "corrupt").iterdir())
    assert d.post_json(f"{JOBS}/{job_id}/cancel", {"grace": 1}).status < 300
    assert d.wait_job(job_id)["status"] == "cancelled"


def test_an_exit_record_path_made_a_directory_during_the_job_does_not_lose_its_outcome(
        daemon_factory) -> None:
    """While a job runs, a directory appears where its supervisor will write the exit record
    (a rename cannot replace it): the supervisor moves it aside and writes the record, and
    the job ends with its true exit status rather than `unknown`."""
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1, exit_code=3)
    job_id = d.start_job()["job_id"]
    d.wait_job(job_id, ("running",))
    exit_path = d.root / "logs" / "jobs" / f"{job_id}.exit"
    exit_path.mkdir()
    gate.touch()
    rec = d.wait_job(job_id)
    assert rec["status"] == "failed" and rec["exit_code"] == 3, rec
    assert not os.path.lexists(exit_path)
    assert [p.is_dir() for p in (exit_path.parent / "corrupt").iterdir()
            if p.name.startswith(f"{job_id}.exit.")] == [True]


class Follower:
    """A raw HTTP follower whose progress the test can see (to delete the log only after it
    has read some of it)."""

    def __init__(self, d: Daemon, job_id: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(d.socket_path))
        self.sock.sendall(f"GET {JOBS}/{job_id}/logs?follow=1 HTTP/1.1\r\nHost: x\r\n"
                          "Connection: close\r\n\r\n".encode())
        self.data = b""

    def read_until(self, needle: bytes) -> None:
        while needle not in self.data:
            chunk = self.sock.recv(65536)
            assert chunk, self.data[-300:]
            self.data += chunk

    def read_to_end(self) -> bytes:
        while chunk := self.sock.recv(65536):
            self.data += chunk
        self.sock.close()
        return self.data


def test_log_deleted_mid_run(daemon_factory) -> None:
    """Someone deletes the job's log while it runs: the job keeps running and finishes with its
    true outcome, a follower ends instead of hanging, the API answers (never a 5xx)."""
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(lines=20, wait_for_file=str(gate), exit_code=4)
    job_id = d.start_job()["job_id"]
    log = d.log_file(job_id)
    follower = Follower(d, job_id)
    follower.read_until(b"line 19 of 20\n")
    log.unlink()
    for target in (f"{JOBS}/{job_id}/logs", f"{JOBS}/{job_id}/logs?tail=5",
                   f"{JOBS}/{job_id}/logs?offset=100", f"{JOBS}/{job_id}",
                   f"{JOBS}/{job_id}/logs?follow=0"):
        r = call(d.socket_path, "GET", target)
        assert r.status < 500, (target, r.status, r.body)
        if r.status >= 400:
            assert set(r.json()["error"]) == {"code", "message"}
    gate.touch()
    final = d.wait_job(job_id)
    assert final["status"] == "failed" and final["exit_code"] == 4, final
    data = follower.read_to_end()  # bounded by the socket timeout: a hang fails the test
    assert data.startswith(b"HTTP/1.1 200") and b"line 19 of 20" in data
    assert data.endswith(b"0\r\n\r\n"), data[-200:]  # a clean end of the chunked stream
    r = call(d.socket_path, "GET", f"{JOBS}/{job_id}/logs?follow=1", timeout=10)
    assert r.status < 500
    d.set_spec()
    assert d.wait_job(d.start_job()["job_id"])["status"] == "completed"


def test_log_truncated_mid_run_followers_end_and_daemon_serves(daemon_factory) -> None:
    """Someone truncates the job's log while followers are past its start: they end cleanly
    when the job does (they never hang at an offset the file no longer reaches)."""
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(lines=2000, wait_for_file=str(gate))
    job_id = d.start_job()["job_id"]
    followers = [Follower(d, job_id) for _ in range(5)]
    for f in followers:
        f.read_until(b"line 1999 of 2000\n")
    log = d.log_file(job_id)
    os.truncate(log, 0)
    with open(log, "ab") as f:
        f.write(b"rewritten\n")
    gate.touch()
    assert d.wait_job(job_id)["status"] == "completed"
    for f in followers:
        data = f.read_to_end()  # bounded by the socket timeout: a hang fails the test
        assert data.endswith(b"0\r\n\r\n"), data[-200:]
    assert d.get("/api/health").status == 200
    r = call(d.socket_path, "GET", f"{JOBS}/{job_id}/logs")
    assert r.status == 200 and r.body.startswith(b"rewritten\n")


def test_stale_socket_and_stale_lock_file_from_a_crashed_daemon(daemon_factory) -> None:
    d = daemon_factory(start=False)
    # a socket file nobody listens on (what a kill -9 leaves), and a lock file naming a dead pid
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(d.socket_path))
    s.close()
    # (and the lock file an older benchd used, which is retired)
    (d.root / "run" / "lock").mkdir(parents=True)
    (d.root / "run" / "lock" / "benchd.lock").write_text("999999\n")
    (d.root / "run" / "benchd.lock").write_text("999998\n")
    d.start()
    assert "stale socket" in d.stderr_text()
    assert d.get("/api/health").json()["pid"] == d.proc.pid
    assert (d.root / "run" / "lock" / "benchd.lock").read_text().strip() == str(d.proc.pid)
    assert not (d.root / "run" / "benchd.lock").exists()


def test_a_non_socket_in_the_socket_path_is_refused_not_replaced(daemon_factory) -> None:
    d = daemon_factory(start=False)
    d.socket_path.write_text("precious\n")
    d.start(wait=False)
    assert d.proc.wait(timeout=30) == 1
    assert "not a socket" in d.stderr_text()
    assert d.socket_path.read_text() == "precious\n"


def test_daemons_racing_for_one_root_exactly_one_wins(daemon_factory) -> None:
    """Four benchd processes started at once on one root (each with its own socket): one
    serves; the others exit 1 naming the root and the pid that holds it."""
    first = daemon_factory(start=False)
    racers = [first] + [Daemon(first.root, marker=first.marker) for _ in range(3)]
    try:
        for r in racers:
            r.start(wait=False)
        wait_until(lambda: sum(r.proc.poll() is not None for r in racers) >= 3, 30, 0.05,
                   "three of four racers to exit")
        alive = [r for r in racers if r.proc.poll() is None]
        assert len(alive) == 1, [r.proc.poll() for r in racers]
        winner = alive[0]
        winner.wait_ready()
        for r in racers:
            if r is winner:
                continue
            assert r.proc.returncode == 1
        # the racers share the root's stderr file: one refusal per loser, naming the winner
        refusals = first.stderr_text().count("already running on root")
        assert refusals == 3, first.stderr_text()
        assert f"pid {winner.proc.pid}" in first.stderr_text()
        assert winner.get("/api/health").json()["pid"] == winner.proc.pid
        assert winner.wait_job(winner.start_job()["job_id"])["status"] == "completed"
    finally:
        for r in racers[1:]:
            r.close()


_NOISY = r'''
import os, sys
out = sys.stdout.buffer
lines = [
    b"@@benchd-progress {",                                   # truncated JSON
    b"@@benchd-progress []",                                  # not an object
    b'@@benchd-progress {"k": "x", "total": "y", "phase": 7}',  # wrong types
    b'@@benchd-progress {"k": 1e308, "total": -1, "phase": "perf"}',
    b'@@benchd-progress {"k": 1, "total": 2, "experiment": "' + b"e" * 200000 + b'"}',
    b"@@benchd-progress " + bytes(range(256)),                # binary
    b"\xff\xfe invalid utf-8 \x00 NUL \x1b[31m escape",
    b'@@benchd-progress {"k": 2, "total": 2, "phase": "published", "run_dir": 5}',
    b'@@benchd-progress {"k": 2, "total": 2, "experiment": "gmst_era", "phase": "experiment_done", "run_id": "r"}',
]
for line in lines:
    out.write(line + b"\n")
out.write(b"no newline at the end")
out.flush()
sys.exit(int(os.environ.get("NOISY_EXIT", "0")))
'''


def test_garbage_and_binary_output_from_the_job(daemon_factory) -> None:
    """The orchestrator prints malformed progress lines, binary, invalid UTF-8 and a 200 kB
    field: the job's outcome comes from its exit status, its record stays small and valid,
    the log is served byte for byte over HTTP and (decoded with replacement) over WebSocket."""
    d: Daemon = daemon_factory(orchestrator=[sys.executable, "-c", _NOISY])
    job_id = d.start_job()["job_id"]
    final = d.wait_job(job_id)
    assert final["status"] == "completed" and final["exit_code"] == 0, final
    path = d.root / "logs" / "jobs" / f"{job_id}.json"
    rec = msgspec.json.decode(path.read_bytes(), type=JobRecord)
    assert rec.status == JobState.COMPLETED
    assert path.stat().st_size < 300_000
    data = d.log_file(job_id).read_bytes()
    r = call(d.socket_path, "GET", f"{JOBS}/{job_id}/logs")
    assert r.status == 200 and r.body == data
    r = call(d.socket_path, "GET", f"{JOBS}/{job_id}/logs?tail=2")
    assert r.status == 200 and r.body.endswith(b"no newline at the end")
    assert d.get("/api/health").status == 200
    assert "Traceback" not in d.stderr_text()


@pytest.mark.parametrize("ends_while_down", [False, True])
def test_a_job_whose_record_is_damaged_while_benchd_is_down_is_not_lost(
        daemon_factory, ends_while_down: bool) -> None:
    """benchd dies with a job running and the job's record is then truncated (or deleted).
    The restarted benchd moves the damaged record aside but rebuilds the job from its
    supervisor's files: a live job is reattached (and still blocks a second job); one that
    ended meanwhile gets its true exit status. Who started it is not guessed."""
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=3, exit_code=0 if not ends_while_down else 4)
    job = d.start_job()["job_id"]
    d.wait_job(job, ("running",))
    d.kill9()
    record = d.root / "logs" / "jobs" / f"{job}.json"
    record.write_bytes(record.read_bytes()[:40])
    if ends_while_down:
        gate.touch()
        wait_until(lambda: (d.root / "logs" / "jobs" / f"{job}.exit").exists(), 30,
                   what="the supervisor's exit record")
    d.start()
    assert "rebuilt from its supervisor's files" in d.stderr_text()
    assert any(p.name.startswith(f"{job}.json") for p in (record.parent / "corrupt").iterdir())
    rec = d.job(job)
    assert rec["requester_name"] == "unknown (record rebuilt)" and rec["requester_uid"] == -1
    if ends_while_down:
        assert rec["status"] == "failed" and rec["exit_code"] == 4, rec
    else:
        assert rec["status"] == "running", rec
        assert d.get("/api/health").json()["active_job"]["job_id"] == job
        assert d.post_json(JOBS, {"queue": False}).status == 409   # its slot is still taken
        gate.touch()
        rec = d.wait_job(job)
        assert rec["status"] == "completed" and rec["exit_code"] == 0, rec
    assert d.log_file(job).read_text().count("line ") == 3  # the log was never lost
    # the rebuilt record is a normal record now: a second restart leaves it as it is
    d.restart(kill=False)
    assert d.job(job)["status"] == rec["status"]
