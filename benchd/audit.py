"""The audit trail: one INFO line per thing a person did or was refused, so that
`journalctl -u benchd` answers "who did what when".

Logger `benchd.audit`; every line starts with `audit:` and carries the job id (or run id) and
the user by name. Called from the job layer on each start and end (JobManager._update), from
the error middleware for refusals (403, 409 busy, 507) and from benchd.discard. Nothing else
formats these lines.
"""
from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache

from benchd import peercred
from benchd.errors import BenchdError
from benchd.schema import JobRecord
from benchd.states import FINAL, STOPPING, WAITING, JobState

log = logging.getLogger("benchd.audit")

AUDITED_STATUSES = frozenset({403, 409, 507})   # refusals worth a line (others are typos)


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """uid -> login name (cached: called on the event loop)."""
    try:
        return peercred.user_name(uid)
    except (OverflowError, ValueError):  # not a uid at all (-1: a rebuilt record)
        return str(uid)


def _seconds(start: str | None, end: str | None) -> str:
    try:
        secs = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"
    return f"{secs:.1f}s"


def _who(rec: JobRecord) -> str:
    return f"user {rec.requester_name} (uid {rec.requester_uid})"


def transition(rec: JobRecord) -> None:
    """A job reached `rec.status`: start (running), pause and preemption of a running job
    (asked, then done) and end (any final state) are logged."""
    label = f" label {rec.config.label!r}" if rec.config.label else ""
    if rec.status == JobState.RUNNING:
        exps = rec.config.resume and f"resume {rec.config.resume}" or \
            ",".join(rec.config.experiments or []) or "all"
        log.info("audit: job %s started by %s: experiments %s%s", rec.job_id, _who(rec),
                 exps, label)
    elif rec.status in STOPPING | WAITING and rec.status != JobState.QUEUED \
            and (rec.stop_mode is not None or rec.resume_run is not None):
        # a running job asked to stop and be kept, or stopped and kept (pause, preemption)
        why = f" for job {rec.preempted_by}" if rec.status in (
            JobState.PREEMPTING, JobState.PREEMPTED) and rec.preempted_by else ""
        how = f" ({rec.stop_mode})" if rec.stop_mode else \
            f", staged run {rec.resume_run} kept" if rec.resume_run else ""
        log.info("audit: job %s %s%s%s of %s%s", rec.job_id, rec.status.value, why, how,
                 _who(rec), label)
    elif rec.status in FINAL:
        ran = _seconds(rec.started_at or rec.created_at, rec.finished_at)
        by = ""
        if rec.status == JobState.CANCELLED and rec.cancel_requested_by is not None:
            by = f" by {user_name(rec.cancel_requested_by)} (uid {rec.cancel_requested_by})"
        how = f"exit code {rec.exit_code}" if rec.exit_code is not None else "no exit code"
        if rec.signal:
            how += f", {rec.signal}"
        log.info("audit: job %s %s%s after %s (%s) of %s%s%s", rec.job_id, rec.status.value,
                 by, ran, how, _who(rec), label,
                 f": {rec.reason}" if rec.reason else "")


def refused(err: BenchdError, method: str, path: str, uid: int | None,
            job_id: str | None) -> None:
    """A request refused with a status in AUDITED_STATUSES."""
    if err.http_status not in AUDITED_STATUSES:
        return
    who = "an unidentified peer" if uid is None else f"user {user_name(uid)} (uid {uid})"
    job = f" job {job_id}" if job_id else ""
    log.info("audit: refused %s %s from %s%s: %d %s: %s", method, path, who, job,
             err.http_status, err.code, err.message)


def discarded(run_id: str, user: str, uid: int) -> None:
    log.info("audit: staged run %s discarded by user %s (uid %d)", run_id, user, uid)
