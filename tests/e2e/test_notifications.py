"""Notifications end to end: a real benchd, real jobs (the fake orchestrator), a real webhook
receiver on 127.0.0.1 that checks every signature with the `standardwebhooks` library, and a
real SMTP server (aiosmtpd). Nothing is mocked."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.benchctl_run import bc
from tests.support.daemon import Daemon, daemon_factory, wait_until  # noqa: F401 (fixture)
from tests.support.receivers import SmtpSink, WebhookReceiver, new_secret

JOBS = "/api/benchmark/jobs"
FAST_RETRY = ("--notify-retry-base", "0.05")


def hook_target(hook: WebhookReceiver, on: list[str] | None = None) -> dict:
    t = {"url": hook.url, "secret": hook.secret}
    if on is not None:
        t["on"] = on
    return t


def start(d: Daemon, **config) -> dict:
    r = d.post_json(JOBS, config)
    assert r.status == 201, r.body
    return r.json()


def test_completed_failed_and_cancelled_jobs_each_notify_once(daemon_factory, tmp_path):
    with WebhookReceiver(new_secret()) as hook:
        d = daemon_factory(extra_args=FAST_RETRY)
        done = start(d, notify=[hook_target(hook)])
        assert d.wait_job(done["job_id"])["status"] == "completed"
        d.set_spec(exit_code=3)
        failed = start(d, notify=[hook_target(hook)])
        assert d.wait_job(failed["job_id"])["status"] == "failed"
        gate = tmp_path / "gate"
        d.set_spec(wait_for_file=str(gate))
        cancelled = start(d, notify=[hook_target(hook, ["all"])])
        assert d.post_json(f"{JOBS}/{cancelled['job_id']}/cancel", {}).status == 200

        want = {(done["job_id"], "job.completed"), (failed["job_id"], "job.failed"),
                (cancelled["job_id"], "job.started"), (cancelled["job_id"], "job.cancelled")}
        hook.wait_for(lambda h: {(r.body["data"]["job"]["job_id"], r.type)
                                 for r in h.delivered()} >= want)
        got = [(r.body["data"]["job"]["job_id"], r.type) for r in hook.delivered()]
        assert sorted(got) == sorted(want), "each event exactly once, nothing else"
        assert hook.bad_signatures == 0
        assert len({r.id for r in hook.delivered()}) == len(want)
        completed = hook.delivered(type="job.completed")[0].body["data"]
        assert completed["job"]["status"] == "completed" and completed["job"]["exit_code"] == 0
        assert "secret" not in json.dumps(completed)
        # the API, history and benchd's log never show a secret
        assert hook.secret not in d.get(JOBS).body.decode()
        assert hook.secret not in d.get(f"{JOBS}/{done['job_id']}").body.decode()
        assert hook.secret not in d.stderr_text()
        deliveries = d.get(f"/api/notify/deliveries?job={done['job_id']}").json()["deliveries"]
        assert [(x["type"], x["status"]) for x in deliveries] == [("job.completed", "sent")]
        # history and status show each job's delivery status; the record on disk does not
        assert d.job(done["job_id"])["notify_status"] == "1 sent"
        listed = bc(d, "history")
        assert "NOTIFY" in listed.stdout and "1 sent" in listed.stdout, listed.stdout
        on_disk = json.loads((d.root / "logs" / "jobs" / f"{done['job_id']}.json").read_text())
        assert on_disk["notify_status"] is None


def test_a_receiver_that_is_down_gets_the_event_once_when_it_comes_back(daemon_factory):
    with WebhookReceiver(new_secret(), mode="500") as hook:
        d = daemon_factory(extra_args=FAST_RETRY)
        job = start(d, notify=[hook_target(hook)])
        d.wait_job(job["job_id"])
        hook.wait_for(lambda h: len(h.seen()) >= 3)       # refused three times, retried
        hook.mode = "ok"
        hook.wait_for(lambda h: h.delivered())
        ids = {r.id for r in hook.seen()}
        assert len(ids) == 1, "every retry carries the same webhook-id"
        assert len(hook.delivered()) == 1
        info = d.get(f"/api/notify/deliveries?job={job['job_id']}").json()["deliveries"][0]
        assert info["status"] == "sent" and info["attempts"] >= 4


def test_benchd_killed_before_delivery_delivers_after_restart(daemon_factory, tmp_path):
    """Two crashes: one after the event was queued but before it got through (the receiver
    is down), one while the job ends with benchd down (the event is derived at reconcile)."""
    with WebhookReceiver(new_secret(), mode="500") as hook:
        d = daemon_factory(extra_args=FAST_RETRY)
        first = start(d, notify=[hook_target(hook)])
        d.wait_job(first["job_id"])
        hook.wait_for(lambda h: h.seen())                  # queued and tried once
        d.kill9()
        gate = tmp_path / "gate"
        d.set_spec(wait_for_file=str(gate))
        hook.mode = "ok"
        d.start()
        hook.wait_for(lambda h: h.delivered(type="job.completed"))
        second = start(d, notify=[hook_target(hook)])
        d.kill9()
        gate.touch()                                       # the job ends while benchd is down
        wait_until(lambda: (d.root / "logs" / "jobs" / f"{second['job_id']}.exit").exists()
                   or not (d.root / "logs" / "jobs" / f"{second['job_id']}.lock").exists(),
                   timeout=20)
        d.start()
        hook.wait_for(lambda h: len(h.delivered(type="job.completed")) == 2)
        by_job = sorted(r.body["data"]["job"]["job_id"] for r in hook.delivered())
        assert by_job == sorted([first["job_id"], second["job_id"]])


def test_a_hanging_receiver_does_not_hold_up_the_api_or_other_targets(daemon_factory):
    with WebhookReceiver(new_secret(), mode="hang") as slow, \
            WebhookReceiver(new_secret()) as fast:
        d = daemon_factory(extra_args=FAST_RETRY)
        job = start(d, notify=[hook_target(slow), hook_target(fast)])
        d.wait_job(job["job_id"])
        slow.wait_for(lambda h: h.seen())                  # benchd is stuck on it now
        fast.wait_for(lambda h: h.delivered())             # the other target is not
        for _ in range(20):                                # and the API answers meanwhile
            assert d.get("/api/health", timeout=5).status == 200
        assert not slow.delivered()


def test_mail_is_sent_through_smtp(daemon_factory, tmp_path):
    with SmtpSink() as smtp:
        conf = tmp_path / "notify.toml"
        conf.write_text(f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                        f'from = "benchd@lab.test"\n')
        d = daemon_factory(extra_args=(*FAST_RETRY, "--notify-config", str(conf)))
        d.set_spec(exit_code=4, stderr_line="Traceback: the last words")
        job = start(d, notify=[{"url": "mailto:alice@lab.test", "on": ["fail"]}])
        d.wait_job(job["job_id"])
        wait_until(lambda: smtp.messages, timeout=20)
        [(rcpt, msg)] = smtp.messages
        assert rcpt == ["alice@lab.test"]
        assert msg["Subject"].startswith(f"[benchd] job {job['job_id']} failed")
        text = msg.get_payload(decode=True).decode()
        assert "outcome:     failed (exit 4)" in text
        assert "Traceback: the last words" in text
        assert f"benchctl logs {job['job_id']}" in text


def test_server_wide_targets_get_every_failure(daemon_factory, tmp_path):
    with WebhookReceiver(new_secret()) as admin:
        conf = tmp_path / "notify.toml"
        conf.write_text(f'[[target]]\nurl = "{admin.url}"\nsecret = "{admin.secret}"\n'
                        f'on = ["fail"]\n')
        os.chmod(conf, 0o640)
        d = daemon_factory(extra_args=(*FAST_RETRY, "--notify-config", str(conf)))
        ok = start(d)
        d.wait_job(ok["job_id"])
        d.set_spec(exit_code=1)
        bad = start(d)
        d.wait_job(bad["job_id"])
        admin.wait_for(lambda h: h.delivered())
        assert [r.body["data"]["job"]["job_id"] for r in admin.delivered()] == [bad["job_id"]]


@pytest.mark.parametrize("target, field, words", [
    ({"url": "ftp://x/y"}, "notify[0].url", "scheme 'ftp'"),
    ({"url": "file:///etc/passwd"}, "notify[0].url", "scheme 'file'"),
    ({"url": "http://127.0.0.1:1/x"}, "notify[0].secret", "needs a secret"),
    ({"url": "http://127.0.0.1:1/x", "secret": "hunter2"}, "notify[0].secret", "whsec_"),
    ({"url": "http://127.0.0.1:1/x", "secret": "whsec_" + "A" * 32, "on": ["lunch"]},
     "notify[0].on", "unknown event 'lunch'"),
    ({"url": "mailto:a@b.c"}, "notify[0].url", "SMTP server"),
    ({"url": "mailto:a@b.c\r\nBcc: x@y"}, "notify[0].url", "http(s)"),
    ({"url": "http://evil.example/x", "secret": "whsec_" + "A" * 32}, "notify[0].url",
     "not allowed"),
])
def test_bad_targets_are_refused_and_nothing_starts(daemon_factory, target, field, words):
    d = daemon_factory(extra_args=("--notify-allow-hosts", "127.0.0.1,localhost"))
    r = d.post_json(JOBS, {"notify": [target]})
    assert r.status == 400, r.body
    assert r.error["message"].startswith(field), r.error
    assert words in r.error["message"]
    assert d.get(JOBS).json()["jobs"] == []


def test_dead_letters_are_listed_and_retried_by_hand(daemon_factory):
    with WebhookReceiver(new_secret(), mode="500") as hook:
        d = daemon_factory(extra_args=(*FAST_RETRY, "--notify-give-up", "0.3"))
        job = start(d, notify=[hook_target(hook)])
        d.wait_job(job["job_id"])
        wait_until(lambda: d.get("/api/notify/deliveries?status=dead").json()["deliveries"],
                   timeout=20)
        listed = bc(d, "notify", "--failed")
        assert listed.returncode == 0, listed.stderr
        assert "job.completed" in listed.stdout and "dead" in listed.stdout
        [dead] = d.get("/api/notify/deliveries?status=dead").json()["deliveries"]
        hook.mode = "ok"
        retried = bc(d, "notify", "retry", dead["id"])
        assert retried.returncode == 0, retried.stderr
        hook.wait_for(lambda h: h.delivered())
        assert {r.id for r in hook.delivered()} == {dead["id"]}


def test_benchctl_run_notify_and_notify_test(daemon_factory, tmp_path):
    with WebhookReceiver(new_secret()) as hook:
        d = daemon_factory()
        home = tmp_path / "home"
        (home / ".config" / "benchctl").mkdir(parents=True)
        cfg = home / ".config" / "benchctl" / "config.toml"
        cfg.write_text(f'[[notify]]\nurl = "{hook.url}"\nsecret = "{hook.secret}"\n'
                       f'on = ["end"]\n')
        os.chmod(cfg, 0o600)
        tested = bc(d, "notify", "test", hook.url, HOME=str(home))
        assert tested.returncode == 0, tested.stderr
        assert "200" in tested.stdout
        hook.wait_for(lambda h: h.delivered(type="benchd.test"))
        ran = bc(d, "run", "--wait", "-e", "gmst_era", HOME=str(home))   # the user's default target
        assert ran.returncode == 0, ran.stderr
        hook.wait_for(lambda h: h.delivered(type="job.completed"))
        bad = bc(d, "run", "--notify", "gopher://x", HOME=str(home))
        assert bad.returncode == 2 and "--notify" in bad.stderr
        assert d.get(JOBS).json()["jobs"][0]["config"]["notify"] == [{"url": hook.url,
                                                                      "on": ["end"]}]
