"""What a browser may do: the Host check (DNS rebinding), the Origin check and the CSRF
token (cross-site requests), and the Content-Security-Policy of every page.

benchctl, curl and scripts are not browsers and are left alone: they send no Origin, Referer,
Cookie, Sec-Fetch-* or Mozilla User-Agent, and a web page cannot make a browser send a
request without them (they are forbidden header names for scripts). Browser requests must:
- name `localhost` or `127.0.0.1` (any port) in Host: a DNS-rebinding page has its own name;
- carry an Origin equal to http(s)://<Host> when they change state (POST, PUT, PATCH, DELETE)
  or open a WebSocket, be JSON, and carry X-CSRF-Token = HMAC(daemon secret, caller uid),
  which only a page served to that caller knows.
Every refusal is a 403 in the API's error shape (benchd.app.error_middleware).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from benchd.errors import Forbidden

ALLOWED_HOSTS = frozenset({"localhost", "127.0.0.1"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
_BROWSER_HEADERS = ("Origin", "Referer", "Cookie", "Sec-Fetch-Site", "Sec-Fetch-Mode")
CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
       # matplotlib's SVG figures style their shapes with style attributes
       "style-src 'self' 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
_SECRET_KEY: web.AppKey[bytes] = web.AppKey("benchd_web_csrf_secret", bytes)


def csrf_token(app: web.Application, uid: int) -> str:
    """The caller's CSRF token: stable for the daemon's life, different for every user."""
    secret = app.get(_SECRET_KEY)
    if secret is None:
        secret = app[_SECRET_KEY] = secrets.token_bytes(32)
    return hmac.new(secret, str(uid).encode(), hashlib.sha256).hexdigest()


def is_browser(request: web.Request) -> bool:
    h = request.headers
    return (any(name in h for name in _BROWSER_HEADERS)
            or h.get("User-Agent", "").startswith("Mozilla/"))


def host_name(host: str) -> str:
    """`localhost:8080` -> `localhost`, `[::1]:80` -> `[::1]`."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def check_host(request: web.Request) -> None:
    host = request.headers.get("Host", "")
    if host_name(host).lower() not in ALLOWED_HOSTS:
        raise Forbidden(f"Host {host[:80]!r} refused: the dashboard answers only to localhost "
                        f"or 127.0.0.1 (any port), so that no other site's name (DNS "
                        f"rebinding) reaches it")


def check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    host = request.headers.get("Host", "")
    if origin is None:
        raise Forbidden("Origin header missing: a browser request that changes state must "
                        "come from the dashboard's own page")
    if origin not in (f"http://{host}", f"https://{host}"):
        raise Forbidden(f"cross-origin request refused: Origin {origin[:80]!r} is not this "
                        f"dashboard ({host[:80]!r})")


def check_csrf(request: web.Request, uid: int) -> None:
    if request.content_type != "application/json":
        raise Forbidden("a state-changing browser request must be JSON "
                        "(Content-Type: application/json), not a form post")
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given, csrf_token(request.app, uid)):
        raise Forbidden(f"{CSRF_HEADER} missing or wrong: reload the dashboard page and try "
                        f"again")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browser requests: Host always; Origin and CSRF token when they change state; Origin
    on WebSocket upgrades (a cross-site page must not read logs). Pages get the CSP."""
    if request.match_info.http_exception is not None:   # no such route: its 404/405 as ever
        return await handler(request)
    page = not request.path.startswith("/api/")
    if page or is_browser(request):
        check_host(request)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method in STATE_CHANGING or upgrade:
            check_origin(request)
        if request.method in STATE_CHANGING:
            from benchd.api import _caller
            check_csrf(request, _caller(request).uid)
    resp = await handler(request)
    if page:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp
