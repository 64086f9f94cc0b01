"""Real notification receivers on loopback for tests: a webhook server that checks every
Standard Webhooks signature with the `standardwebhooks` library, and an SMTP server (aiosmtpd).

    with WebhookReceiver(secret) as hook:          # http://127.0.0.1:<port>/hook
        hook.mode = "500" | "hang" | "ok"          # what it answers from now on
        hook.wait_for(lambda h: h.delivered("msg_..."))

Both run their own event loop in a thread, so a test (sync or async) and the daemon under test
talk to them over real sockets.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import wait_until


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Received:
    id: str
    type: str
    body: dict[str, Any]
    answered: int | None          # the status it was given (None: left hanging)
    received_at: float = 0.0      # time.time() when the request arrived


@dataclass
class WebhookReceiver:
    secret: str
    mode: str = "ok"
    attempts: list[Received] = field(default_factory=list)
    bad_signatures: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._hang = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._hang.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self._lock:
                self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        mode = self.mode
        status = {"ok": 200, "500": 500}.get(mode)
        with self._lock:
            self.attempts.append(Received(request.headers["webhook-id"], parsed["type"], parsed,
                                          status, time.time()))
        if mode == "hang":
            await self._hang.wait()
            return web.Response(status=200, text="late")
        return web.Response(status=status or 500, text=f"answer {status}")

    def delivered(self, delivery_id: str | None = None, type: str | None = None) -> list[Received]:
        """Attempts that were answered 2xx (optionally for one id / one event type)."""
        with self._lock:
            return [a for a in self.attempts if a.answered == 200
                    and (delivery_id is None or a.id == delivery_id)
                    and (type is None or a.type == type)]

    def seen(self, type: str | None = None) -> list[Received]:
        with self._lock:
            return [a for a in self.attempts if type is None or a.type == type]

    def wait_for(self, pred: Callable[["WebhookReceiver"], object], timeout: float = 20.0) -> Any:
        return wait_until(lambda: pred(self), timeout=timeout)


def free_port() -> int:
    """A loopback port free right now (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every mail it receives."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpSink":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[tuple[list[str], Message]]:
        return list(self.inbox.messages)


