"""Waiting on jobs from benchctl: through the queue (showing the position) and until they
end (`benchctl wait`, `run --wait`). benchd has no push for a job that has no process yet, so
this is a bounded poll of its record with a growing interval (0.1 s up to 1 s): cheap for
benchd (one small GET) and at most a second late."""
from __future__ import annotations

import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any, TextIO

from benchctl.client import Client, job_path
from benchd.states import FINAL, WAITING

POLL_MIN_S, POLL_MAX_S = 0.1, 1.0


def through_queue(client: Client, job: dict[str, Any], out: TextIO) -> dict[str, Any]:
    """Poll until `job` leaves the queue (starts, or ends); tell `out` each new position."""
    shown = None
    delay = POLL_MIN_S
    while job.get("status") in WAITING:
        now = (job.get("status"), job.get("queue_position"))
        if now != shown:
            out.write(f"benchctl: job {job['job_id']} {now[0]}, position {now[1]} in the "
                      f"queue\n")
            out.flush()
            shown = now
        time.sleep(delay)  # a bounded poll of another process's state (see module doc)
        delay = min(POLL_MAX_S, delay * 2)
        job = client.call("GET", job_path(job["job_id"]))
    return job


def until_final(client: Client, job_ids: list[str], *, any_: bool,
                timeout: float | None) -> tuple[list[dict[str, Any]], bool]:
    """Poll until every job (or, `any_`, one of them) is final, or `timeout` seconds pass.
    Returns the last records seen, in `job_ids` order, and whether the wait was satisfied."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = POLL_MIN_S
    while True:
        recs = [client.call("GET", job_path(j)) for j in job_ids]
        done = [r.get("status") in FINAL for r in recs]
        if (any(done) if any_ else all(done)):
            return recs, True
        if deadline is not None and time.monotonic() >= deadline:
            return recs, False
        pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)
        delay = min(POLL_MAX_S, delay * 2)
