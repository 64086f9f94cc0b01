"""Domain errors raised by the core and mapped once: to HTTP by benchd's middleware and to
exit codes by benchctl. Each carries a stable machine code and a message naming the bad field
or the conflicting job."""
from __future__ import annotations


class BenchdError(Exception):
    code: str = "internal"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(BenchdError):
    code, http_status = "invalid_request", 400


class Forbidden(BenchdError):
    code, http_status = "forbidden", 403


class JobNotFound(BenchdError):
    code, http_status = "job_not_found", 404


class RunNotFound(BenchdError):
    code, http_status = "run_not_found", 404


class Busy(BenchdError):
    """Another job is starting or running; the message names it."""
    code, http_status = "busy", 409

    def __init__(self, message: str, active_job_id: str) -> None:
        super().__init__(message)
        self.active_job_id = active_job_id


class NotCancellable(BenchdError):
    code, http_status = "not_cancellable", 409


class DeliveryNotFound(BenchdError):
    code, http_status = "delivery_not_found", 404


class JobFinal(BenchdError):
    """The job has ended: nothing left to add to it (e.g. a notification target)."""
    code, http_status = "job_final", 409


class RunInUse(BenchdError):
    """A staged run to resume is locked by an orchestrator right now."""
    code, http_status = "run_in_use", 409


class PayloadTooLarge(BenchdError):
    code, http_status = "payload_too_large", 413


class RequestTimeout(BenchdError):
    """The client stopped sending its request body: its connection is not held forever."""
    code, http_status = "request_timeout", 408


class InsufficientStorage(BenchdError):
    """The logs filesystem is full: a job's log and records could not be written."""
    code, http_status = "insufficient_storage", 507


class CancelFailed(BenchdError):
    code, http_status = "cancel_failed", 500


ERRORS_BY_CODE: dict[str, type[BenchdError]] = {
    cls.code: cls
    for cls in (BenchdError, InvalidRequest, Forbidden, JobNotFound, RunNotFound, Busy,
                NotCancellable, RunInUse, PayloadTooLarge, RequestTimeout, CancelFailed,
                InsufficientStorage, DeliveryNotFound, JobFinal)
}
