"""Domain errors raised by the core and mapped once: to HTTP by benchd's middleware and to
exit codes by benchctl. Each carries a stable machine code and a message naming the bad field
or the conflicting job."""
from __future__ import annotations


class BenchdError(Exception):
    code: str = "internal"
    http_status: int = 500
    summary: str = "unexpected failure (details in benchd's log)"  # OpenAPI/README text

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(BenchdError):
    code, http_status = "invalid_request", 400
    summary = "invalid request (the message names the field)"


class Forbidden(BenchdError):
    code, http_status = "forbidden", 403
    summary = "another user's job or run (or a caller not on the Unix socket)"


class JobNotFound(BenchdError):
    code, http_status = "job_not_found", 404
    summary = "unknown job"


class RunNotFound(BenchdError):
    code, http_status = "run_not_found", 404
    summary = "unknown run"


class Busy(BenchdError):
    """Another job is starting or running; the message names it."""
    code, http_status = "busy", 409
    summary = "another job is active (named; its id in error.job_id)"

    def __init__(self, message: str, active_job_id: str) -> None:
        super().__init__(message)
        self.active_job_id = active_job_id


class NotCancellable(BenchdError):
    code, http_status = "not_cancellable", 409
    summary = "the job is already final"


class DeliveryNotFound(BenchdError):
    code, http_status = "delivery_not_found", 404
    summary = "unknown notification delivery"


class JobFinal(BenchdError):
    """The job has ended: nothing left to add to it (e.g. a notification target)."""
    code, http_status = "job_final", 409
    summary = "the job has ended: no events left to notify about, no priority to change"


class RunInUse(BenchdError):
    """A staged run to resume is locked by an orchestrator right now."""
    code, http_status = "run_in_use", 409
    summary = "an orchestrator is working on the run"


class PayloadTooLarge(BenchdError):
    code, http_status = "payload_too_large", 413
    summary = "body over 64 KiB"


class RequestTimeout(BenchdError):
    """The client stopped sending its request body: its connection is not held forever."""
    code, http_status = "request_timeout", 408
    summary = "body not received within --client-timeout"


class InsufficientStorage(BenchdError):
    """The logs filesystem is full: a job's log and records could not be written."""
    code, http_status = "insufficient_storage", 507
    summary = "benchd's logs filesystem is full"


class PlotsUnavailable(BenchdError):
    """matplotlib cannot be imported where benchd runs: no HTML report can be drawn."""
    code, http_status = "plots_unavailable", 501
    summary = "matplotlib is not installed where benchd runs: no HTML report"


class NotPausable(BenchdError):
    """Pause/resume asked of a job in a state where it means nothing (or is not supported)."""
    code, http_status = "not_pausable", 409
    summary = "the job cannot be paused or resumed in its state (the message says why)"


class QueueFull(BenchdError):
    """The caller already has --max-queued-per-user jobs waiting; `retry_after` (seconds) is
    sent as Retry-After: about when the first of them may have started."""
    code, http_status = "queue_full", 429
    summary = "you have --max-queued-per-user jobs waiting already (Retry-After says when to retry)"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExecutorUnavailable(BenchdError):
    """The executor cannot take a job now (`--executor slurm`: slurmctld does not answer).
    Jobs already submitted keep their state until it answers again."""
    code, http_status = "executor_unavailable", 503
    summary = "the cluster's controller (slurmctld) does not answer: no job can be submitted"


class CancelFailed(BenchdError):
    code, http_status = "cancel_failed", 500
    summary = "the job is still alive after the grace and margin"


ERRORS_BY_CODE: dict[str, type[BenchdError]] = {
    cls.code: cls
    for cls in (BenchdError, InvalidRequest, Forbidden, JobNotFound, RunNotFound, Busy,
                NotCancellable, RunInUse, PayloadTooLarge, RequestTimeout, CancelFailed,
                InsufficientStorage, DeliveryNotFound, JobFinal, PlotsUnavailable, QueueFull,
                NotPausable, ExecutorUnavailable)
}
