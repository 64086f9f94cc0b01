"""HTTP handlers: parse the request, call one JobManager (or results loader) method, render.

They never touch processes or job files themselves. ENDPOINTS is the one list of routes: the
router and the OpenAPI document (benchd.openapi) are both built from it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from benchd import discard
from benchd.app import CONTEXT, Context, decode_body, json_response
from benchd.errors import BenchdError, InvalidRequest, JobNotFound, RunNotFound
from benchd.peercred import PeerCred, peer_cred
from benchd.schema import (JOB_ID_RE, CancellingMessage, CancelRequest, DoneMessage, Health,
                           JobConfig, JobList, JobRecord, LogMessage)
from benchd.states import FINAL, JobState
from pipeline import loader, staged
from pipeline.schema import DiscardedRun, ExperimentInfo, RunDetail, RunList, StagedRunList

if TYPE_CHECKING:
    from benchd.jobs import JobManager

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXPERIMENTS_TIMEOUT_S = 120.0
CLIENT_GONE_POLL_S = 2.0    # how often a waiting follower checks that its client is still there
_ws_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Param:
    name: str
    kind: str          # "integer", "boolean", "string"
    doc: str


@dataclass(frozen=True)
class Endpoint:
    """One route: enough to register it and to document it in OpenAPI."""
    method: str
    path: str
    handler: Handler
    summary: str
    responses: Mapping[int, str]
    ok_schema: Any = None             # msgspec Struct or list[Struct] of the 2xx body;
                                      # None = free-form
    body: type | None = None          # msgspec Struct of the request body
    body_required: bool = False
    query: tuple[Param, ...] = ()
    ok_content: str = "application/json"


# --- small parsing helpers ---------------------------------------------------------------

def _ctx(request: web.Request) -> Context:
    return request.app[CONTEXT]


def _caller(request: web.Request) -> PeerCred:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    return peer_cred(transport.get_extra_info("socket"))


def _job_id(request: web.Request) -> str:
    """The {job_id} path segment, refused before any file is looked at unless it is an id."""
    job_id = request.match_info["job_id"]
    if not JOB_ID_RE.match(job_id):
        raise JobNotFound(f"no job {job_id!r} (job ids are 12 lowercase hex digits)")
    return job_id


def _query(request: web.Request, allowed: tuple[Param, ...]) -> dict[str, str]:
    names = {p.name for p in allowed}
    unknown = sorted(set(request.query) - names)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown query parameter; allowed: "
                             f"{', '.join(sorted(names)) or 'none'}")
    for name in names:  # `?limit=1&limit=2x` must not quietly mean limit=1
        if len(request.query.getall(name, ())) > 1:
            raise InvalidRequest(f"{name}: given more than once")
    return {k: request.query[k] for k in names if k in request.query}


def _int(q: Mapping[str, str], name: str, minimum: int = 0) -> int | None:
    raw = q.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: expected an integer >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise InvalidRequest(f"{name}: must be >= {minimum}, got {value}")
    return value


def _bool(q: Mapping[str, str], name: str) -> bool:
    raw = q.get(name, "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise InvalidRequest(f"{name}: expected 1 or 0, got {raw!r}")


def _statuses(q: Mapping[str, str]) -> frozenset[JobState] | None:
    raw = q.get("status")
    if raw is None:
        return None
    out = set()
    for item in (s.strip() for s in raw.split(",")):
        try:
            out.add(JobState(item))
        except ValueError:
            raise InvalidRequest(f"status: unknown state {item!r}; known: "
                                 f"{', '.join(s.value for s in JobState)}") from None
    return frozenset(out)


# --- jobs --------------------------------------------------------------------------------

LIST_PARAMS = (Param("limit", "integer", "at most this many jobs (newest first)"),
               Param("status", "string", "comma-separated states, e.g. running,failed"))
LOG_PARAMS = (Param("offset", "integer", "byte offset to start from (a reconnecting client "
                    "passes the offset it reached)"),
              Param("tail", "integer", "start at the last N lines (not with offset)"),
              Param("follow", "boolean", "1: keep streaming until the job ends"))
WS_PARAMS = (Param("offset", "integer", "byte offset to start from"),)
WS_MAX_LINE = 1 << 20   # a WebSocket follower never buffers more of an unterminated line
WS_LINES_PER_TURN = 16  # a WebSocket follower gives the loop a turn after this many lines


async def start_job(request: web.Request) -> web.StreamResponse:
    config = await decode_body(request, JobConfig, optional=True) or JobConfig()
    _query(request, ())
    caller = _caller(request)
    record = await _ctx(request).manager.start(config, caller.uid, caller.user)
    return json_response(record, 201,
                         {"Location": f"/api/benchmark/jobs/{record.job_id}"})


async def list_jobs(request: web.Request) -> web.StreamResponse:
    q = _query(request, LIST_PARAMS)
    jobs = _ctx(request).manager.list_jobs(limit=_int(q, "limit", 1), statuses=_statuses(q))
    return json_response(JobList(jobs=jobs))


async def get_job(request: web.Request) -> web.StreamResponse:
    _query(request, ())
    return json_response(_ctx(request).manager.get(_job_id(request)))


async def cancel_job(request: web.Request) -> web.StreamResponse:
    job_id = _job_id(request)
    _query(request, ())
    body = await decode_body(request, CancelRequest, optional=True)
    caller = _caller(request)
    record = await _ctx(request).manager.cancel(job_id, caller.uid,
                                                body.grace if body else None)
    return json_response(record)


async def _log_start(manager: JobManager, job_id: str, offset: int | None,
                     tail: int | None) -> int:
    """Where a log read starts (JobManager.follow_log refuses an offset past the end)."""
    manager.get(job_id)
    if offset is not None and tail is not None:
        raise InvalidRequest("tail: cannot be combined with offset")
    return await manager.tail_offset(job_id, tail) if tail is not None else (offset or 0)


async def job_logs(request: web.Request) -> web.StreamResponse:
    """Plain text, streamed; the chunks are whole lines, so a client that counts the bytes it
    received can reconnect with ?offset= and get every line exactly once."""
    manager = _ctx(request).manager
    job_id = _job_id(request)
    q = _query(request, LOG_PARAMS)
    start = await _log_start(manager, job_id, _int(q, "offset"), _int(q, "tail"))
    follow = _bool(q, "follow")
    chunks = manager.follow_log(job_id, start, follow=follow)  # bad offset: 400 before headers
    resp = web.StreamResponse(headers={"X-Log-Offset": str(start),
                                       "Cache-Control": "no-store"})
    resp.content_type = "text/plain"
    resp.charset = "utf-8"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    task = asyncio.current_task()
    watch = None
    if follow and task is not None:
        _ctx(request).log_streams.add(task)  # cut on shutdown (benchd.app._close_followers)
        watch = asyncio.get_running_loop().create_task(_cancel_when_client_gone(request, task))
    try:
        async for chunk in chunks:
            await resp.write(chunk)
        if follow and manager.get(job_id).status not in FINAL and request.transport:
            # the job goes on but the stream ended: benchd is stopping. Cut the connection
            # (no final chunk) so that no client takes this for the end of the job.
            request.transport.abort()
            return resp
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away; the job is unaffected
    except BenchdError as e:  # headers are out: all we can do is end the stream and log
        log.warning("log stream for %s ended early: %s", job_id, e.message)
    finally:
        if watch is not None:
            watch.cancel()
        await chunks.aclose()   # the log's fd, now, not when the generator is collected
    return resp


async def _cancel_when_client_gone(request: web.Request, task: asyncio.Task[Any]) -> None:
    """A follower waiting on a quiet job writes nothing, so it would not notice its client
    leave (aiohttp does not cancel handlers on disconnect): look every CLIENT_GONE_POLL_S
    and end the handler, freeing its open log file. Clients that re-request silent streams
    (benchctl --stall-timeout) would otherwise pile them up."""
    while True:
        await asyncio.sleep(CLIENT_GONE_POLL_S)
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            return


async def job_logs_ws(request: web.Request) -> web.StreamResponse:
    """WebSocket: one {"type":"log"} message per line, {"type":"cancelling"} when a cancel is
    accepted, {"type":"done"} with the final status, then close."""
    ctx = _ctx(request)
    manager = ctx.manager
    job_id = _job_id(request)
    q = _query(request, WS_PARAMS)
    start = await _log_start(manager, job_id, _int(q, "offset"), None)
    chunks = manager.follow_log(job_id, start, follow=True)  # bad offset: 400 before upgrade
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    ctx.websockets.add(ws)

    async def send(msg: Any) -> None:
        await ws.send_str(_ws_encoder.encode(msg).decode())

    async def lines() -> None:
        # an unterminated line grows in a bytearray and is split only when a newline arrives:
        # re-joining it with every chunk would cost time quadratic in its length
        pos, pending = start, bytearray()

        async def send_pending(partial: bool) -> None:
            nonlocal pos, pending
            # a piece ends on a character boundary: the bytes of a character cut in two
            # stay pending for the next piece instead of arriving as two U+FFFD
            cut = utf8_boundary(pending) if partial else len(pending)
            pos += cut
            await send(LogMessage(line=pending[:cut].decode("utf-8", "replace"), offset=pos,
                                  partial=partial))
            del pending[:cut]

        async for chunk in chunks:
            nl = chunk.rfind(b"\n")
            if nl < 0:
                pending += chunk
                if len(pending) >= WS_MAX_LINE:  # e.g. a progress bar redrawn with \r forever
                    await send_pending(partial=True)
                continue
            pending += chunk[:nl]
            for i, line in enumerate(bytes(pending).split(b"\n"), 1):
                pos += len(line) + 1
                await send(LogMessage(line=line.decode("utf-8", "replace"), offset=pos))
                if i % WS_LINES_PER_TURN == 0:
                    # sending does not yield while the client keeps up: a chunk of short
                    # lines would hold the loop for tens of ms (health, other clients)
                    await asyncio.sleep(0)
            pending = bytearray(chunk[nl + 1:])
        if pending:
            await send_pending(partial=False)

    async def cancelling() -> None:
        def msg(rec: JobRecord) -> CancellingMessage | None:
            if rec.cancel_requested_by is None:
                return None
            grace = rec.cancel_grace if rec.cancel_grace is not None else ctx.grace
            return CancellingMessage(by_uid=rec.cancel_requested_by, grace=grace)
        first = msg(manager.get(job_id))
        if first is not None:
            await send(first)
            return
        async for rec in manager.watch(job_id):
            m = msg(rec)
            if m is not None:
                await send(m)
                return

    async def client() -> None:
        async for m in ws:
            if m.type == WSMsgType.ERROR:
                return

    tasks = [asyncio.create_task(c) for c in (lines(), cancelling(), client())]
    log_task, cancel_task, client_task = tasks
    close_code = 1000
    try:
        await asyncio.wait((log_task, client_task), return_when=asyncio.FIRST_COMPLETED)
        if log_task.done() and log_task.exception() is None and not ws.closed:
            cancel_task.cancel()
            await asyncio.gather(cancel_task, return_exceptions=True)
            record = manager.get(job_id)
            if record.status in FINAL:
                await send(DoneMessage(status=record.status, exit_code=record.exit_code))
            else:  # the stream ended with the job still going: benchd is stopping
                close_code = 1001
        elif log_task.done() and log_task.exception() is not None:
            log.warning("WebSocket log stream for %s failed: %r", job_id, log_task.exception())
            close_code = 1011
    except ConnectionError:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ws.close(code=close_code)
    return ws


# --- daemon, results, experiments --------------------------------------------------------

async def health(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    return json_response(Health(status="ok", version=ctx.version, pid=os.getpid(),
                                uptime_s=round(time.monotonic() - ctx.started_monotonic, 3),
                                root=str(ctx.root), socket=ctx.socket_path,
                                active_job=ctx.manager.active()))


async def list_results(request: web.Request) -> web.StreamResponse:
    """Reading results touches many small files: off the loop (the watchdog pings on it)."""
    _query(request, ())
    runs = await asyncio.to_thread(loader.list_runs, _ctx(request).results_dir)
    return json_response(RunList(runs=runs))


async def list_staged_runs(request: web.Request) -> web.StreamResponse:
    """Unpublished runs (cancelled, interrupted, broken): the ids `resume` accepts."""
    _query(request, ())
    runs = await asyncio.to_thread(staged.list_staged, _ctx(request).results_dir)
    return json_response(StagedRunList(runs=runs))


async def discard_staged_run(request: web.Request) -> web.StreamResponse:
    """Delete an unpublished run (its owner, root or the admin group: benchd.discard)."""
    _query(request, ())
    ctx = _ctx(request)
    gone = await discard.discard_staged_run(ctx.manager, ctx.results_dir,
                                            request.match_info["run"], _caller(request))
    return json_response(gone)


def _load_run(results_dir: Any, run: str) -> RunDetail:
    if run == "latest":
        run = loader.latest_run_id(results_dir)
    return loader.load_run(results_dir, run)


async def get_result(request: web.Request) -> web.StreamResponse:
    """One run by id, or `latest`; the loader refuses anything that is not a run id (no
    path tricks reach the filesystem)."""
    _query(request, ())
    run = request.match_info["run"]
    try:
        detail = await asyncio.to_thread(_load_run, _ctx(request).results_dir, run)
    except loader.RunNotFoundError as e:
        raise RunNotFound(str(e) or f"no run {run!r}") from None
    return json_response(detail)


_DESCRIBE = ("import sys, msgspec\nfrom pipeline.registry import describe\n"
             "sys.stdout.buffer.write(msgspec.json.encode(describe()))\n")


async def experiments(request: web.Request) -> web.StreamResponse:
    """pipeline.registry.describe() run once in a child interpreter and cached: describing
    adapters imports the astronomy libraries, which would cost the daemon seconds of a
    blocked loop (watchdog) and a hundred MB of RSS for the rest of its life."""
    _query(request, ())
    ctx = _ctx(request)
    async with ctx.experiments_lock:
        if ctx.experiments_cache is None:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _DESCRIBE, cwd=str(ctx.root),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), EXPERIMENTS_TIMEOUT_S)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise BenchdError("describing experiments timed out") from None
            if proc.returncode != 0:
                last = (err.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
                raise BenchdError(f"describing experiments failed: {last}")
            ctx.experiments_cache = out
    return web.Response(body=ctx.experiments_cache, content_type="application/json")


async def openapi_json(request: web.Request) -> web.StreamResponse:
    from benchd.openapi import document_bytes
    return web.Response(body=document_bytes(ENDPOINTS, _ctx(request).version),
                        content_type="application/json")


_E400, _E404 = "invalid request (message names the field)", "unknown job"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/health", health, "Daemon health and the active job",
             {200: "ok"}, Health),
    Endpoint("GET", "/api/openapi.json", openapi_json, "This OpenAPI document", {200: "ok"}),
    Endpoint("POST", "/api/benchmark/jobs", start_job, "Start a benchmark job",
             {201: "started (status running, or failed if it could not start)", 400: _E400,
              404: "resume: no such staged run", 408: "body not received in time",
              409: "another job is active, or the run to resume is in use",
              413: "body too large"}, JobRecord,
             body=JobConfig),
    Endpoint("GET", "/api/benchmark/jobs", list_jobs, "Job history, newest first",
             {200: "ok", 400: _E400}, JobList, query=LIST_PARAMS),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}", get_job, "One job",
             {200: "ok", 404: _E404}, JobRecord),
    Endpoint("POST", "/api/benchmark/jobs/{job_id}/cancel", cancel_job,
             "Cancel a job (SIGTERM, SIGKILL after the grace); returns the final record",
             {200: "final record", 400: _E400, 403: "another user's job", 404: _E404,
              408: "body not received in time", 409: "job already final",
              500: "could not be stopped"},
             JobRecord, body=CancelRequest),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}/logs", job_logs,
             "The job's log as text (streamed; header X-Log-Offset = start offset)",
             {200: "ok", 400: _E400, 404: _E404}, None, query=LOG_PARAMS,
             ok_content="text/plain"),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}/logs/ws", job_logs_ws,
             "WebSocket: log, cancelling and done messages (benchd.schema WsMessage)",
             {101: "switching protocols", 400: _E400, 404: _E404}, None, query=WS_PARAMS),
    Endpoint("GET", "/api/results", list_results, "Published result runs, newest first",
             {200: "ok"}, RunList),
    Endpoint("GET", "/api/results/staged", list_staged_runs,
             "Unpublished (staged) runs, newest first; `resume` takes their ids",
             {200: "ok"}, StagedRunList),
    Endpoint("DELETE", "/api/results/staged/{run}", discard_staged_run,
             "Discard a staged run: its files are deleted (not a published run)",
             {200: "discarded; the run as it was", 400: "not a run id, or a published run",
              403: "another user's run", 404: "no such staged run",
              409: "an orchestrator or the active job is working on it"}, DiscardedRun),
    Endpoint("GET", "/api/results/{run}", get_result, "One run by id, or `latest`",
             {200: "ok", 404: "unknown run"}, RunDetail),
    Endpoint("GET", "/api/experiments", experiments,
             "Experiments and the adapters supporting each (pipeline.registry.describe())",
             {200: "ok", 500: "the pipeline could not describe them"}, list[ExperimentInfo]),
)


def add_routes(app: web.Application) -> None:
    for ep in ENDPOINTS:
        app.router.add_route(ep.method, ep.path, ep.handler)


def utf8_boundary(buf: bytes | bytearray) -> int:
    """Length of `buf` without a trailing UTF-8 sequence that is still incomplete (0-3 bytes
    shorter than `buf`); invalid bytes are left in, to be shown as U+FFFD."""
    for back in range(1, min(4, len(buf)) + 1):
        byte = buf[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the sequence starts here
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 \
                else 4 if byte & 0xF8 == 0xF0 else 1
            return len(buf) - back if need > back else len(buf)
    return len(buf)
