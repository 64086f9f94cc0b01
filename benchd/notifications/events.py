"""What one job event says: the Standard Webhooks JSON body and the e-mail text.

The body is built once, when the event is queued, and sent byte for byte on every retry; the
job in it is the record as the API shows it (targets without secrets).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

import msgspec

from benchd.layout import utc_from_timestamp
from pipeline.results import MAX_FILE_BYTES
from pipeline.smallfile import read_small_file
from benchd.schema import Delivery, JobRecord, NotifyTarget
from benchd.notifications.targets import redacted

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16 * 1024


def delivery_id(job_id: str, event: str, target: NotifyTarget, source: str) -> str:
    """Stable for (job, event, target): deriving the event again queues nothing new, and a
    receiver deduplicates retries on it (the webhook-id header)."""
    key = f"{source}\0{target.url}\0{target.secret or ''}".encode()
    return f"msg_{job_id}_{event.replace('.', '-')}_{hashlib.sha256(key).hexdigest()[:12]}"


def public_record(rec: JobRecord) -> JobRecord:
    """The record with every notification target's secret removed."""
    if not rec.config.notify:
        return rec
    config = msgspec.structs.replace(rec.config, notify=[redacted(t) for t in rec.config.notify])
    return msgspec.structs.replace(rec, config=config)


def regression_of(rec: JobRecord, root: Path) -> dict | None:
    """The published run's automatic regression check (its manifest's `regression`), if any."""
    if rec.run_dir is None:
        return None
    try:
        data = read_small_file(root / rec.run_dir / "manifest.json", MAX_FILE_BYTES)
        check = msgspec.json.decode(data).get("regression")
    except (OSError, ValueError, msgspec.DecodeError, AttributeError):
        return None
    return check if isinstance(check, dict) else None


def build(rec: JobRecord, event: str, target: NotifyTarget, source: str, root: Path,
          log_path: Path, now: float | None = None,
          regression: dict | None = None) -> Delivery:
    """One Delivery of `event` about `rec` to `target`, due now."""
    now = time.time() if now is None else now
    run_id = rec.progress.run_id if rec.progress else None
    published = rec.run_dir is not None
    data = {
        "job": msgspec.to_builtins(public_record(rec)),
        "run_id": run_id,
        "results": ({"run_dir": str(root / rec.run_dir), "command": f"benchctl results {run_id}"}
                    if published and run_id else None),
        "log_command": f"benchctl logs {rec.job_id}",
        "regression": regression,   # the published run's automatic check (verdict, rows)
    }
    body = msgspec.json.encode({"type": event, "timestamp": utc_from_timestamp(now),
                               "data": data}).decode()
    subject = text = None
    if target.url.lower().startswith("mailto:"):
        subject, text = _mail(rec, event, log_path, run_id if published else None)
    return Delivery(id=delivery_id(rec.job_id, event, target, source), type=event,
                    job_id=rec.job_id, target=target, source=source, body=body,
                    created_at=now, next_attempt_at=now, subject=subject, text=text)


def _mail(rec: JobRecord, event: str, log_path: Path, run_id: str | None) -> tuple[str, str]:
    what = event.removeprefix("job.")
    took = _duration(rec)
    subject = f"[benchd] job {rec.job_id} {what} ({rec.requester_name}" + \
              (f", {took})" if took else ")")
    cfg = rec.config
    exps = ", ".join(cfg.experiments) if cfg.experiments else "all"
    n = rec.progress.n if rec.progress and rec.progress.n else cfg.n
    outcome = rec.status.value
    if rec.exit_code is not None:
        outcome += f" (exit {rec.exit_code})"
    elif rec.signal:
        outcome += f" ({rec.signal})"
    lines = [f"Job {rec.job_id} {what}.", "",
             f"  who:         {rec.requester_name}",
             f"  experiments: {exps}" + (f", n {n}" if n else ""),
             f"  created:     {rec.created_at}",
             f"  started:     {rec.started_at or '-'}",
             f"  finished:    {rec.finished_at or '-'}",
             f"  duration:    {took or '-'}",
             f"  outcome:     {outcome}"]
    if rec.reason:
        lines.append(f"  reason:      {rec.reason}")
    if run_id:
        lines.append(f"  results:     {run_id} (benchctl results {run_id})")
    tail = last_lines(log_path)
    if tail:
        lines += ["", "Last lines of the log:", *(f"  {line}" for line in tail)]
    lines += ["", f"See more: benchctl logs {rec.job_id}  ·  benchctl status {rec.job_id}", ""]
    return subject, "\n".join(lines)


def last_lines(path: Path, count: int = LOG_TAIL_LINES) -> list[str]:
    """The log's last `count` lines people read (no progress lines), from its last 16 KiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES))
    finally:
        os.close(fd)
    out = [line.decode("utf-8", "replace").rstrip("\r")[:300]
           for line in data.split(b"\n") if line.strip() and not line.startswith(b"@@")]
    return out[-count:]


def _duration(rec: JobRecord) -> str | None:
    if not rec.started_at or not rec.finished_at:
        return None
    try:
        secs = (dt.datetime.fromisoformat(rec.finished_at)
                - dt.datetime.fromisoformat(rec.started_at)).total_seconds()
    except ValueError:
        return None
    secs = max(0, int(round(secs)))
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
