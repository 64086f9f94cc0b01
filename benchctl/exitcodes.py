"""benchctl's exit codes: the one place they are defined and errors are mapped to them.

Scripts branch on these, so they are stable. `EXIT_CODES` feeds `benchctl --help` and the
README table (a test checks the two agree). Stdlib only: imported on every call.
"""
from __future__ import annotations

from benchd.errors import (BenchdError, Busy, CancelFailed, DeliveryNotFound,
                           ExecutorUnavailable, Forbidden,
                           InsufficientStorage, InvalidRequest, JobFinal, JobNotFound,
                           NotCancellable, NotPausable, PayloadTooLarge, PlotsUnavailable,
                           QueueFull, RequestTimeout, RunInUse, RunNotFound)
from benchd.states import JobState

OK = 0              # success; for run --wait/--follow and tail -f: the job completed
JOB_FAILED = 1      # the job failed (orchestrator exited non-zero or was killed)
REGRESSION = 1      # compare: HEAD regressed against BASE (CI pipelines gate on it)
USAGE = 2           # bad command line, or the daemon refused the request (400/408/413)
JOB_CANCELLED = 3   # the job was cancelled
UNKNOWN_JOB = 4     # no such job, results run or delivery, or no job to act on
BUSY = 5            # another job is running, or the run to resume/discard is in use (409)
FORBIDDEN = 6       # someone else's job or run, and you are neither root nor in the admin group
JOB_UNKNOWN = 7     # the job's outcome is unknown (its supervisor vanished while benchd was down)
NOT_CANCELLABLE = 8  # the job had already finished
CANCEL_FAILED = 9   # the daemon could not stop the job
NO_SPACE = 10       # benchd's logs filesystem is full (507): no job can start until space is freed
NO_PLOTS = 11       # matplotlib is missing (here, or where benchd runs: 501): no HTML report
QUEUE_FULL = 12     # you have --max-queued-per-user jobs waiting (429): retry later
WAIT_TIMEOUT = 124  # `wait --timeout` passed before the jobs ended (like timeout(1))
INTERRUPTED = 130   # Ctrl-C: benchctl stopped following; the job itself keeps running
UNAVAILABLE = 69    # the daemon is unreachable (EX_UNAVAILABLE); the message names the socket
UNTRUSTED_SOCKET = 77  # a socket found by discovery is not safe to trust (EX_NOPERM); names why
INTERNAL = 70       # an unexpected answer or a daemon-side error (EX_SOFTWARE)

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (OK, "success; for run --wait/--follow and tail -f: the job completed"),
    (JOB_FAILED, "the job failed; for `compare`: a regression was found"),
    (USAGE, "usage error: bad option or value (also a request the daemon refused as invalid)"),
    (JOB_CANCELLED, "the job was cancelled (what a successful `cancel` exits with)"),
    (UNKNOWN_JOB, "unknown job, results run or notification delivery, or no job to act on"),
    (BUSY, ("busy: another job is running (the message names it), or the run to resume or "
            "discard is in use")),
    (FORBIDDEN, "forbidden: another user's job or staged run"),
    (JOB_UNKNOWN, "the job's outcome is unknown (state 'unknown')"),
    (NOT_CANCELLABLE, "the job had already finished (nothing to cancel or notify about), or "
                      "cannot be paused/resumed in its state"),
    (CANCEL_FAILED, "the daemon could not stop the job"),
    (NO_SPACE, "benchd's disk is full: no job can start until space is freed"),
    (NO_PLOTS, "--html: matplotlib is not installed (here or where benchd runs): no plots"),
    (QUEUE_FULL, "queue full: you already have the most waiting jobs benchd allows (retry "
                 "later)"),
    (WAIT_TIMEOUT, "`wait --timeout` passed before the jobs ended (they keep going)"),
    (UNAVAILABLE, "benchd is unreachable (the message names the socket tried), or its "
                  "executor is (Slurm: slurmctld does not answer, 503)"),
    (INTERNAL, "internal error: unexpected answer from benchd"),
    (UNTRUSTED_SOCKET, ("refused a socket found by discovery that another user could control "
                        "(the message names the path and why; --socket PATH overrides)")),
    (INTERRUPTED, "interrupted (Ctrl-C); a followed job keeps running"),
)

# Daemon error codes (benchd.errors, the body's error.code) -> exit code.
_BY_ERROR_CODE: dict[str, int] = {
    InvalidRequest.code: USAGE,
    PayloadTooLarge.code: USAGE,
    RequestTimeout.code: USAGE,
    Forbidden.code: FORBIDDEN,
    JobNotFound.code: UNKNOWN_JOB,
    RunNotFound.code: UNKNOWN_JOB,
    DeliveryNotFound.code: UNKNOWN_JOB,
    JobFinal.code: NOT_CANCELLABLE,
    Busy.code: BUSY,
    RunInUse.code: BUSY,
    NotCancellable.code: NOT_CANCELLABLE,
    CancelFailed.code: CANCEL_FAILED,
    InsufficientStorage.code: NO_SPACE,
    PlotsUnavailable.code: NO_PLOTS,
    QueueFull.code: QUEUE_FULL,
    NotPausable.code: NOT_CANCELLABLE,
    ExecutorUnavailable.code: UNAVAILABLE,
    BenchdError.code: INTERNAL,
}
# HTTP statuses for bodies without a known code (e.g. a 404 route from an older daemon).
_BY_HTTP_STATUS: dict[int, int] = {400: USAGE, 403: FORBIDDEN, 404: UNKNOWN_JOB, 409: BUSY,
                                   408: USAGE, 413: USAGE, 429: QUEUE_FULL,
                                   501: NO_PLOTS, 503: UNAVAILABLE, 507: NO_SPACE}

_BY_STATE: dict[str, int] = {
    JobState.COMPLETED: OK,
    JobState.FAILED: JOB_FAILED,
    JobState.CANCELLED: JOB_CANCELLED,
    JobState.UNKNOWN: JOB_UNKNOWN,
}


class CliError(Exception):
    """Stops the command with `exit_code` and prints `message` (prefixed 'benchctl: ') to stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def for_api_error(http_status: int, code: str | None) -> int:
    """Exit code for an error answer from benchd."""
    if code in _BY_ERROR_CODE:
        return _BY_ERROR_CODE[code]
    return _BY_HTTP_STATUS.get(http_status, INTERNAL)


def for_state(status: str) -> int:
    """Exit code for a job's final state (an active state is not an outcome: INTERNAL)."""
    return _BY_STATE.get(status, INTERNAL)
