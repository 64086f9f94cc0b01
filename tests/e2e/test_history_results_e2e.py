"""What a daily user trips over, end to end: the real `benchctl` against a real benchd on a
real Unix socket. Jobs connect to their results (`results` takes run ids, prefixes, the
`results/<id>` form history prints, job ids and dates; staged runs of failed and cancelled
jobs are shown), history pages on a terminal (a pseudo-terminal here) and not in a pipe,
filters and cursors are applied by benchd, jobs carry labels, benchd keeps an audit trail in
its own log, and `cancel` exits with the job's outcome."""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec

from benchd.schema import JobConfig, JobList, JobRecord
from benchd.states import JobState
from benchd.store import Store
from pipeline.schema import RunList
from tests.hostile.conftest import NEEDS_ROOT, tmpfs  # noqa: F401 (fixture)
from tests.support.benchctl_run import BENCHCTL, bc, env_for
from tests.support.daemon import Daemon, daemon_factory, wait_until  # noqa: F401 (fixture)
from tests.support.terminal import in_pty

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "pipeline" / "fixtures"
TOY_PIPELINE = dict(orchestrator=[sys.executable, "-m", "pipeline"],
                    env={"PYTHONPATH": f"{FIXTURES}{os.pathsep}{REPO}",
                         "PIPELINE_REGISTRY": "toy_registry"})


def _pty(argv: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, str, str]:
    """argv with stdout on a pseudo-terminal and stderr on a pipe: (exit, screen, stderr)."""
    env = {"PAGER": "cat", **env}   # a long table would go to less, which waits for keys
    code, screen, err = in_pty(argv, env, stderr_apart=True, timeout=timeout)
    return code, screen.decode(), err.decode()


def _rows(text: str) -> list[list[str]]:
    """Data rows of a table (header dropped), split on whitespace."""
    return [line.split() for line in text.replace("\r", "").splitlines()[1:] if line.strip()]


# --- 1. jobs and results connect -----------------------------------------------------------

def test_results_takes_run_ids_prefixes_the_history_form_job_ids_and_dates(daemon_factory
                                                                             ) -> None:
    d = daemon_factory(**TOY_PIPELINE)
    r = bc(d, "run", "--wait", "--json", "-e", "gmst_era", "--ci", "--no-perf", timeout=240)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    run_dir = job["run_dir"]
    run_id = run_dir.split("/")[1]
    results = d.root / "results"
    others = ["2024-03-03_23-51-25", "2024-03-03_08-00-00", "2024-03-02_01-00-00",
              "2025-06-01_10-00-00"]
    for other in others:
        shutil.copytree(results / run_id, results / other)
    shutil.copytree(FIXTURES / "legacy_results" / "2025-06-01", results / "2025-06-01")

    hist = bc(d, "history")
    assert hist.returncode == 0 and run_dir in hist.stdout, hist.stdout
    r = bc(d, "results", run_dir)                       # what history prints
    assert r.returncode == 0 and f"run {run_id} (v1)" in r.stdout, r.stderr
    r = bc(d, "results", job["job_id"][:6])             # a job id prefix: its run
    assert r.returncode == 0 and f"run {run_id} (v1)" in r.stdout, r.stderr
    r = bc(d, "results", "2024-03-03_23")               # a unique run id prefix
    assert r.returncode == 0 and "run 2024-03-03_23-51-25 (v1)" in r.stdout, r.stderr

    r = bc(d, "results", "2024-03-03")                  # a date: that day's runs
    assert r.returncode == 0, r.stderr
    assert [row[0] for row in _rows(r.stdout)] == ["2024-03-03_23-51-25", "2024-03-03_08-00-00"]
    r = bc(d, "results", "2024-03-03", "--json")
    assert [x.run_id for x in msgspec.json.decode(r.stdout, type=RunList).runs] == \
        ["2024-03-03_23-51-25", "2024-03-03_08-00-00"]
    r = bc(d, "results", "2025-06-01")                  # the legacy run is that day's too
    assert [row[0] for row in _rows(r.stdout)] == ["2025-06-01_10-00-00", "2025-06-01"]
    r = bc(d, "results", "results/2025-06-01")          # ... and shown by its exact name
    assert r.returncode == 0 and "run 2025-06-01 (legacy)" in r.stdout, r.stderr
    r = bc(d, "results", "1999-01-01")
    assert r.returncode == 4 and "no run on 1999-01-01" in r.stderr, r.stderr

    r = bc(d, "results", "2024-03")                     # ambiguous: the candidates, exit 2
    assert r.returncode == 2 and "ambiguous" in r.stderr, r.stderr
    assert "2024-03-03_23-51-25" in r.stderr and "2024-03-02_01-00-00" in r.stderr
    r = bc(d, "results", "fedcba")                      # neither a run nor a job
    assert r.returncode == 4 and "no job id starts with 'fedcba'" in r.stderr, r.stderr

    # the API resolves prefixes too, and pages the list with a cursor
    got = d.get("/api/results/2024-03-02")
    assert got.status == 200 and got.json()["run_id"] == "2024-03-02_01-00-00", got.body
    assert d.get("/api/results/2025-06-01").json()["layout"] == "legacy"  # exact id wins
    assert d.get("/api/results/2024-03").status == 400
    everything = [x["run_id"] for x in d.get("/api/results").json()["runs"]]
    assert len(everything) == 6
    paged, cursor = [], None
    while True:
        page = d.get("/api/results?limit=4" + (f"&before={cursor}" if cursor else "")).json()
        paged += [x["run_id"] for x in page["runs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert paged == everything
    assert d.get("/api/results?before=../etc").status == 400


def test_failed_and_cancelled_jobs_show_their_staged_run(daemon_factory, tmp_path: Path
                                                         ) -> None:
    d = daemon_factory()
    gate = tmp_path / "gate"
    d.set_spec(wait_for_file=str(gate), staging=True)
    job_id = bc(d, "run").stdout.strip()
    running = d.wait_job(job_id, ("running",))
    run_id = wait_until(lambda: (d.job(job_id).get("progress") or {}).get("run_id"), 15,
                        what="the job's run id")
    assert running["staged_run"] is None
    r = bc(d, "cancel", job_id, "--grace", "2")
    assert r.returncode == 3, r.stderr          # cancel exits with the outcome: cancelled
    assert f"results {run_id} (staged)" in r.stdout, r.stdout
    d.set_spec(exit_code=1, staging=True)
    failed = json.loads(bc(d, "run", "--wait", "--json").stdout)
    assert failed["status"] == "failed" and failed["staged_run"]

    rows = _rows(bc(d, "history").stdout)
    assert rows[0][0] == failed["job_id"] and rows[0][-2:] == [failed["staged_run"], "(staged)"]
    assert rows[1][0] == job_id and rows[1][-2:] == [run_id, "(staged)"]
    jobs = msgspec.json.decode(bc(d, "history", "--json").stdout, type=JobList).jobs
    assert [j.staged_run for j in jobs] == [failed["staged_run"], run_id]
    r = bc(d, "status", job_id)
    assert f"{run_id} (staged)" in r.stdout, r.stdout
    r = bc(d, "results", job_id)
    assert r.returncode == 4 and f"run --resume {run_id}" in r.stderr, r.stderr

    r = bc(d, "results", "--discard", run_id)   # gone from .staging: no longer shown
    assert r.returncode == 0, r.stderr
    assert d.job(job_id)["staged_run"] is None
    assert f"audit: staged run {run_id} discarded by user" in d.stderr_text()


# --- 8. history scales ---------------------------------------------------------------------

def _seed_jobs(d: Daemon, n: int) -> list[JobRecord]:
    """n finished jobs an hour apart, the newest half an hour ago, by two users, some
    labelled (half-hour offsets: `--since 5h` cannot land on a job's own time)."""
    store = Store(d.root)
    now = datetime.now(timezone.utc)
    out = []
    for i in range(n):
        created = (now - timedelta(hours=n - i - 0.5)).isoformat(timespec="milliseconds")
        rec = JobRecord(job_id=f"{i:012x}", status=JobState.COMPLETED,
                        config=JobConfig(experiments=["gmst_era"] if i % 3 else ["equ_ecl"],
                                         label="nightly" if i % 5 == 0 else None),
                        requester_uid=0 if i % 2 else 1, created_at=created,
                        requester_name="alice" if i % 2 else "bob", started_at=created,
                        finished_at=created, exit_code=0)
        store.save(rec)
        out.append(rec)
    return out


def test_history_pages_on_a_terminal_lists_all_when_piped_and_filters_on_the_server(
        daemon_factory) -> None:
    d = daemon_factory(start=False)
    seeded = _seed_jobs(d, 45)
    d.start()
    newest_first = [r.job_id for r in reversed(seeded)]

    code, screen, err = _pty([*BENCHCTL, "history"], env_for(d, TERM="xterm"))
    assert code == 0, err
    assert [row[0] for row in _rows(screen)] == newest_first[:20]
    assert err == "20 of 45 jobs shown; --limit N or --all\n"
    code, screen, err = _pty([*BENCHCTL, "history", "--all"], env_for(d, TERM="xterm"))
    assert len(_rows(screen)) == 45 and err == ""
    code, screen, err = _pty([*BENCHCTL, "history", "--limit", "3"], env_for(d, TERM="xterm"))
    assert len(_rows(screen)) == 3 and err == "3 of 45 jobs shown; --limit N or --all\n"

    r = bc(d, "history")                                  # piped: everything, no footer
    assert [row[0] for row in _rows(r.stdout)] == newest_first and r.stderr == ""
    assert len(msgspec.json.decode(bc(d, "history", "--json").stdout, type=JobList).jobs) == 45

    def ids(*args: str) -> list[str]:
        r = bc(d, "history", *args)
        assert r.returncode == 0, r.stderr
        return [row[0] for row in _rows(r.stdout)]
    assert ids("--user", "bob") == [r.job_id for r in reversed(seeded) if r.requester_name == "bob"]
    nightly = [r.job_id for r in reversed(seeded) if r.config.label == "nightly"]
    assert ids("--label", "nightly") == nightly and len(nightly) == 9
    assert ids("--experiment", "equ_ecl") == [r.job_id for r in reversed(seeded)
                                              if r.config.experiments == ["equ_ecl"]]
    assert ids("--since", "5h") == newest_first[:5]       # one job an hour
    assert ids("--since", "10h", "--until", "5h") == newest_first[5:10]
    assert ids("--user", "alice", "--label", "nightly", "--limit", "2") == \
        [r.job_id for r in reversed(seeded)
         if r.requester_name == "alice" and r.config.label == "nightly"][:2]
    day = seeded[0].created_at[:10]
    assert set(ids("--until", day)) == {r.job_id for r in seeded if r.created_at[:10] <= day}
    r = bc(d, "history", "--user", "nobody-here")
    assert r.returncode == 0 and r.stdout == "no jobs with user nobody-here\n"
    r = bc(d, "history", "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr and "2d" in r.stderr

    # the API's cursor: pages of 10 walk the whole history exactly once, newest first
    walked, cursor = [], None
    while True:
        page = d.get("/api/benchmark/jobs?limit=10" + (f"&before={cursor}" if cursor else ""))
        assert page.status == 200
        body = page.json()
        assert body["total"] == 45
        walked += [j["job_id"] for j in body["jobs"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert walked == newest_first
    for bad in ("before=ffffffffffff", "before=../x", "since=yesterday", "until=2026-13-01"):
        r = d.get(f"/api/benchmark/jobs?{bad}")
        assert r.status == 400 and r.error["message"].startswith(bad.split("=")[0]), r.body


# --- 9. labels -----------------------------------------------------------------------------

def test_job_labels_are_checked_shown_and_filtered(daemon_factory) -> None:
    d = daemon_factory()
    r = bc(d, "run", "--wait", "--label", "nightly build")
    assert r.returncode == 0, r.stderr
    bc(d, "run", "--wait")
    rows = _rows(bc(d, "history").stdout)
    assert rows[1][6:8] == ["nightly", "build"] and rows[0][6] == "-"   # STARTED is one ISO word
    job_id = rows[1][0]
    assert "label:" in bc(d, "status", job_id).stdout and "nightly build" in \
        bc(d, "status", job_id).stdout
    assert [row[0] for row in _rows(bc(d, "history", "--label", "nightly build").stdout)] == \
        [job_id]
    for bad in ("x" * 65, "tab\there", ""):
        r = bc(d, "run", "--label", bad)
        assert r.returncode == 2 and r.stderr.startswith("benchctl: --label:"), (bad, r.stderr)
    r = d.post_json("/api/benchmark/jobs", {"label": "a\nb"})
    assert r.status == 400 and r.error["message"].startswith("label:")
    r = d.post_json("/api/benchmark/jobs", {"label": 7})
    assert r.status == 400 and r.error["message"].startswith("label:")
    assert len(d.get("/api/benchmark/jobs").json()["jobs"]) == 2   # nothing else started


# --- 11. audit trail -------------------------------------------------------------------------

def _as_user(sock: Path, uid: int, gid: int, request: bytes) -> bytes:
    """Send one raw HTTP request as another uid (SO_PEERCRED sees it): a forked child drops
    to uid/gid, connects, and hands the answer back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, only os._exit
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(str(sock))
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data


@NEEDS_ROOT
def test_benchd_logs_an_audit_line_for_each_start_end_cancel_and_refusal(daemon_factory,
                                                                         tmp_path: Path,
                                                                         tmpfs) -> None:
    d = daemon_factory(start=False)
    logs = tmpfs(d.root / "logs", "4m")
    d.start()
    ok = json.loads(bc(d, "run", "--wait", "--json", "--label", "nightly").stdout)
    gate = tmp_path / "gate"
    d.set_spec(wait_for_file=str(gate))
    held = d.start_job()
    d.wait_job(held["job_id"], ("running",))
    assert bc(d, "run", "--no-queue").returncode == 5          # 409 busy
    # another user's cancel: 403 (the socket's directory and mode opened for them)
    os.chmod(d.socket_path.parent, 0o755)
    os.chmod(d.socket_path, 0o666)
    answer = _as_user(d.socket_path, 65534, 65534,
                      f"POST /api/benchmark/jobs/{held['job_id']}/cancel HTTP/1.1\r\n"
                      f"Host: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert b" 403 " in answer.split(b"\r\n", 1)[0], answer[:200]
    assert bc(d, "cancel", held["job_id"]).returncode == 3
    filler = logs / "filler"                                   # fill the logs filesystem
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert bc(d, "run").returncode == 10                       # 507
    filler.unlink()

    text = d.stderr_text()
    audit = [line for line in text.splitlines() if "audit:" in line]
    me = f"user root (uid 0)"
    expect = [
        f"audit: job {ok['job_id']} started by {me}: experiments all label 'nightly'",
        f"audit: job {ok['job_id']} completed after",
        f"audit: refused POST /api/benchmark/jobs from {me} job {held['job_id']}: 409 busy",
        f"audit: refused POST /api/benchmark/jobs/{held['job_id']}/cancel from user nobody "
        f"(uid 65534) job {held['job_id']}: 403 forbidden",
        f"audit: job {held['job_id']} cancelled by root (uid 0) after",
        f"audit: refused POST /api/benchmark/jobs from {me}: 507 insufficient_storage",
    ]
    for want in expect:
        assert any(want in line for line in audit), (want, audit)
    assert [i for want in expect for i, line in enumerate(audit) if want in line] == \
        sorted(i for want in expect for i, line in enumerate(audit) if want in line)
    assert all(" INFO benchd.audit: " in line for line in audit), audit
    assert f"of {me}" in next(line for line in audit if "cancelled by" in line)


# --- 12. docs agree with behaviour -------------------------------------------------------------

def test_openapi_of_a_running_daemon_documents_the_507(daemon_factory) -> None:
    d = daemon_factory()
    doc = d.get("/api/openapi.json").json()
    post = doc["paths"]["/api/benchmark/jobs"]["post"]["responses"]
    assert "insufficient_storage" in post["507"]["description"]
    assert {"next", "total"} <= set(doc["components"]["schemas"]["JobList"]["properties"])
    params = {p["name"] for p in doc["paths"]["/api/benchmark/jobs"]["get"]["parameters"]}
    assert params >= {"before", "limit", "user", "label", "experiment", "since", "until"}


def test_cancel_exits_with_the_jobs_outcome(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory()
    gate = tmp_path / "gate"
    d.set_spec(wait_for_file=str(gate))
    job_id = bc(d, "run").stdout.strip()
    d.wait_job(job_id, ("running",))
    r = bc(d, "cancel", "--json")
    assert r.returncode == 3, r.stderr
    assert msgspec.json.decode(r.stdout, type=JobRecord).status is JobState.CANCELLED
    assert bc(d, "cancel", job_id).returncode == 8          # already final
    assert "3  the job was cancelled (what a successful `cancel` exits with)" in \
        bc(d, "cancel", "--help").stdout
