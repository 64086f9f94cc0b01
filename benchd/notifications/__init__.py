"""Notifications: tell people (webhooks, e-mail) when a job starts or ends, reliably.

An event is derived from a job's state transition *before* the record holding that state is
written (JobManager's on_transition hook), and each (event, target) pair is written to a
persistent outbox before anything is sent. Delivery is at least once, with a stable id, so a
benchd killed at any moment loses nothing: after a restart the transition is derived again (the
same id, queued once) or the outbox is simply resumed.

- targets.py: which targets and event names are valid; secrets never leave the outbox.
- config.py: the server-wide file (/etc/benchd/notify.toml): SMTP server and admin targets.
- events.py: the event body (Standard Webhooks JSON) and the e-mail text for one job event.
- outbox.py: logs/notify/{pending,sent,dead}/ and logs/notify/targets/ on disk.
- senders.py: one attempt at one delivery (aiohttp POST, or smtplib in a thread).
- service.py: the dispatcher (backoff with jitter, bounded concurrency) and what the API calls.
"""
