"""Which job a command means: a full id, a unique prefix of one, or a sensible default."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl.client import ApiError, Client, job_path, query
from benchctl.exitcodes import UNKNOWN_JOB, USAGE, CliError


def get_job(client: Client, ref: str) -> dict[str, Any]:
    """The job record for `ref`: an exact id, else the one job whose id starts with `ref`.

    The daemon validates ids (JOB_ID_RE) itself, so benchctl needs no copy of the pattern.
    """
    ref = ref.strip().lower()
    if not ref:
        raise CliError("empty job id", USAGE)
    try:
        return client.call("GET", job_path(ref))
    except ApiError as exc:
        if exc.exit_code != UNKNOWN_JOB and exc.http_status != 400:
            raise
    jobs = client.call("GET", "/api/benchmark/jobs")["jobs"]
    matches = [j for j in jobs if j["job_id"].startswith(ref)]
    if not matches:
        raise CliError(f"no job {ref!r} (no id starts with it; see `benchctl history`)",
                       UNKNOWN_JOB)
    if len(matches) > 1:
        ids = ", ".join(j["job_id"] for j in matches[:10])
        raise CliError(f"job id prefix {ref!r} is ambiguous: {ids}"
                       f"{' …' if len(matches) > 10 else ''}", USAGE)
    return matches[0]


def active_job(client: Client) -> dict[str, Any] | None:
    return client.call("GET", "/api/health").get("active_job")


def active_or_latest(client: Client) -> dict[str, Any]:
    """The running job, else the newest one in history."""
    job = active_job(client)
    if job:
        return job
    jobs = client.call("GET", "/api/benchmark/jobs" + query(limit=1))["jobs"]
    if not jobs:
        raise CliError("no jobs yet (start one with `benchctl run`)", UNKNOWN_JOB)
    return jobs[0]


def act(client: Client, ref: str, action: str,
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /api/benchmark/jobs/{id}/<action> for the job `ref` names (pause, resume), with
    `body`; the job's record as benchd answers it."""
    job = get_job(client, ref)
    return client.call("POST", job_path(job["job_id"], f"/{action}"), body or {})
