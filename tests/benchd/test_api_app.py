"""benchd.app + benchd.api: the real application on a real Unix socket in the test's loop,
over a real JobManager running the fake orchestrator (real supervisor processes)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from benchd.api import ENDPOINTS
from benchd.app import Context, make_app
from benchd.jobs import JobManager
from benchd.notifications.config import NotifyConfig
from benchd.notifications.service import Notifications

from benchd.retention.policy import Policy
from benchd.retention.service import Retention
from tests.support.daemon import FAKE_ORCHESTRATOR, MARKER_ENV, kill_marked

JSON = {"Content-Type": "application/json"}


@dataclass
class Served:
    root: Path
    manager: JobManager
    session: aiohttp.ClientSession
    app: web.Application
    spec: Path
    gate: Path

    def set_spec(self, **spec: object) -> None:
        self.spec.write_text(json.dumps(spec))

    async def start(self, **config: object) -> dict:
        async with self.session.post("http://benchd/api/benchmark/jobs", json=config) as r:
            assert r.status == 201, await r.text()
            return await r.json()

    async def wait_final(self, job_id: str, timeout: float = 20.0) -> dict:
        async def final() -> dict:
            async for rec in self.manager.watch(job_id):
                pass
            return rec
        rec = await asyncio.wait_for(final(), timeout)
        async with self.session.get(f"http://benchd/api/benchmark/jobs/{job_id}") as r:
            body = await r.json()
        assert body["status"] == rec.status.value
        return body


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "root"
    root.mkdir()
    spec, gate = root / "spec.json", root / "gate"
    spec.write_text("{}")
    marker = uuid.uuid4().hex
    monkeypatch.setenv("FAKE_ORCHESTRATOR_SPEC", str(spec))
    monkeypatch.setenv(MARKER_ENV, marker)  # inherited by every job process: cleanup below
    sock_dir = tempfile.mkdtemp(prefix="bd-app-", dir="/tmp")
    sock = os.path.join(sock_dir, "s.sock")
    manager = JobManager(root, grace=1.0, orchestrator=FAKE_ORCHESTRATOR)
    await manager.reconcile()
    app = make_app(Context(manager=manager, root=root, socket_path=sock, version="test",
                           grace=1.0, notifications=Notifications(root, NotifyConfig()),
                           retention=Retention(root, Policy(), manager)))
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.UnixSite(runner, sock).start()
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock),
                                    timeout=aiohttp.ClientTimeout(total=60))
    try:
        yield Served(root, manager, session, app, spec, gate)
    finally:
        await session.close()
        await runner.cleanup()
        await manager.close(cancel_running=True)
        kill_marked(marker)
        shutil.rmtree(sock_dir, ignore_errors=True)


BAD_REQUESTS = [
    # method, path, body, headers, status, code, message fragment
    ("POST", "/api/benchmark/jobs", b'{"n": "x"}', JSON, 400, "invalid_request",
     "n: expected int or null, got str"),
    ("POST", "/api/benchmark/jobs", b'{"bogus": 1}', JSON, 400, "invalid_request",
     "bogus: unknown field"),
    ("POST", "/api/benchmark/jobs", b'{"n": 0}', JSON, 400, "invalid_request", "n: must be"),
    ("POST", "/api/benchmark/jobs", b'{"experiments": ["nope"]}', JSON, 400,
     "invalid_request", "experiments: unknown experiment 'nope'"),
    ("POST", "/api/benchmark/jobs", b'{"experiments": [1]}', JSON, 400, "invalid_request",
     "experiments[0]: expected str, got int"),
    ("POST", "/api/benchmark/jobs", b'[1]', JSON, 400, "invalid_request",
     "body: expected object, got array"),
    ("POST", "/api/benchmark/jobs", b'{"n": 1', JSON, 400, "invalid_request", "malformed JSON"),
    ("POST", "/api/benchmark/jobs", b'{}', {"Content-Type": "text/plain"}, 400,
     "invalid_request", "Content-Type must be application/json"),
    ("POST", "/api/benchmark/jobs", b'{"n":1' + b" " * 70_000 + b"}", JSON, 413,
     "payload_too_large", "limit 65536"),
    ("DELETE", "/api/benchmark/jobs", None, {}, 405, "method_not_allowed", "allowed: GET,POST"),
    ("GET", "/api/nothing-here", None, {}, 404, "not_found", "no such endpoint"),
    ("GET", "/api/benchmark/jobs/0123456789ab", None, {}, 404, "job_not_found", "0123456789ab"),
    ("GET", "/api/benchmark/jobs/..%2F..%2Fetc%2Fpasswd", None, {}, 404, "job_not_found",
     "12 lowercase hex"),
    ("GET", "/api/benchmark/jobs/ABCDEF012345/logs", None, {}, 404, "job_not_found", "hex"),
    ("POST", "/api/benchmark/jobs/0123456789ab/cancel", None, {}, 404, "job_not_found", ""),
    ("GET", "/api/benchmark/jobs?limit=0", None, {}, 400, "invalid_request", "limit: must be"),
    ("GET", "/api/benchmark/jobs?limit=ten", None, {}, 400, "invalid_request", "limit: expected"),
    ("GET", "/api/benchmark/jobs?status=running,bogus", None, {}, 400, "invalid_request",
     "status: unknown state 'bogus'"),
    ("GET", "/api/benchmark/jobs?stauts=running", None, {}, 400, "invalid_request",
     "stauts: unknown query parameter"),
    ("GET", "/api/results/..%2Fetc", None, {}, 404, "run_not_found", ""),
    ("DELETE", "/api/results/staged/..%2F..%2Fetc", None, {}, 400, "invalid_request",
     "run: not a run id: '../../etc'"),
    ("DELETE", "/api/results/staged/1999-01-01_00-00-00", None, {}, 404, "run_not_found",
     "no staged run 1999-01-01_00-00-00"),
    ("DELETE", "/api/results/staged/1999-01-01_00-00-00?force=1", None, {}, 400,
     "invalid_request", "force: unknown query parameter"),
]


@pytest.mark.parametrize("method,path,body,headers,status,code,fragment", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1][:40]} {r[4]}" for r in BAD_REQUESTS])
async def test_every_error_has_the_one_shape(served: Served, method, path, body, headers,
                                             status, code, fragment) -> None:
    async with served.session.request(method, f"http://benchd{path}", data=body,
                                      headers=headers) as r:
        assert r.status == status
        assert r.content_type == "application/json"
        payload = await r.json()
    assert set(payload) == {"error"} and payload["error"]["code"] == code
    assert fragment in payload["error"]["message"]
    assert "Traceback" not in payload["error"]["message"]
    assert served.manager.list_jobs() == []  # nothing was started by a bad request


async def test_unexpected_exceptions_are_logged_500s_without_traceback(served: Served,
                                                                       caplog) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")
    served.app.router._frozen = False  # a route that fails for real, added for this test
    served.app.router.add_get("/api/boom", boom)
    async with served.session.get("http://benchd/api/boom") as r:
        assert r.status == 500
        body = await r.json()
    assert body == {"error": {"code": "internal",
                              "message": "internal error; details are in benchd's log"}}
    assert "secret internals" in caplog.text


async def test_start_uses_peer_credentials_and_queues_when_the_slot_is_taken(served: Served) -> None:
    served.set_spec(wait_for_file=str(served.gate))
    async with served.session.post("http://benchd/api/benchmark/jobs",
                                   json={"experiments": ["gmst_era"], "ci": True,
                                         "requester_uid": 0}) as r:
        assert r.status == 400  # a client cannot claim an identity
    job = await served.start(experiments=["gmst_era"], ci=True)
    assert job["status"] == "running"
    assert job["requester_uid"] == os.getuid()
    # the one slot is taken: "queue": false keeps the old refusal, naming the active job
    async with served.session.post("http://benchd/api/benchmark/jobs",
                                   json={"queue": False}) as r:
        assert r.status == 409
        err = (await r.json())["error"]
        assert job["job_id"] in err["message"] and err["job_id"] == job["job_id"]
        assert err["code"] == "busy"
    # by default a second start is queued behind it
    async with served.session.post("http://benchd/api/benchmark/jobs", json={}) as r:
        assert r.status == 201
        queued = await r.json()
    assert queued["status"] == "queued" and queued["queue_position"] == 1, queued
    async with served.session.get("http://benchd/api/health") as r:
        health = await r.json()
    assert health["active_job"]["job_id"] == job["job_id"] and health["status"] == "ok"
    served.gate.touch()
    final = await served.wait_final(job["job_id"])
    assert final["status"] == "completed" and final["exit_code"] == 0
    second = await served.wait_final(queued["job_id"])  # started once the slot was free
    assert second["status"] == "completed" and second["started_at"] >= final["finished_at"]
    async with served.session.get("http://benchd/api/benchmark/jobs?status=completed&limit=2") as r:
        listed = await r.json()
    assert [j["job_id"] for j in listed["jobs"]] == [queued["job_id"], job["job_id"]]


async def test_cancel_returns_the_final_record(served: Served) -> None:
    served.set_spec(wait_for_file=str(served.gate))
    job = await served.start()
    url = f"http://benchd/api/benchmark/jobs/{job['job_id']}/cancel"
    async with served.session.post(url, json={"grace": "soon"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "grace: expected float or null, got str"
    async with served.session.post(url, json={"grace": 0.5}) as r:
        assert r.status == 200
        rec = await r.json()
    assert rec["status"] == "cancelled" and rec["cancel_requested_by"] == os.getuid()
    async with served.session.post(url) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "not_cancellable"


async def test_log_offsets_tail_and_follow(served: Served) -> None:
    served.set_spec(lines=300, lines_per_s=3000)
    job = await served.start()
    base = f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs"
    async with served.session.get(base + "?follow=1") as r:
        assert r.status == 200 and r.headers["X-Log-Offset"] == "0"
        assert r.content_type == "text/plain"
        followed = await r.read()  # ends when the job is final and the log drained
    assert served.manager.get(job["job_id"]).status.value == "completed"
    on_disk = (served.root / "logs" / f"{job['job_id']}.log").read_bytes()
    assert followed == on_disk and b"line 299 of 300" in on_disk
    middle = on_disk.index(b"line 150 of 300")
    async with served.session.get(f"{base}?offset={middle}") as r:
        assert r.headers["X-Log-Offset"] == str(middle)
        assert await r.read() == on_disk[middle:]
    async with served.session.get(f"{base}?tail=2") as r:
        tail = await r.read()
        assert tail == b"".join(on_disk.splitlines(keepends=True)[-2:])
        assert int(r.headers["X-Log-Offset"]) == len(on_disk) - len(tail)
    for query, fragment in ((f"offset={len(on_disk) + 1}", "past the end"),
                            ("offset=-1", "offset: must be >= 0"),
                            ("offset=1&tail=1", "tail: cannot be combined"),
                            ("follow=maybe", "follow: expected 1 or 0")):
        async with served.session.get(f"{base}?{query}") as r:
            assert r.status == 400, query
            assert fragment in (await r.json())["error"]["message"]


async def test_a_follower_reconnecting_at_its_offset_gets_every_line_once(served: Served) -> None:
    served.set_spec(lines=400, lines_per_s=2000)
    job = await served.start()
    base = f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs?follow=1"
    received = b""
    for _ in range(3):  # drop the connection twice mid-stream
        async with served.session.get(f"{base}&offset={len(received)}") as r:
            assert r.headers["X-Log-Offset"] == str(len(received))
            got = await r.content.readany()
            received += got
    async with served.session.get(f"{base}&offset={len(received)}") as r:
        received += await r.read()
    on_disk = (served.root / "logs" / f"{job['job_id']}.log").read_bytes()
    assert received == on_disk
    assert [ln for ln in received.splitlines() if ln.startswith(b"line ")] == \
        [f"line {i} of 400".encode() for i in range(400)]


async def test_websocket_streams_lines_cancelling_and_done(served: Served) -> None:
    served.set_spec(lines=20, wait_for_file=str(served.gate))
    job = await served.start()
    url = f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs/ws"
    messages: list[dict] = []
    async with served.session.ws_connect(url) as ws:
        async def read_until(pred) -> None:
            async for m in ws:
                messages.append(json.loads(m.data))
                if pred(messages[-1]):
                    return
        await asyncio.wait_for(read_until(lambda m: m.get("line") == "line 19 of 20"), 20)
        async with served.session.post(
                f"http://benchd/api/benchmark/jobs/{job['job_id']}/cancel",
                json={"grace": 0.5}) as r:
            assert r.status == 200
        await asyncio.wait_for(read_until(lambda m: m["type"] == "done"), 20)
        assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    types = [m["type"] for m in messages]
    assert types[-1] == "done" and messages[-1]["status"] == "cancelled"
    cancelling = [m for m in messages if m["type"] == "cancelling"]
    assert len(cancelling) == 1 and cancelling[0]["by_uid"] == os.getuid()
    assert cancelling[0]["grace"] == 0.5
    logs = [m for m in messages if m["type"] == "log"]
    on_disk = (served.root / "logs" / f"{job['job_id']}.log").read_bytes()
    assert [m["line"].encode() for m in logs] == on_disk.splitlines()
    assert logs[-1]["offset"] == len(on_disk)
    offsets = [m["offset"] for m in logs]
    assert offsets == sorted(offsets)


async def test_openapi_documents_every_route(served: Served) -> None:
    async with served.session.get("http://benchd/api/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    routed = {(res.canonical, route.method.lower()) for res in served.app.router.resources()
              for route in res if route.method != "HEAD"}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    api = {r for r in routed if r[0].startswith("/api/")}
    assert api == documented and len(documented) == len(ENDPOINTS)
    # the rest are the dashboard's HTML pages and static files (benchd.web), not API
    assert {p for p, _ in routed - api} == {"/", "/jobs/{job_id}", "/history", "/results",
                                            "/results/{run}", "/compare", "/static/{name}"}
    schemas = doc["components"]["schemas"]
    assert schemas["JobConfig"]["additionalProperties"] is False
    assert set(schemas["JobRecord"]["required"]) >= {"job_id", "status", "config"}
    post = doc["paths"]["/api/benchmark/jobs"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/JobConfig"
    assert set(post["responses"]) >= {"201", "400", "409", "413"}


async def test_405_keeps_the_allow_header_and_health_is_cheap(served: Served) -> None:
    async with served.session.delete("http://benchd/api/health") as r:
        assert r.status == 405 and r.headers["Allow"] == "GET"
    async with served.session.get("http://benchd/api/health") as r:
        h = await r.json()
    assert h["pid"] == os.getpid() and h["root"] == str(served.root) and h["active_job"] is None
    assert h["version"] == "test" and h["uptime_s"] >= 0
