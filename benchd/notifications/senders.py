"""One attempt at one delivery: a signed webhook POST, or one e-mail.

Webhooks follow Standard Webhooks v1: `webhook-id` (stable across retries, for the receiver
to deduplicate), `webhook-timestamp` (this attempt) and `webhook-signature` (`v1,` + base64
HMAC-SHA256 of id.timestamp.body), signed by the `standardwebhooks` package rather than by
hand-written crypto. Redirects are not followed (a redirect could leave the allowed hosts).
E-mail goes through the standard library's smtplib in a worker thread, so a slow SMTP server
never blocks the event loop.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiohttp
from standardwebhooks.webhooks import Webhook

from benchd.schema import Delivery
from benchd.notifications.config import SmtpConfig

ATTEMPT_TIMEOUT_S = 10.0
ANSWER_CHARS = 200


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None = None      # HTTP status or SMTP reply code
    answer: str | None = None      # the start of what the receiver said
    error: str | None = None       # why it failed, for the outbox and `benchctl notify`


def signed_headers(d: Delivery, now: float | None = None) -> dict[str, str]:
    assert d.target.secret is not None
    ts = int(time.time() if now is None else now)
    signature = Webhook(d.target.secret).sign(
        d.id, dt.datetime.fromtimestamp(ts, dt.timezone.utc), d.body.encode())
    return {"content-type": "application/json", "webhook-id": d.id,
            "webhook-timestamp": str(ts), "webhook-signature": signature,
            "user-agent": "benchd-notify"}


async def post_webhook(session: aiohttp.ClientSession, d: Delivery,
                       timeout: float = ATTEMPT_TIMEOUT_S) -> Attempt:
    try:
        async with session.post(d.target.url, data=d.body.encode(), headers=signed_headers(d),
                                allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            answer = (await resp.content.read(ANSWER_CHARS * 4)).decode("utf-8", "replace")
            answer = answer[:ANSWER_CHARS]
            if 200 <= resp.status < 300:
                return Attempt(True, resp.status, answer)
            return Attempt(False, resp.status, answer, f"HTTP {resp.status} {resp.reason or ''}"
                           .strip())
    except asyncio.TimeoutError:
        return Attempt(False, error=f"no answer within {timeout:g} s")
    except aiohttp.ClientError as e:
        return Attempt(False, error=f"{type(e).__name__}: {e}"[:300])
    except OSError as e:
        return Attempt(False, error=f"{e.strerror or e}"[:300])


def send_mail(smtp: SmtpConfig, d: Delivery) -> Attempt:
    """Blocking: run it in a thread (asyncio.to_thread)."""
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = d.target.url[len("mailto:"):]
    msg["Subject"] = d.subject or f"[benchd] {d.type} {d.job_id}"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=d.id)
    msg["X-Benchd-Event"] = d.id            # the same on every retry, like webhook-id
    msg.set_content(d.text or d.body)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.username is not None:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(msg)
            if refused:
                return Attempt(False, error=f"recipient refused: {refused}"[:300])
            return Attempt(True, 250, "accepted")
    except smtplib.SMTPResponseException as e:
        err = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) \
            else str(e.smtp_error)
        return Attempt(False, e.smtp_code, err[:ANSWER_CHARS], f"SMTP {e.smtp_code}: {err}"[:300])
    except (smtplib.SMTPException, OSError) as e:
        return Attempt(False, error=f"SMTP: {e}"[:300])
