"""Which notification targets and events benchd accepts, and how a target is shown.

Only http(s) webhooks and mailto: are taken (anything else is refused naming the scheme), a
webhook must carry a Standard Webhooks secret (`whsec_` + base64) so its receiver can check
who sent it, and the admin may restrict webhook hosts. A target is shown without its secret.
"""
from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from benchd.errors import InvalidRequest
from benchd.schema import NotifyTarget
from benchd.states import JobState

EVENT_FOR_STATE: dict[JobState, str] = {
    JobState.RUNNING: "job.started",
    JobState.COMPLETED: "job.completed",
    JobState.FAILED: "job.failed",
    JobState.CANCELLED: "job.cancelled",
    JobState.UNKNOWN: "job.unknown",
    JobState.PAUSED: "job.paused",         # held by its owner (benchctl pause)
    JobState.PREEMPTED: "job.preempted",   # taken off its slot for a higher priority
}
REGRESSION_EVENT = "results.regression"   # a published run's automatic check found one
EVENTS: tuple[str, ...] = (*EVENT_FOR_STATE.values(), REGRESSION_EVENT)
FINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled", "job.unknown"})
# Slurm's --mail-type words, plus each event's short name
ALIASES: dict[str, frozenset[str]] = {
    "begin": frozenset({"job.started"}),
    "end": FINAL_EVENTS,
    "fail": frozenset({"job.failed", "job.unknown"}),
    "all": frozenset(EVENTS),
    "regression": frozenset({REGRESSION_EVENT}),
    **{e.removeprefix("job."): frozenset({e}) for e in EVENTS if e.startswith("job.")},
}
DEFAULT_EVENTS = FINAL_EVENTS
TEST_EVENT = "benchd.test"
MAX_TARGETS = 16
_MAILTO_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
_MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class TargetPolicy:
    """What this benchd accepts: webhook hosts (None = any) and whether e-mail is set up."""
    allow_hosts: frozenset[str] | None = None
    smtp_configured: bool = False


def parse_events(on: Iterable[str] | None, field: str) -> frozenset[str]:
    """Event names (or aliases) -> event types; None -> the final states."""
    if on is None:
        return DEFAULT_EVENTS
    out: set[str] = set()
    for word in on:
        name = word.strip().lower()
        if name in EVENTS:
            out.add(name)
        elif name in ALIASES:
            out |= ALIASES[name]
        else:
            known = ", ".join([*ALIASES, *EVENTS])
            raise InvalidRequest(f"{field}: unknown event {word!r}; known: {known}")
    if not out:
        raise InvalidRequest(f"{field}: no events given (omit it for the final states)")
    return frozenset(out)


def check_target(target: NotifyTarget, field: str, policy: TargetPolicy) -> NotifyTarget:
    """`target` if benchd will send to it, else InvalidRequest naming `field`.url/on/secret."""
    url = target.url
    if not isinstance(url, str) or not url or len(url) > 2048 or any(c in url for c in "\r\n\t "):
        raise InvalidRequest(f"{field}.url: expected an http(s):// or mailto: address, got "
                             f"{_short(url)!r}")
    parse_events(target.on, f"{field}.on")
    scheme = url.partition(":")[0].lower()
    if scheme == "mailto":
        addr = url[len("mailto:"):]
        if not _MAILTO_RE.fullmatch(addr):
            raise InvalidRequest(f"{field}.url: {_short(url)!r} is not one plain address "
                                 f"(mailto:user@host)")
        if not policy.smtp_configured:
            raise InvalidRequest(f"{field}.url: e-mail needs an SMTP server in benchd's "
                                 f"notification settings ([smtp] in notify.toml); none is set")
        if target.secret is not None:
            raise InvalidRequest(f"{field}.secret: only webhooks take a secret")
        return target
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"{field}.url: scheme {scheme!r} is not allowed; use https, "
                             f"http or mailto")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        if parts.port == 0:        # .port itself raises ValueError beyond 65535
            raise ValueError("port 0")
    except ValueError as e:
        raise InvalidRequest(f"{field}.url: {e}") from None
    if not host:
        raise InvalidRequest(f"{field}.url: {_short(url)!r} names no host")
    if policy.allow_hosts is not None and host.lower() not in policy.allow_hosts:
        raise InvalidRequest(f"{field}.url: host {host!r} is not allowed for webhooks; "
                             f"allowed: {', '.join(sorted(policy.allow_hosts)) or 'none'}")
    check_secret(target.secret, f"{field}.secret")
    return target


def check_secret(secret: str | None, field: str) -> None:
    if secret is None:
        raise InvalidRequest(f"{field}: a webhook needs a secret (whsec_ followed by base64 "
                             f"of at least {_MIN_SECRET_BYTES} random bytes) to sign with")
    key = b""
    if secret.startswith("whsec_"):
        raw = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if len(key) < _MIN_SECRET_BYTES:
        raise InvalidRequest(f"{field}: expected whsec_ followed by base64 of at least "
                             f"{_MIN_SECRET_BYTES} bytes")


def check_targets(targets: list[NotifyTarget] | None, policy: TargetPolicy,
                  field: str = "notify") -> list[NotifyTarget]:
    targets = targets or []
    if len(targets) > MAX_TARGETS:
        raise InvalidRequest(f"{field}: at most {MAX_TARGETS} targets, got {len(targets)}")
    return [check_target(t, f"{field}[{i}]", policy) for i, t in enumerate(targets)]


def redacted(target: NotifyTarget) -> NotifyTarget:
    """The target as records and the API show it: never its secret."""
    return NotifyTarget(url=target.url, on=target.on)


def shown(target: NotifyTarget) -> str:
    """A webhook's scheme, host and path (a query may hold a token), or the mail address."""
    if target.url.lower().startswith("mailto:"):
        return target.url
    parts = urllib.parse.urlsplit(target.url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:60] + "…"
