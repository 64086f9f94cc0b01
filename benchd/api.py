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
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from benchd import discard
from benchd.app import CONTEXT, Context, decode_body, json_response
from benchd.errors import (BenchdError, Busy, CancelFailed, DeliveryNotFound,
                           ExecutorUnavailable, Forbidden,
                           InsufficientStorage, InvalidRequest, JobFinal, JobNotFound,
                           NotCancellable, NotPausable, PayloadTooLarge, PlotsUnavailable,
                           QueueFull, RequestTimeout, RunInUse, RunNotFound)
from benchd.jobquery import JobQuery
from benchd.layout import utc_now
from benchd.peercred import PeerCred, peer_cred
from benchd.notifications.targets import redacted
from benchd.schema import (JOB_ID_RE, CancellingMessage, CancelRequest, DeliveryInfo,
                           DeliveryList, DoneMessage, Health, JobConfig, JobList, JobPatch, JobRecord,
                           PauseRequest,
                           LogMessage, NotifyTarget, NotifyTestResult, PinRequest, PruneReport,
                           RetentionHistory)
from benchd.states import FINAL, JobState
from pipeline import archive, loader, pins, reportjob, staged, trend
from pipeline.report import MPL_CACHE, REPORT_FILE
from pipeline.results import MAX_FILE_BYTES, STAGING
from pipeline.schema import (CompareReport, DiscardedRun, ExperimentInfo, Pin, RunDetail, RunList,
                             RunSummary, StagedRunList, TrendReport)
from pipeline.smallfile import read_small_file

if TYPE_CHECKING:
    from benchd.jobs import JobManager
    from benchd.notifications.service import Notifications

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXPERIMENTS_TIMEOUT_S = 120.0
REPORT_TIMEOUT_S = 120.0    # a compare or report drawn in a child interpreter
CLIENT_GONE_POLL_S = 2.0    # how often a waiting follower checks that its client is still there
_ws_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Param:
    name: str
    kind: str          # "integer", "boolean", "string"
    doc: str


@dataclass(frozen=True)
class Endpoint:
    """One route: enough to register it and to document it in OpenAPI. `errors` is the one
    list of the domain errors (benchd.errors) its handler can raise: the OpenAPI responses
    derive from it, and tests/benchd/test_api_errors.py checks it against the handlers' code
    and README's API table."""
    method: str
    path: str
    handler: Handler
    summary: str
    ok: Mapping[int, str]
    errors: tuple[type[BenchdError], ...] = ()
    ok_schema: Any = None             # msgspec Struct or list[Struct] of the 2xx body;
                                      # None = free-form
    body: type | None = None          # msgspec Struct of the request body
    body_required: bool = False
    query: tuple[Param, ...] = ()
    ok_content: str = "application/json"

    @property
    def responses(self) -> dict[int, str]:
        """Status -> description: the success answers, then each declared error's status
        (several errors sharing one status are listed together, by code)."""
        out = dict(self.ok)
        by_status: dict[int, list[str]] = {}
        for err in self.errors:
            by_status.setdefault(err.http_status, []).append(f"`{err.code}`: {err.summary}")
        out.update({status: "; ".join(texts) for status, texts in by_status.items()})
        return out


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
               Param("before", "string", "a job id: only jobs created before it (the `next` "
                     "of the previous page)"),
               Param("status", "string", "comma-separated states, e.g. running,failed"),
               Param("user", "string", "only jobs requested by this user name"),
               Param("label", "string", "only jobs with this label (exact)"),
               Param("experiment", "string", "only jobs that ran this experiment (jobs "
                     "that ran all experiments included)"),
               Param("since", "string", "ISO-8601 time: only jobs created at or after it "
                     "(UTC unless it has an offset)"),
               Param("until", "string", "ISO-8601 time: only jobs created at or before it"))
RESULTS_PARAMS = (Param("limit", "integer", "at most this many runs (newest first)"),
                  Param("before", "string", "a run id: only runs older than it (the `next` "
                        "of the previous page)"),
                  Param("prefix", "string", "only runs whose id starts with this, e.g. a "
                        "date 2026-12-03"))
LOG_PARAMS = (Param("offset", "integer", "byte offset to start from (a reconnecting client "
                    "passes the offset it reached)"),
              Param("tail", "integer", "start at the last N lines (not with offset)"),
              Param("follow", "boolean", "1: keep streaming until the job ends"))
WS_PARAMS = (Param("offset", "integer", "byte offset to start from"),)
WS_MAX_LINE = 1 << 20   # a WebSocket follower never buffers more of an unterminated line
WS_LINES_PER_TURN = 16  # a WebSocket follower gives the loop a turn after this many lines


async def start_job(request: web.Request) -> web.StreamResponse:
    """Notification targets are checked here and kept (secrets included) by the notification
    service before the job's first record is written; the record holds them without secrets."""
    config = await decode_body(request, JobConfig, optional=True) or JobConfig()
    _query(request, ())
    ctx = _ctx(request)
    caller = _caller(request)
    targets = ctx.notifications.check(config.notify)
    if config.notify is not None:
        config = msgspec.structs.replace(config, notify=[redacted(t) for t in targets] or None)
    record = await ctx.manager.start(
        config, caller.uid, caller.user,
        before_start=lambda rec: ctx.notifications.register_job(rec.job_id, targets))
    return json_response(ctx.manager.shown(record), 201,
                         {"Location": f"/api/benchmark/jobs/{record.job_id}"})


def _time(q: Mapping[str, str], name: str) -> str | None:
    """An ISO-8601 query time in JobRecord.created_at's form (UTC, milliseconds), so that
    records compare as strings; a date alone is its midnight (UTC)."""
    raw = q.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: expected an ISO-8601 time such as 2026-12-01 or "
                             f"2026-12-01T08:00:00+00:00, got {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _job_query(q: Mapping[str, str]) -> JobQuery:
    before = q.get("before")
    if before is not None and not JOB_ID_RE.match(before):
        raise InvalidRequest(f"before: not a job id: {before[:40]!r} (12 lowercase hex digits)")
    return JobQuery(limit=_int(q, "limit", 1), before=before, statuses=_statuses(q),
                    user=q.get("user"), label=q.get("label"), experiment=q.get("experiment"),
                    since=_time(q, "since"), until=_time(q, "until"))


def _with_staged_run(rec: JobRecord, results_dir: Path,
                     notifications: Notifications | None = None) -> JobRecord:
    """`rec` with staged_run set when it ended without publishing and its run is still in
    results/.staging (resumable or discardable): what `history` shows as "RUN (staged)";
    and with its notifications' delivery status."""
    if notifications is not None:
        status = notifications.status_of(rec.job_id)
        if status is not None:
            rec = msgspec.structs.replace(rec, notify_status=status)
    run_id = rec.progress.run_id if rec.progress else None
    if (run_id is None or rec.run_dir is not None or rec.status not in FINAL
            or not loader.is_run_id(run_id) or not (results_dir / STAGING / run_id).is_dir()):
        return rec
    return msgspec.structs.replace(rec, staged_run=run_id)


async def list_jobs(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    found = ctx.manager.page_jobs(_job_query(_query(request, LIST_PARAMS)))
    jobs = [_with_staged_run(ctx.manager.shown(r), ctx.results_dir, ctx.notifications)
            for r in found.jobs]
    return json_response(JobList(jobs=jobs, next=found.next, total=found.total))


async def get_job(request: web.Request) -> web.StreamResponse:
    _query(request, ())
    ctx = _ctx(request)
    return json_response(_with_staged_run(ctx.manager.shown(ctx.manager.get(_job_id(request))),
                                          ctx.results_dir, ctx.notifications))


async def patch_job(request: web.Request) -> web.StreamResponse:
    """Change a job's priority (the owner, root or the admin group; above 0: root/admin)."""
    job_id = _job_id(request)
    _query(request, ())
    body = await decode_body(request, JobPatch, optional=False)
    ctx = _ctx(request)
    rec = ctx.manager.get(job_id)
    if body.priority is not None:
        rec = await ctx.manager.set_priority(job_id, _caller(request).uid, body.priority)
    return json_response(ctx.manager.shown(rec))


# --- notifications -----------------------------------------------------------------------

DELIVERY_PARAMS = (Param("job", "string", "only this job's deliveries"),
                   Param("status", "string", "pending, sent or dead"))


async def add_job_target(request: web.Request) -> web.StreamResponse:
    """Another notification target for a job of the caller's own (its later events only)."""
    ctx = _ctx(request)
    job_id = _job_id(request)
    _query(request, ())
    target = await decode_body(request, NotifyTarget, optional=False)
    rec = ctx.manager.get(job_id)
    caller = _caller(request)
    if rec.status in FINAL:
        raise JobFinal(f"job {job_id} is already {rec.status.value}: it has no events left to "
                       f"notify about")
    added = ctx.notifications.add_target(rec, caller.uid, target)
    return json_response(redacted(added), 201)


async def list_deliveries(request: web.Request) -> web.StreamResponse:
    """The caller's jobs' deliveries (root and the admin group: everyone's), newest first."""
    ctx = _ctx(request)
    q = _query(request, DELIVERY_PARAMS)
    state = q.get("status")
    if state is not None and state not in ("pending", "sent", "dead"):
        raise InvalidRequest(f"status: expected pending, sent or dead, got {state!r}")
    job_id = q.get("job")
    if job_id is not None and not JOB_ID_RE.fullmatch(job_id):
        raise InvalidRequest(f"job: not a job id: {job_id[:40]!r}")
    caller = _caller(request)
    admin = await asyncio.to_thread(ctx.manager.is_admin, caller.uid)
    owners = {} if admin else {r.job_id: r.requester_uid for r in ctx.manager.list_jobs()}
    items = await asyncio.to_thread(
        ctx.notifications.list, lambda d: admin or owners.get(d.job_id) == caller.uid, admin,
        job_id, state)
    return json_response(DeliveryList(deliveries=items))


async def retry_delivery(request: web.Request) -> web.StreamResponse:
    """Queue a dead-lettered delivery again: the job's owner, root or the admin group."""
    ctx = _ctx(request)
    _query(request, ())
    delivery_id = request.match_info["delivery_id"]
    _, d = ctx.notifications.find(delivery_id)
    caller = _caller(request)
    owner = ctx.manager.get(d.job_id).requester_uid if d.job_id != "-" else None
    if caller.uid != owner and not await asyncio.to_thread(ctx.manager.is_admin, caller.uid):
        raise Forbidden(f"delivery {delivery_id} is about another user's job; only they, root "
                        f"or the admin group may retry it")
    return json_response(ctx.notifications.retry(delivery_id))


async def test_target(request: web.Request) -> web.StreamResponse:
    """Send one test event to a target now and report what its receiver answered."""
    _query(request, ())
    target = await decode_body(request, NotifyTarget, optional=False)
    return json_response(await _ctx(request).notifications.test(target))


async def cancel_job(request: web.Request) -> web.StreamResponse:
    job_id = _job_id(request)
    _query(request, ())
    body = await decode_body(request, CancelRequest, optional=True)
    caller = _caller(request)
    ctx = _ctx(request)
    record = await ctx.manager.cancel(job_id, caller.uid, body.grace if body else None)
    return json_response(_with_staged_run(record, ctx.results_dir, ctx.notifications))


async def pause_job(request: web.Request) -> web.StreamResponse:
    """Hold a queued or preempted job, or pause a running one (owner, root or the admin
    group)."""
    job_id = _job_id(request)
    _query(request, ())
    body = await decode_body(request, PauseRequest, optional=True)
    ctx = _ctx(request)
    rec = await ctx.manager.pause(job_id, _caller(request).uid, bool(body and body.now))
    return json_response(rec)


async def resume_job(request: web.Request) -> web.StreamResponse:
    """Put a paused job back in the queue (owner, root or the admin group)."""
    job_id = _job_id(request)
    _query(request, ())
    ctx = _ctx(request)
    return json_response(await ctx.manager.resume(job_id, _caller(request).uid))


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
                                active_job=ctx.manager.active(),
                                executor=await ctx.manager.executor.health_text()))


async def list_results(request: web.Request) -> web.StreamResponse:
    """Reading results touches many small files: off the loop (the watchdog pings on it)."""
    q = _query(request, RESULTS_PARAMS)
    try:
        runs = await asyncio.to_thread(loader.page_runs, _ctx(request).results_dir,
                                       limit=_int(q, "limit", 1), before=q.get("before"),
                                       prefix=q.get("prefix", ""))
    except loader.InvalidRunIdError as e:
        raise InvalidRequest(str(e)) from None
    return json_response(runs)


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
    return loader.load_run(results_dir, loader.resolve_run_id(results_dir, run))


async def get_result(request: web.Request) -> web.StreamResponse:
    """One run by id, `latest` or a unique prefix (resolved here, so scripts get prefixes
    too); the loader refuses anything that is not (the start of) a run id, so no path trick
    reaches the filesystem. An ambiguous prefix is a 400 listing the candidates."""
    _query(request, ())
    run = request.match_info["run"]
    try:
        detail = await asyncio.to_thread(_load_run, _ctx(request).results_dir, run)
    except loader.AmbiguousRunError as e:
        raise InvalidRequest(f"run: {e}") from None
    except loader.RunNotFoundError as e:
        raise RunNotFound(str(e) or f"no run {run!r}") from None
    return json_response(detail)


# --- compare, trend, report.html -----------------------------------------------------------

COMPARE_PARAMS = (Param("base", "string", "the base run: id, unique prefix or `latest`"),
                  Param("head", "string", "the head run: id, unique prefix or `latest`"),
                  Param("threshold", "string", "speed ratio beyond which a significant change "
                        "is a regression (default 1.10)"),
                  Param("error_tolerance", "string", "p99/max error growth factor that is a "
                        "regression (default 1.10)"))
TREND_PARAMS = (Param("experiment", "string", "the experiment (required)"),
                Param("library", "string", "only this library"))


async def _reportjob(ctx: Context, *args: str) -> tuple[int, bytes, str]:
    """Run `python -m pipeline.reportjob ARGS`: (exit code, stdout, last stderr line); each
    caller maps the codes it can get (pipeline.reportjob.EXIT_*). It imports scipy and
    matplotlib, which would add ~100 MB to the daemon's RSS for good and block its loop for
    a second: a child pays that and gives the memory back when it exits."""
    # matplotlib's font cache in the lab root: under the service's sandbox (ProtectHome,
    # PrivateTmp) it would otherwise be rebuilt in a fresh temporary directory every time
    env = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR")
           or str(ctx.root / MPL_CACHE)}
    async with ctx.report_slots:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.reportjob", *args, cwd=str(ctx.root), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), REPORT_TIMEOUT_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise BenchdError(f"{args[0]} took longer than {REPORT_TIMEOUT_S:g} s") from None
        except asyncio.CancelledError:   # the client went away: do not leave the child
            proc.kill()
            await proc.wait()
            raise
    message = (err.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
    return proc.returncode if proc.returncode is not None else -1, out, message


def _factor(q: Mapping[str, str], name: str) -> str:
    raw = q.get(name, "1.10")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: expected a number such as 1.10, got {raw[:40]!r}") \
            from None
    if not value >= 1.0 or value == float("inf"):
        raise InvalidRequest(f"{name}: expected a finite number >= 1, got {raw[:40]!r}")
    return repr(value)


async def compare_runs(request: web.Request) -> web.StreamResponse:
    """Compare two published runs (pipeline.compare) in a child interpreter."""
    q = _query(request, COMPARE_PARAMS)
    missing = [p for p in ("base", "head") if not q.get(p)]
    if missing:
        raise InvalidRequest(f"{missing[0]}: required (a run id, a prefix or latest)")
    threshold, tolerance = _factor(q, "threshold"), _factor(q, "error_tolerance")
    if float(threshold) <= 1.0:
        raise InvalidRequest(f"threshold: must be > 1, got {q.get('threshold')!r}")
    body = await compare_report(_ctx(request), q["base"], q["head"], threshold, tolerance)
    return web.Response(body=body, content_type="application/json")


async def compare_report(ctx: Context, base: str, head: str, threshold: str = "1.1",
                         tolerance: str = "1.1") -> bytes:
    """The CompareReport (JSON) of two runs, computed in a child interpreter (scipy stays
    out of benchd); InvalidRequest or RunNotFound with the child's message, for the API and
    the dashboard alike."""
    rc, body, message = await _reportjob(ctx, "compare", str(ctx.results_dir), base, head,
                                         threshold, tolerance)
    if rc == reportjob.EXIT_INVALID:
        raise InvalidRequest(message)
    if rc == reportjob.EXIT_NOT_FOUND:
        raise RunNotFound(message)
    if rc != reportjob.EXIT_OK:
        raise BenchdError(f"compare failed: {message}")
    return body


async def run_trend(request: web.Request) -> web.StreamResponse:
    """One experiment over every published run; reads one file set per run, off the loop."""
    q = _query(request, TREND_PARAMS)
    if not q.get("experiment"):
        raise InvalidRequest("experiment: required")
    try:
        rep = await asyncio.to_thread(trend.trend, _ctx(request).results_dir, q["experiment"],
                                      q.get("library"))
    except trend.TrendError as e:
        raise InvalidRequest(str(e)) from None
    return json_response(rep)


def _stored_report(results_dir: Path, run: str) -> tuple[str, bytes | None]:
    """The run's id and its report.html as written at publishing (None: it has none, e.g.
    published without matplotlib, before reports existed, or archived)."""
    run_id = loader.resolve_run_id(results_dir, run)
    path = results_dir / run_id / REPORT_FILE
    try:
        return run_id, read_small_file(path, MAX_FILE_BYTES)
    except OSError:
        return run_id, None


async def run_report(request: web.Request) -> web.StreamResponse:
    """report.html of a run: the file written when it was published, else drawn now (in a
    child interpreter; 501 `plots_unavailable` when matplotlib is missing)."""
    _query(request, ())
    ctx = _ctx(request)
    run = request.match_info["run"]
    try:
        run_id, body = await asyncio.to_thread(_stored_report, ctx.results_dir, run)
    except loader.AmbiguousRunError as e:
        raise InvalidRequest(f"run: {e}") from None
    except loader.RunNotFoundError as e:
        raise RunNotFound(str(e) or f"no run {run!r}") from None
    if body is None:
        rc, body, message = await _reportjob(ctx, "report", str(ctx.results_dir), run_id)
        if rc == reportjob.EXIT_NO_PLOTS:
            raise PlotsUnavailable(f"run {run_id} has no stored report.html and none can be "
                                   f"drawn here: {message}")
        if rc == reportjob.EXIT_NOT_FOUND:
            raise RunNotFound(message)
        if rc != reportjob.EXIT_OK:
            raise BenchdError(f"report failed: {message}")
    return web.Response(body=body, content_type="text/html", charset="utf-8")


# --- retention: pins, prune, archives ------------------------------------------------------

PRUNE_PARAMS = (Param("dry_run", "boolean", "1: only say what would be deleted (anyone may)"),)
HISTORY_PARAMS = (Param("limit", "integer", "at most this many entries (newest first)"),)


async def _run_summary(ctx: Context, run: str) -> RunSummary:
    if not loader.is_run_id(run):
        raise RunNotFound(f"not a run id: {run[:40]!r} (expected YYYY-MM-DD_HH-MM-SS[_NN] or "
                          f"YYYY-MM-DD)")
    runs = await asyncio.to_thread(loader.list_runs, ctx.results_dir)
    found = next((r for r in runs if r.run_id == run), None)
    if found is None:
        raise RunNotFound(f"no published run {run!r}")
    return found


async def _may_keep(ctx: Context, caller: PeerCred, run: str, what: str) -> None:
    """Pins and restores: the run's owner (whoever's job created it), root, the admin group."""
    owners = ctx.manager.run_owners(run)
    if caller.uid in owners or await asyncio.to_thread(ctx.manager.is_admin, caller.uid):
        return
    who = ", ".join(sorted(owners.values())) or "nobody known (its job record is gone)"
    raise Forbidden(f"run {run} belongs to {who}; only its owner, root or the admin group may "
                    f"{what} it")


async def pin_run(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    _query(request, ())
    run = request.match_info["run"]
    body = await decode_body(request, PinRequest, optional=True) or PinRequest()
    if body.note is not None and (len(body.note) > pins.MAX_NOTE or not body.note.isprintable()):
        raise InvalidRequest(f"note: at most {pins.MAX_NOTE} printable characters")
    await _run_summary(ctx, run)
    caller = _caller(request)
    await _may_keep(ctx, caller, run, "pin")
    pin = Pin(run_id=run, pinned_by_uid=caller.uid, pinned_by=caller.user,
              pinned_at=utc_now(), note=body.note)
    await asyncio.to_thread(ctx.retention.pruner.pin, pin)
    log.info("retention: %s pinned run %s%s", caller.user, run,
             f" ({body.note})" if body.note else "")
    return json_response(pin)


async def unpin_run(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    _query(request, ())
    run = request.match_info["run"]
    summary = await _run_summary(ctx, run)
    if not summary.pinned:
        raise RunNotFound(f"run {run} is not pinned")
    caller = _caller(request)
    await _may_keep(ctx, caller, run, "unpin")
    await asyncio.to_thread(pins.remove_pin, ctx.results_dir, run)
    log.info("retention: %s unpinned run %s", caller.user, run)
    return json_response(msgspec.structs.replace(summary, pinned=False, pin_note=None))


async def restore_run(request: web.Request) -> web.StreamResponse:
    """Unpack an archived run back into results/ (its owner, root or the admin group)."""
    ctx = _ctx(request)
    _query(request, ())
    run = request.match_info["run"]
    summary = await _run_summary(ctx, run)
    if not summary.archived:
        raise InvalidRequest(f"run: {run} is not archived")
    await _may_keep(ctx, _caller(request), run, "restore")
    async with ctx.retention.lock:
        await asyncio.to_thread(archive.restore_run, ctx.results_dir, run)
    log.info("retention: run %s restored from its archive", run)
    return json_response(await _run_summary(ctx, run))


async def prune(request: web.Request) -> web.StreamResponse:
    """Apply the retention policy now (root and the admin group), or say what it would do."""
    ctx = _ctx(request)
    q = _query(request, PRUNE_PARAMS)
    dry = _bool(q, "dry_run")
    caller = _caller(request)
    if not dry and not await asyncio.to_thread(ctx.manager.is_admin, caller.uid):
        raise Forbidden("only root or the admin group may prune; anyone may ask for a dry run "
                        "(?dry_run=1, `benchctl prune --dry-run`)")
    return json_response(await ctx.retention.prune("manual", dry_run=dry, by=caller.user))


async def retention_history(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    q = _query(request, HISTORY_PARAMS)
    limit = _int(q, "limit", 1) or 100
    entries = await asyncio.to_thread(ctx.retention.history, limit)
    return json_response(RetentionHistory(entries=[msgspec.to_builtins(e) for e in entries]))


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


_BODY = (InvalidRequest, RequestTimeout, PayloadTooLarge)  # any route that reads a body
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/health", health, "Daemon health and the active job",
             {200: "ok"}, (), Health),
    Endpoint("GET", "/api/openapi.json", openapi_json, "This OpenAPI document", {200: "ok"}),
    Endpoint("POST", "/api/benchmark/jobs", start_job, "Start a benchmark job",
             {201: "started (status running, or failed if it could not start), or queued "
                   "(status queued, with queue_position) when no slot is free"},
             (*_BODY, Forbidden, RunNotFound, Busy, RunInUse, InsufficientStorage, QueueFull,
              ExecutorUnavailable),
             JobRecord, body=JobConfig),
    Endpoint("GET", "/api/benchmark/jobs", list_jobs,
             "Job history, newest first, one page (`next` is the cursor of the next page)",
             {200: "ok"}, (InvalidRequest,), JobList, query=LIST_PARAMS),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}", get_job, "One job",
             {200: "ok"}, (InvalidRequest, JobNotFound), JobRecord),
    Endpoint("PATCH", "/api/benchmark/jobs/{job_id}", patch_job,
             "Change a job's priority (body {\"priority\": N})",
             {200: "the record with its new priority (and queue position)"},
             (*_BODY, Forbidden, JobNotFound, JobFinal), JobRecord, body=JobPatch,
             body_required=True),
    Endpoint("POST", "/api/benchmark/jobs/{job_id}/cancel", cancel_job,
             "Cancel a job (SIGTERM, SIGKILL after the grace); returns the final record",
             {200: "final record"},
             (*_BODY, Forbidden, JobNotFound, NotCancellable, CancelFailed),
             JobRecord, body=CancelRequest),
    Endpoint("POST", "/api/benchmark/jobs/{job_id}/pause", pause_job,
             "Hold a queued or preempted job (it keeps its place, is not started), or stop a "
             "running one at its next experiment boundary (`now`: SIGTERM) and keep it paused",
             {200: "the record: paused, or pausing while a running job stops"},
             (*_BODY, Forbidden, JobNotFound, NotPausable), JobRecord, body=PauseRequest),
    Endpoint("POST", "/api/benchmark/jobs/{job_id}/resume", resume_job,
             "Put a paused job back in the queue",
             {200: "the record, queued (or starting)"},
             (InvalidRequest, Forbidden, JobNotFound, NotPausable), JobRecord),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}/logs", job_logs,
             "The job's log as text (streamed; header X-Log-Offset = start offset)",
             {200: "ok"}, (InvalidRequest, JobNotFound), None, query=LOG_PARAMS,
             ok_content="text/plain"),
    Endpoint("GET", "/api/benchmark/jobs/{job_id}/logs/ws", job_logs_ws,
             "WebSocket: log, cancelling and done messages (benchd.schema WsMessage)",
             {101: "switching protocols"}, (InvalidRequest, JobNotFound), None,
             query=WS_PARAMS),
    Endpoint("POST", "/api/benchmark/jobs/{job_id}/notify", add_job_target,
             "Add a notification target to one of your jobs (its later events)",
             {201: "added (shown without its secret)"},
             (*_BODY, Forbidden, JobNotFound, JobFinal, InsufficientStorage),
             NotifyTarget, body=NotifyTarget, body_required=True),
    Endpoint("GET", "/api/notify/deliveries", list_deliveries,
             "Notification deliveries of your jobs (all jobs for root/admin), newest first",
             {200: "ok"}, (InvalidRequest, Forbidden), DeliveryList, query=DELIVERY_PARAMS),
    Endpoint("POST", "/api/notify/deliveries/{delivery_id}/retry", retry_delivery,
             "Queue a dead-lettered delivery again",
             {200: "queued"}, (InvalidRequest, Forbidden, DeliveryNotFound, JobNotFound,
                               InsufficientStorage), DeliveryInfo),
    Endpoint("POST", "/api/notify/test", test_target,
             "Send a test event to a target now; returns the receiver's answer",
             {200: "sent or not (see ok)"}, _BODY, NotifyTestResult,
             body=NotifyTarget, body_required=True),
    Endpoint("GET", "/api/results", list_results,
             "Published result runs, newest first, one page (`next`: cursor of the next)",
             {200: "ok"}, (InvalidRequest,), RunList, query=RESULTS_PARAMS),
    Endpoint("GET", "/api/results/staged", list_staged_runs,
             "Unpublished (staged) runs, newest first; `resume` takes their ids",
             {200: "ok"}, (InvalidRequest,), StagedRunList),
    Endpoint("DELETE", "/api/results/staged/{run}", discard_staged_run,
             "Discard a staged run: its files are deleted (not a published run)",
             {200: "discarded; the run as it was"},
             (InvalidRequest, Forbidden, RunNotFound, RunInUse), DiscardedRun),
    Endpoint("GET", "/api/results/compare", compare_runs,
             "Compare two runs: speed ratios with CIs, significance, error and environment "
             "changes, verdict", {200: "ok (verdict ok or regression)"},
             (InvalidRequest, RunNotFound, BenchdError), CompareReport, query=COMPARE_PARAMS),
    Endpoint("GET", "/api/results/trend", run_trend,
             "One experiment's ns/op and p99 error over every published run",
             {200: "ok"}, (InvalidRequest,), TrendReport, query=TREND_PARAMS),
    Endpoint("GET", "/api/results/{run}", get_result,
             "One run by id, `latest`, or a unique prefix of a run id (an exact id wins)",
             {200: "ok"}, (InvalidRequest, RunNotFound), RunDetail),
    Endpoint("GET", "/api/results/{run}/report.html", run_report,
             "The run's self-contained HTML report with plots (text/html)",
             {200: "ok"}, (InvalidRequest, RunNotFound, PlotsUnavailable, BenchdError), None,
             ok_content="text/html"),
    Endpoint("POST", "/api/results/{run}/pin", pin_run,
             "Pin a run: no retention rule deletes or archives it (optional body {note})",
             {200: "pinned"}, (*_BODY, Forbidden, RunNotFound), Pin, body=PinRequest),
    Endpoint("DELETE", "/api/results/{run}/pin", unpin_run, "Unpin a run",
             {200: "the run, unpinned"}, (InvalidRequest, Forbidden, RunNotFound), RunSummary),
    Endpoint("POST", "/api/results/{run}/restore", restore_run,
             "Unpack an archived run back into results/",
             {200: "restored"}, (InvalidRequest, Forbidden, RunNotFound), RunSummary),
    Endpoint("POST", "/api/retention/prune", prune,
             "Apply the retention policy now (root/admin), or ?dry_run=1 (anyone)",
             {200: "what was (or would be) deleted and what was kept"},
             (InvalidRequest, Forbidden), PruneReport, query=PRUNE_PARAMS),
    Endpoint("GET", "/api/retention/history", retention_history,
             "Deletions and archivals, newest first (logs/retention.jsonl)",
             {200: "ok"}, (InvalidRequest, Forbidden), RetentionHistory, query=HISTORY_PARAMS),
    Endpoint("GET", "/api/experiments", experiments,
             "Experiments and the adapters supporting each (pipeline.registry.describe())",
             {200: "ok"}, (InvalidRequest, BenchdError), list[ExperimentInfo]),
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
