"""Which results run a command means: what `benchctl results RUN` accepts.

In order: `results/<id>` (the form `history` prints; benchd resolves it, an exact id
winning); a date `YYYY-MM-DD` means that day's runs (a listing, never one run: a legacy run
named by that date is listed with them and shown with `results/YYYY-MM-DD`); anything else
is a run id or a unique prefix of one, resolved by benchd (`GET /api/results/{run}`), and
when no run matches and it looks like a job id, the run that job produced (a job id or a
unique prefix, as `status` takes them). Run ids are tried first: they all start with a year,
so a job prefix made of digits only may name a run instead (give more of the job id).
"""
from __future__ import annotations

import re
from urllib.parse import quote

from benchctl import jobref
from benchctl.client import ApiError, Client
from benchctl.exitcodes import UNKNOWN_JOB, CliError

DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_JOB_REF_RE = re.compile(r"[0-9a-f]{1,12}")
RESULTS_PREFIX = "results/"


def day(ref: str) -> str | None:
    """`ref` when it is a bare date (list that day's runs), else None."""
    return ref if DAY_RE.fullmatch(ref) else None


def _get(client: Client, run: str) -> bytes:
    return client.call_raw("GET", f"/api/results/{quote(run, safe='')}")


def fetch(client: Client, ref: str) -> bytes:
    """The RunDetail JSON of the run `ref` means (see the module docstring)."""
    if ref.startswith(RESULTS_PREFIX):
        return _get(client, ref[len(RESULTS_PREFIX):])
    try:
        return _get(client, ref)
    except ApiError as exc:
        if exc.exit_code != UNKNOWN_JOB or not _JOB_REF_RE.fullmatch(ref.lower()):
            raise
        run_miss = exc
    try:
        job = jobref.get_job(client, ref)
    except CliError as exc:
        if exc.exit_code != UNKNOWN_JOB:
            raise   # an ambiguous job prefix: that message lists the candidates
        raise CliError(f"{run_miss.message}; no job id starts with {ref!r} either",
                       UNKNOWN_JOB) from None
    run_dir = job.get("run_dir")
    if run_dir:
        return _get(client, run_dir.rsplit("/", 1)[-1])
    staged = job.get("staged_run")
    if staged:
        raise CliError(f"job {job['job_id']} ({job.get('status')}) published no run; its run "
                       f"{staged} is staged: `benchctl run --resume {staged}` finishes it, "
                       f"`benchctl results --staged` lists it", UNKNOWN_JOB)
    raise CliError(f"job {job['job_id']} ({job.get('status')}) has no results run",
                   UNKNOWN_JOB)
