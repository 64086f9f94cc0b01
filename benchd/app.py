"""The aiohttp application: routes, the one error middleware, body decoding and limits.

Every error a client can see has the shape {"error": {"code": ..., "message": ...}}: domain
errors (benchd.errors) carry their own code and status, aiohttp's HTTP errors (404 route,
405 method, 413 body) are mapped to the same shape, anything unexpected is logged here and
answered 500 without a traceback.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web

from benchd import audit
from benchd.defaults import DEFAULT_CLIENT_TIMEOUT_S
from benchd.errors import BenchdError, InvalidRequest, RequestTimeout
from benchd.peercred import peer_cred
from benchd.schema import ErrorBody, ErrorDetail

if TYPE_CHECKING:
    from benchd.jobs import JobManager
    from benchd.notifications.service import Notifications

    from benchd.retention.service import Retention

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # job and cancel bodies are a few hundred bytes
JSON_TYPE = "application/json"

T = TypeVar("T")

_HTTP_CODES = {400: "invalid_request", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}
_EXPECTED_RE = re.compile(r"^Expected `(?P<want>.+?)`, got `(?P<got>.+?)`(?: - at `\$(?P<path>.*)`)?$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<name>.+?)`(?: - at `\$(?P<path>.*)`)?$")
_AT_PATH_RE = re.compile(r"^(?P<what>.+?) - at `\$(?P<path>.*)`$")
_encoder = msgspec.json.Encoder()


@dataclass
class Context:
    """What the handlers need besides the request: the job layer and facts about the daemon."""
    manager: JobManager
    root: Path
    socket_path: str
    version: str
    grace: float                      # daemon default seconds between SIGTERM and SIGKILL
    notifications: Notifications      # webhooks and e-mail about jobs (benchd.notifications)

    retention: Retention              # pins, pruning, archives (benchd.retention)
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT_S   # seconds a request body may take
    started_monotonic: float = field(default_factory=time.monotonic)
    experiments_cache: bytes | None = None
    experiments_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # compares and reports run in child interpreters (benchd.api): at most this many at once
    report_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    websockets: "weakref.WeakSet[web.WebSocketResponse]" = field(default_factory=weakref.WeakSet)
    log_streams: "weakref.WeakSet[asyncio.Task[object]]" = field(default_factory=weakref.WeakSet)

    @property
    def results_dir(self) -> Path:
        return self.root / "results"


CONTEXT: web.AppKey[Context] = web.AppKey("benchd_context", Context)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """Encode msgspec Structs (and plain data) with msgspec."""
    return web.Response(body=_encoder.encode(obj), status=status,
                        content_type=JSON_TYPE, headers=headers)


def error_response(status: int, code: str, message: str,
                   headers: Any = None, job_id: str | None = None) -> web.Response:
    return json_response(ErrorBody(ErrorDetail(code=code, message=message, job_id=job_id)),
                         status, headers)


def _field_name(path: str | None) -> str:
    path = (path or "").lstrip(".")
    return path or "body"


def describe_validation(err: msgspec.ValidationError, allowed: tuple[str, ...]) -> str:
    """msgspec's "Expected `int | null`, got `str` - at `$.n`" -> "n: expected int or null,
    got str": the message starts with the field so a person sees what to fix."""
    text = str(err)
    m = _EXPECTED_RE.match(text)
    if m:
        want = m["want"].replace(" | ", " or ")
        return f"{_field_name(m['path'])}: expected {want}, got {m['got']}"
    m = _UNKNOWN_RE.match(text)
    if m:
        prefix = f"{_field_name(m['path'])}." if m["path"] else ""
        return f"{prefix}{m['name']}: unknown field; allowed: {', '.join(allowed)}"
    m = _AT_PATH_RE.match(text)   # any other msgspec message: "... - at `$.n`"
    if m:
        return f"{_field_name(m['path'])}: {m['what']}"
    return f"body: {text}"


async def decode_body(request: web.Request, type_: type[T], *, optional: bool) -> T | None:
    """The request body as `type_`. An empty body is None when `optional`, else a 400. A body
    must be JSON with Content-Type application/json; over MAX_BODY it is a 413 (aiohttp
    raises that while reading, before it is all in memory)."""
    timeout = request.app[CONTEXT].client_timeout
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout:g} s") from None
    if not body.strip():
        if optional:
            return None
        raise InvalidRequest("body: a JSON object is required")
    if request.content_type != JSON_TYPE:
        raise InvalidRequest(f"Content-Type must be {JSON_TYPE} (got "
                             f"{request.content_type or 'none'}); with curl add "
                             f"-H 'Content-Type: {JSON_TYPE}'")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as e:
        raise InvalidRequest(describe_validation(e, type_.__struct_fields__)) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"body: malformed JSON ({e})") from None


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """The one place errors become responses."""
    try:
        return await handler(request)
    except BenchdError as e:
        job_id = getattr(e, "active_job_id", None)
        if e.http_status in audit.AUDITED_STATUSES:
            audit.refused(e, request.method, request.path, _peer_uid(request),
                          job_id or request.match_info.get("job_id"))
        retry = getattr(e, "retry_after", None)
        return error_response(e.http_status, e.code, e.message, job_id=job_id,
                              headers={"Retry-After": str(retry)} if retry is not None else None)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = e.reason
        if e.status == 404:
            message = f"no such endpoint: {request.path} (see GET /api/openapi.json)"
        elif e.status == 405:
            allowed = e.headers.get("Allow", "")
            message = f"method {request.method} not allowed on {request.path}; allowed: {allowed}"
        elif e.status == 413:
            message = f"request body too large (limit {MAX_BODY} bytes)"
        elif e.text and not e.text.startswith(f"{e.status}:"):
            message = e.text
        headers = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        return error_response(e.status, _HTTP_CODES.get(e.status, f"http_{e.status}"),
                              message, headers)
    except ConnectionError:
        # the client went away mid-request (e.g. mid-body): nobody to answer, nothing to log
        # at error level (re-raising made aiohttp log a traceback per disconnect)
        log.debug("client went away during %s %s", request.method, request.path)
        return error_response(400, "client_disconnected", "connection lost")
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; details are in benchd's log")


def _peer_uid(request: web.Request) -> int | None:
    """The requester's uid for the audit trail (None if the peer is already gone)."""
    transport = request.transport
    try:
        return peer_cred(transport.get_extra_info("socket")).uid if transport else None
    except (OSError, AttributeError, BenchdError):
        return None


async def _close_followers(app: web.Application) -> None:
    """On shutdown, end every follower now rather than after the shutdown timeout: WebSocket
    ones get close code 1001; plain-text ones are cut without the final chunk, so that no
    client mistakes a stopping daemon for the end of the job (it reconnects at its offset)."""
    ctx = app[CONTEXT]
    for task in list(ctx.log_streams):
        task.cancel()
    for ws in list(ctx.websockets):
        await ws.close(code=1001, message=b"benchd is stopping")


def make_app(context: Context) -> web.Application:
    """The application for one daemon (routes in benchd.api)."""
    from benchd import api  # handlers import this module for the helpers above

    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONTEXT] = context
    api.add_routes(app)
    from benchd import web as dashboard  # the dashboard at GET / (benchd.web)
    dashboard.setup(app)
    app.on_shutdown.append(_close_followers)
    return app
