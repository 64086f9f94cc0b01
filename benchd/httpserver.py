"""The AppRunner benchd serves with: its parser errors use benchd's one error shape too.

aiohttp answers a request its HTTP parser rejects (not HTTP at all, a NUL in the target, an
overlong line, a bad Content-Length or chunk) itself, before any middleware runs, in plain
text. Clients and scripts parse `{"error": {"code", "message"}}`, so benchd answers those in
that shape as well. This uses two aiohttp hooks that are not public API (Server.__call__, the
protocol factory, and RequestHandler.handle_error); test_malformed_http_is_refused_by_the_parser
fails if an aiohttp upgrade changes them.
"""
from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from benchd.app import error_response

MAX_DETAIL = 200   # a parser message quotes the client's bytes; keep the answer short


def parse_error_message(status: int, detail: str | None) -> tuple[str, str]:
    """(code, message) for an error aiohttp's protocol layer produced."""
    if status >= 500:
        return "internal", "internal error; details are in benchd's log"
    text = (detail or "").strip()
    first = text.splitlines()[0] if text else HTTPStatus(status).phrase
    if len(first) > MAX_DETAIL:
        first = first[:MAX_DETAIL] + "…"
    code = "invalid_request" if status == 400 else f"http_{status}"
    return code, f"malformed HTTP request: {first}"


class _JsonErrorRequestHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)   # its logging and sent-already check
        code, text = parse_error_message(status, message)
        resp = error_response(status, code, text)
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """web.AppRunner whose connections answer parser errors as benchd JSON errors."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server
