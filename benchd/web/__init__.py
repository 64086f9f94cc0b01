"""The web dashboard (`GET /` on benchd's socket): server-rendered pages and small JS modules.

It sits on the same socket as the API, so the same peer-credential authorisation applies to
every page and to every API call the pages' scripts make. `setup(app)` adds the pages, the
static files and the browser guard (benchd.web.guard) to benchd's application.
"""
from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add the dashboard to benchd's application (called by benchd.app.make_app)."""
    from benchd.web import guard, pages
    app.middlewares.append(guard.browser_guard)
    pages.add_routes(app)
