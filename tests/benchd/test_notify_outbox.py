"""The notification service's bookkeeping on real files: an event derived twice (benchd killed
between queueing it and writing the record) is queued once, a crash in the middle of recording
a delivery never sends it again, and the outbox keeps its secrets private."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import msgspec
import pytest

from benchd.errors import InvalidRequest
from benchd.notifications.config import NotifyConfig
from benchd.notifications.outbox import Outbox
from benchd.notifications.service import Notifications
from benchd.notifications.targets import parse_events
from benchd.schema import JobConfig, JobRecord, NotifyTarget
from benchd.states import JobState
from tests.support.receivers import new_secret


def record(status: JobState) -> JobRecord:
    return JobRecord(job_id="0123456789ab", status=status, config=JobConfig(), requester_uid=0,
                     requester_name="root", created_at="2026-12-04T00:00:00+00:00")


async def test_an_event_derived_again_is_queued_once_and_never_after_it_was_sent(tmp_path):
    n = Notifications(tmp_path, NotifyConfig())
    target = NotifyTarget(url="http://127.0.0.1:9/x", secret=new_secret())
    n.register_job("0123456789ab", [target])
    n.on_transition(record(JobState.COMPLETED))
    n.on_transition(record(JobState.COMPLETED))           # derived again by a reconcile
    pending = n.outbox.load("pending")
    assert len(pending) == 1 and pending[0].type == "job.completed"
    n.outbox.move(pending[0], "sent")
    again = Notifications(tmp_path, NotifyConfig())       # a restarted benchd
    again.on_transition(record(JobState.COMPLETED))
    assert again.outbox.load("pending") == []
    assert [d.id for d in again.outbox.load("sent")] == [pending[0].id]


async def test_a_crash_while_recording_a_delivery_as_sent_does_not_send_it_again(tmp_path):
    n = Notifications(tmp_path, NotifyConfig())
    n.register_job("0123456789ab", [NotifyTarget(url="http://127.0.0.1:9/x",
                                                 secret=new_secret())])
    n.on_transition(record(JobState.FAILED))
    [d] = n.outbox.load("pending")
    # move() writes sent/ first, then removes pending/: stop between the two
    sent = msgspec.structs.replace(d, attempts=1, delivered_at=1.0)
    n.outbox.path("sent", d.id).write_bytes(msgspec.json.encode(sent))
    assert n.outbox.path("pending", d.id).exists()
    assert Outbox(tmp_path / "logs").load("pending") == []
    assert not n.outbox.path("pending", d.id).exists()


def test_the_outbox_and_job_targets_are_private_to_benchd(tmp_path):
    n = Notifications(tmp_path, NotifyConfig())
    secret = new_secret()
    n.register_job("0123456789ab", [NotifyTarget(url="http://127.0.0.1:9/x", secret=secret)])
    n.on_transition(record(JobState.COMPLETED))
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / "notify").st_mode) == 0o700
    files = list((tmp_path / "logs" / "notify").rglob("*.json"))
    assert len(files) == 2
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert any(secret in f.read_text() for f in files)   # kept for retries, only here


def test_event_names_and_aliases():
    assert parse_events(None, "on") == {"job.completed", "job.failed", "job.cancelled",
                                        "job.unknown"}
    assert parse_events(["fail"], "on") == {"job.failed", "job.unknown"}
    assert parse_events(["begin", "completed"], "on") == {"job.started", "job.completed"}
    with pytest.raises(InvalidRequest, match="^on: unknown event 'never'"):
        parse_events(["never"], "on")


async def test_a_published_run_that_regressed_derives_a_regression_event(tmp_path):
    """The run's manifest carries the automatic check's verdict (pipeline.compare at publish):
    a target subscribed to `regression` gets results.regression beside job.completed, and
    every event's body carries the verdict."""
    run_dir = tmp_path / "results" / "2026-12-04_00-00-00"
    run_dir.mkdir(parents=True)
    check = {"verdict": "regression", "base_run_id": "2026-12-03_00-00-00", "rows": []}
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": run_dir.name,
                                                       "regression": check}))
    n = Notifications(tmp_path, NotifyConfig())
    n.register_job("0123456789ab", [
        NotifyTarget(url="http://127.0.0.1:9/a", secret=new_secret(), on=["end", "regression"]),
        NotifyTarget(url="http://127.0.0.1:9/b", secret=new_secret())])      # default: end
    rec = msgspec.structs.replace(record(JobState.COMPLETED),
                                  run_dir=f"results/{run_dir.name}")
    n.on_transition(rec)
    got = sorted((d.target.url[-1], d.type) for d in n.outbox.load("pending"))
    assert got == [("a", "job.completed"), ("a", "results.regression"), ("b", "job.completed")]
    bodies = [json.loads(d.body) for d in n.outbox.load("pending")]
    assert all(b["data"]["regression"]["verdict"] == "regression" for b in bodies)
