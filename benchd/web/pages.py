"""The dashboard's pages: each handler reads what the API handlers read (the job manager,
the results loader) and renders one Jinja2 template. Anything that changes state is done by
the pages' scripts through the JSON API (benchd.web.guard checks those requests).

An error while building a page is shown as a page saying what went wrong (never a blank
page or a traceback); the status is the API's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import msgspec
from aiohttp import web

from benchd import api
from benchd.app import CONTEXT
from benchd.errors import BenchdError, InvalidRequest, JobNotFound, RunNotFound
from benchd.schema import JOB_ID_RE
from benchd.states import FINAL, JobState
from benchd.web.guard import csrf_token
from pipeline import loader, reportjob, staged

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGE_SIZE = 50                 # jobs or runs per page: first paint stays fast at any history size
STATIC_MAX_AGE = 365 * 86400   # static URLs carry their content hash (?v=), so they never go stale
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_BODY_RE = re.compile(r"<body>\n?(.*)</body>", re.S)
_H1_RE = re.compile(r"<h1>.*?</h1>\n?", re.S)


def _versions() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in STATIC.iterdir() if p.suffix in _STATIC_TYPES}


_VERSIONS = _versions()


def static_url(name: str) -> str:
    return f"/static/{name}?v={_VERSIONS.get(name, '0')}"


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _VERSIONS:
        raise web.HTTPNotFound()
    # a versioned URL never changes; a plain one (a module's `import './common.js'`) is
    # revalidated (ETag/Last-Modified: 304) so that an upgrade is seen at once
    cache = (f"public, max-age={STATIC_MAX_AGE}, immutable"
             if request.query.get("v") == _VERSIONS[name] else "no-cache")
    return web.FileResponse(STATIC / name, headers={
        "Cache-Control": cache, "Content-Type": _STATIC_TYPES[Path(name).suffix]})


def _base(request: web.Request, title: str, **extra: Any) -> dict[str, Any]:
    caller = api._caller(request)
    return {"title": title, "user": caller.user, "csrf": csrf_token(request.app, caller.uid),
            "static_url": static_url, "path": request.path, **extra}


def _render(name: str, request: web.Request, ctx: dict[str, Any], status: int = 200
            ) -> web.Response:
    resp = aiohttp_jinja2.render_template(name, request, ctx, status=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@web.middleware
async def error_pages(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    """A page that fails shows the API's message on a page, with the API's status."""
    if (request.path.startswith(("/api/", "/static/"))
            or request.match_info.http_exception is not None):   # no such page: JSON 404
        return await handler(request)
    try:
        return await handler(request)
    except BenchdError as e:
        status, code, message = e.http_status, e.code, e.message
    try:
        ctx = _base(request, "Error", status=status, code=code, message=message)
    except (BenchdError, OSError):
        raise web.HTTPForbidden(text=message) from None
    return _render("error.html", request, ctx, status)


def _typical_s(request: web.Request, rec: Any) -> float | None:
    """Median duration of earlier completed jobs with the same experiments and n (the ETA)."""
    manager = request.app[CONTEXT].manager
    durations = []
    for other in manager.list_jobs(limit=200, statuses=frozenset({JobState.COMPLETED})):
        if (other.config.experiments == rec.config.experiments and other.config.n == rec.config.n
                and other.started_at and other.finished_at):
            durations.append((datetime.fromisoformat(other.finished_at)
                              - datetime.fromisoformat(other.started_at)).total_seconds())
    return round(statistics.median(durations), 1) if durations else None


async def _job_view(request: web.Request, job_id: str | None) -> dict[str, Any] | None:
    """The job's record for job.js, the ETA basis, and whether the caller may pause or
    resume it (its owner, root, the admin group: the API decides, this only hides buttons)."""
    if job_id is None:
        return None
    ctx = request.app[CONTEXT]
    uid = api._caller(request).uid
    if not JOB_ID_RE.match(job_id):
        raise JobNotFound(f"no job {job_id[:40]!r} (job ids are 12 lowercase hex digits)")
    rec = ctx.manager.shown(ctx.manager.get(job_id))
    may_act = uid == rec.requester_uid or await asyncio.to_thread(ctx.manager.is_admin, uid)
    return {"record": rec, "json": msgspec.json.encode(rec).decode(),
            "typical_s": _typical_s(request, rec), "may_act": may_act}


async def run_page(request: web.Request) -> web.StreamResponse:
    """The Run form and the live view of the job it started (`?job=ID` survives a refresh)."""
    job_id = request.query.get("job")
    job = await _job_view(request, job_id)
    return _render("run.html", request, _base(request, "Run", job=job))


async def job_page(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["job_id"]
    return _render("job.html", request, _base(request, f"Job {job_id}",
                                              job=await _job_view(request, job_id)))


_STATE_CHOICES = [s.value for s in JobState]
HISTORY_FILTERS = ("status", "user", "label", "before")


async def history_page(request: web.Request) -> web.StreamResponse:
    """Running, then queued (in queue order), then one page of the history (cursor paging)."""
    ctx = request.app[CONTEXT]
    q = {k: request.query[k] for k in HISTORY_FILTERS if request.query.get(k)}
    query = api._job_query({**q, "limit": str(PAGE_SIZE)})
    if query.statuses is None:      # running and queued jobs are listed above it
        query = dataclasses.replace(query, statuses=FINAL)
    manager = ctx.manager
    running = [manager.shown(r) for r in manager.active_jobs()]
    queued = [manager.shown(manager.get(j)) for j in manager.queue_positions()]  # in order
    found = manager.page_jobs(query)
    history = [api._with_staged_run(r, ctx.results_dir) for r in found.jobs]
    next_q = {**q, "before": found.next} if found.next else None
    return _render("history.html", request, _base(
        request, "Queue and history", running=running, queued=queued, jobs=history,
        total=found.total, next_q=next_q, filters=q, states=_STATE_CHOICES))


async def results_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    before = request.query.get("before") or None
    try:
        runs = await asyncio.to_thread(loader.page_runs, ctx.results_dir, limit=PAGE_SIZE,
                                       before=before)
    except loader.InvalidRunIdError as e:
        raise InvalidRequest(str(e)) from None
    staged_runs = await asyncio.to_thread(staged.list_staged, ctx.results_dir)
    return _render("results.html", request, _base(request, "Results", runs=runs.runs,
                                                  next=runs.next, staged=staged_runs))


def _report_pieces(html: bytes) -> str:
    """The tables and SVG figures of a report.html: its body without its own title."""
    text = html.decode("utf-8", "replace")
    m = _BODY_RE.search(text)
    return _H1_RE.sub("", m.group(1) if m else "", count=1)


async def run_detail_page(request: web.Request) -> web.StreamResponse:
    """One run: its summary and the report's tables and plots (stored report.html, else drawn
    now in a child interpreter, as GET /api/results/{run}/report.html does)."""
    ctx = request.app[CONTEXT]
    run = request.match_info["run"]

    def read() -> tuple[str, bytes | None, object, object]:
        """Off the loop, in one go: the stored report, the run, and its own summary (by its
        exact id: a prefix also matches a later run such as RUN_01)."""
        run_id, body = api._stored_report(ctx.results_dir, run)
        detail = loader.load_run(ctx.results_dir, run_id)
        summary = next((r for r in loader.page_runs(ctx.results_dir, prefix=run_id).runs
                        if r.run_id == run_id), None)
        return run_id, body, detail, summary
    try:
        run_id, body, detail, summary = await asyncio.to_thread(read)
    except loader.AmbiguousRunError as e:
        raise InvalidRequest(f"run: {e}") from None
    except loader.RunNotFoundError as e:
        raise RunNotFound(str(e) or f"no run {run!r}") from None
    problem = None
    if body is None:
        rc, body, message = await api._reportjob(ctx, "report", str(ctx.results_dir), run_id)
        if rc != reportjob.EXIT_OK:
            body, problem = b"", f"no plots for this run: {message}"
    return _render("run_detail.html", request, _base(
        request, f"Run {run_id}", run_id=run_id, detail=detail, summary=summary,
        pieces=_report_pieces(body), problem=problem))


async def compare_page(request: web.Request) -> web.StreamResponse:
    """Pick base and head; the comparison is GET /api/results/compare's, drawn as a table."""
    ctx = request.app[CONTEXT]
    base, head = request.query.get("base", ""), request.query.get("head", "")
    runs = (await asyncio.to_thread(loader.page_runs, ctx.results_dir, limit=200)).runs
    report = None
    if base and head:
        report = msgspec.json.decode(await api.compare_report(ctx, base, head))
    return _render("compare.html", request, _base(request, "Compare runs", runs=runs,
                                                  base=base, head=head, report=report))


def ns_per_op(value: float | None) -> str:
    """1,406 rather than 1.406e+04; four significant digits below 1000."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def add_routes(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, context_processors=())
    env = aiohttp_jinja2.get_env(app)
    env.filters["ns"] = ns_per_op
    app.middlewares.append(error_pages)
    r = app.router
    r.add_get("/", run_page)
    r.add_get("/jobs/{job_id}", job_page)
    r.add_get("/history", history_page)
    r.add_get("/results", results_page)
    r.add_get("/results/{run}", run_detail_page)
    r.add_get("/compare", compare_page)
    r.add_get("/static/{name}", static_file)
