"""Resuming a cancelled run through benchd and benchctl, with the real orchestrator
(`python -m pipeline`) on the toy registry (tests/pipeline/fixtures/toy_registry.py: a slow
"library" to cancel in the middle of): the staged run is listed, resumed by id with its stored
config, only its missing experiment runs, and it is published under the same id."""
from __future__ import annotations

import json
import os
import pwd
import re
import sys
from pathlib import Path

from tests.support.benchctl_run import bc
from tests.pipeline.fixtures import pipeline_run as pr
from tests.support.daemon import daemon_factory, wait_until  # noqa: F401 (fixture)

FIXTURES = Path(pr.__file__).parent


def _daemon(daemon_factory, slow_s: str):  # type: ignore[no-untyped-def]
    env = {"PYTHONPATH": os.pathsep.join([str(FIXTURES), str(pr.ROOT)]),
           "PIPELINE_REGISTRY": "toy_registry", "TOY_SLOW_SECONDS": slow_s}
    return daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"], env=env)


def test_cancel_then_resume_publishes_the_same_run(daemon_factory) -> None:
    d = _daemon(daemon_factory, "120")
    job = d.start_job(experiments=["gmst_era", "kepler_solver"], n=10, no_perf=True)["job_id"]
    wait_until(lambda: (d.job(job).get("progress") or {}).get("experiment") == "kepler_solver",
               60, what="the slow experiment")
    r = bc(d, "cancel", job)
    assert r.returncode == 3 and "cancelled" in r.stdout, r.stdout + r.stderr

    r = bc(d, "results", "--staged", "--json")
    assert r.returncode == 0, r.stderr
    [run] = json.loads(r.stdout)["runs"]
    assert (run["status"], run["done"], run["resumable"]) == ("interrupted", ["gmst_era"], True)
    run_id = run["run_id"]
    assert d.job(job)["progress"]["run_id"] == run_id
    r = bc(d, "results", "--staged")
    assert run_id in r.stdout and "1/2" in r.stdout and "stopped by SIGTERM" in r.stdout
    kept = (d.root / "results" / ".staging" / run_id / "gmst_era" / "toyref.json").read_bytes()
    # under benchd the log's hint is benchctl's command, and the reason says who and how
    assert f"finish it with: benchctl run --resume {run_id}\n" in d.log_file(job).read_text()
    assert re.match(rf"cancelled by {re.escape(pwd.getpwuid(os.getuid()).pw_name)}: stopped by SIGTERM "
                    r"after \d+\.\d s$", d.job(job)["reason"]), d.job(job)["reason"]

    # refusals name what is wrong and start nothing
    r = bc(d, "run", "--resume", run_id, "--n", "5")
    assert r.returncode == 2 and "--n" in r.stderr
    r = d.post_json("/api/benchmark/jobs", {"resume": run_id, "seed": 1})
    assert r.status == 400 and r.json()["error"]["message"].startswith("resume: cannot be "
                                                                        "combined with seed")
    r = bc(d, "run", "--resume", "../../etc")
    assert r.returncode == 2 and "not a run id" in r.stderr
    r = bc(d, "run", "--resume", "1999-01-01_00-00-00")
    assert r.returncode == 4 and "no staged run" in r.stderr
    assert len(d.get("/api/benchmark/jobs").json()["jobs"]) == 1

    d.env["TOY_SLOW_SECONDS"] = "0"       # the resumed orchestrator inherits benchd's env
    d.restart()
    r = bc(d, "run", "--resume", run_id, "--wait", "--json", timeout=120)
    assert r.returncode == 0, r.stderr + d.stderr_text()[-2000:]
    final = json.loads(r.stdout)
    assert final["config"]["resume"] == run_id
    assert final["run_dir"].endswith(run_id)
    published = d.root / "results" / run_id
    assert (published / "gmst_era" / "toyref.json").read_bytes() == kept   # not redone
    assert (published / "kepler_solver" / "toy_slow.json").exists()
    assert json.loads(bc(d, "results", "--staged", "--json").stdout)["runs"] == []
    r = bc(d, "history")
    row = next(line for line in r.stdout.splitlines() if f"resume {run_id}" in line)
    assert row.split()[row.split().index(run_id) + 1] == "10"     # the stored n, reported
    r = bc(d, "run", "--resume", run_id)
    assert r.returncode == 2 and "already published" in r.stderr


def test_resume_of_a_run_an_orchestrator_holds_is_409(daemon_factory, tmp_path: Path) -> None:
    d = _daemon(daemon_factory, "120")
    results = d.root / "results"
    # an orchestrator outside benchd (started by hand on the same results dir) holds the run
    with pr.Pipeline(["--experiments", "kepler_solver", "--n", "10", "--no-perf"], results,
                     pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        run_id = p.wait_progress(lambda e: e.get("adapter") == "toy_slow")["run_id"]
        r = d.post_json("/api/benchmark/jobs", {"resume": run_id})
        assert r.status == 409 and r.json()["error"]["code"] == "run_in_use", r.body
        r = bc(d, "run", "--resume", run_id)
        assert r.returncode == 5 and "working on run" in r.stderr
        r = bc(d, "results", "--staged")
        assert "running (in use)" in r.stdout
        r = bc(d, "results", "--discard", run_id)       # nor discard it
        assert r.returncode == 5 and "working on run" in r.stderr, r.stderr
        assert (results / ".staging" / run_id).is_dir()
    assert d.get("/api/benchmark/jobs").json()["jobs"] == []


def test_cancel_then_discard_deletes_the_staged_run(daemon_factory) -> None:
    """A cancelled real run is discarded through benchctl: gone from the listing and the
    disk, refused by a later resume; published runs and bad ids are refused."""
    d = _daemon(daemon_factory, "120")
    job = d.start_job(experiments=["gmst_era", "kepler_solver"], n=10, no_perf=True)["job_id"]
    wait_until(lambda: (d.job(job).get("progress") or {}).get("experiment") == "kepler_solver",
               60, what="the slow experiment")
    run_id = d.job(job)["progress"]["run_id"]
    r = bc(d, "results", "--discard", run_id)     # the active job is working on it
    assert r.returncode == 5 and job in r.stderr, r.stderr
    assert bc(d, "cancel", job).returncode == 3
    assert (d.root / "results" / ".staging" / run_id / "gmst_era").is_dir()

    r = bc(d, "results", "--discard", run_id, "--json")
    assert r.returncode == 0, r.stderr
    gone = json.loads(r.stdout)
    assert gone["run_id"] == run_id and gone["run"]["done"] == ["gmst_era"]
    assert gone["run"]["status"] == "interrupted"
    assert json.loads(bc(d, "results", "--staged", "--json").stdout)["runs"] == []
    assert os.listdir(d.root / "results" / ".staging") == []
    r = bc(d, "run", "--resume", run_id)
    assert r.returncode == 4 and "no staged run" in r.stderr

    for argv, code, words in ((["--discard"], 2, "takes the id"),
                              (["--discard", "latest"], 2, "takes the id"),
                              (["--discard", "../../etc"], 2, "not a run id"),
                              (["--discard", "--staged", run_id], 2, "cannot be combined"),
                              (["--discard", run_id], 4, "no staged run")):
        r = bc(d, "results", *argv)
        assert (r.returncode, words in r.stderr) == (code, True), (argv, r.returncode, r.stderr)
    d.env["TOY_SLOW_SECONDS"] = "0"
    d.restart()
    r = bc(d, "run", "-e", "gmst_era", "--n", "10", "--no-perf", "--wait", "--json",
           timeout=120)
    assert r.returncode == 0, r.stderr
    published = json.loads(r.stdout)["run_dir"].rsplit("/", 1)[-1]
    r = bc(d, "results", "--discard", published)
    assert r.returncode == 2 and "never deleted" in r.stderr, r.stderr
    assert (d.root / "results" / published / "manifest.json").is_file()
