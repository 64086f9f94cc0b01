"""Bad input against a real benchd (subprocess, real Unix socket, fake orchestrator):
hypothesis-generated bodies, paths, query strings and raw request lines; half-sent requests
and clients that stall. Every answer must be < 500 and every error the one shape
{"error": {"code", "message"}}; the daemon keeps serving and its files stay valid."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchd.schema import JobRecord
from tests.hostile.rawhttp import RawResponse, build, call, exchange, parse
from tests.support.daemon import Daemon, wait_until

JSON = {"Content-Type": "application/json"}
SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))
JOBS = "/api/benchmark/jobs"
FIELDS = ("experiments", "n", "seed", "perf_rounds", "no_perf", "ci")


def assert_client_error(r: RawResponse, what: object) -> None:
    """A refusal: 4xx, JSON, exactly {"error": {"code": str, "message": str}} (plus the
    active job's id when it is a 409 busy)."""
    assert 400 <= r.status < 500, (what, r.status, r.body[:300])
    body = r.json()
    assert list(body) == ["error"], (what, body)
    err = body["error"]
    busy = err.get("code") == "busy"
    assert set(err) == ({"code", "message", "job_id"} if busy else {"code", "message"}), \
        (what, body)
    assert not busy or (isinstance(err["job_id"], str) and err["job_id"] in err["message"])
    assert isinstance(err["code"], str) and err["code"], (what, body)
    assert isinstance(err["message"], str) and err["message"], (what, body)
    assert "Traceback" not in err["message"], (what, body)


def assert_ok_or_client_error(r: RawResponse, what: object) -> None:
    if r.status < 400:
        assert r.status in (200, 201), (what, r.status, r.body[:300])
    else:
        assert_client_error(r, what)


def assert_state_valid(d: Daemon, job_ids: set[str]) -> None:
    """Daemon alive and serving; every record on disk decodes and belongs to a known job;
    nothing was moved aside as corrupt; no unexpected-error tracebacks in its log."""
    assert d.running(), d.stderr_text()[-2000:]
    assert d.get("/api/health").status == 200
    jobs_dir = d.root / "logs" / "jobs"
    decoder = msgspec.json.Decoder(JobRecord)
    records = {p.stem: decoder.decode(p.read_bytes()) for p in jobs_dir.glob("*.json")}
    assert set(records) == job_ids, records.keys()
    assert all(r.job_id == k for k, r in records.items())
    assert not (jobs_dir / "corrupt").exists()
    listed = d.get(JOBS).json()["jobs"]
    assert {j["job_id"] for j in listed} == job_ids
    text = d.stderr_text()
    assert "unexpected error" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture
def busy_daemon(daemon_factory) -> tuple[Daemon, str, str]:
    """A daemon with one completed job (logs to read) and one running job (held by a gate
    file that is never created during the test) and no room in the queue, so every valid
    start is refused: 409 busy with "queue": false, else 429 queue_full."""
    d = daemon_factory(extra_args=["--max-queued-per-user", "0"])
    d.set_spec(lines=50)
    done = d.start_job(experiments=["gmst_era"])["job_id"]
    d.wait_job(done)
    d.set_spec(wait_for_file=str(d.root / "gate-never"), lines=5)
    running = d.start_job()["job_id"]
    return d, done, running


# --- strategies ------------------------------------------------------------------------------

huge_ints = st.one_of(st.integers(), st.integers(min_value=2**63 - 5, max_value=2**200),
                      st.integers(max_value=-(2**63) + 5, min_value=-(2**200)))
json_scalars = st.one_of(st.none(), st.booleans(), huge_ints,
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=50))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)
config_dicts = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), json_values, max_size=7)


def _encode(v: object) -> bytes:
    return json.dumps(v).encode()


raw_json_texts = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"{", b"}", b"[]", b"null", b"NaN", b'{"n": NaN}', b'{"n": Infinity}',
                     b'{"n": 1e999}', b'{"n": -1e999}', b'{"n": 1' + b"0" * 400 + b"}",
                     b'{"n": 5, "n": "x"}', b'{"experiments": "gmst_era"}',
                     b'\xef\xbb\xbf{"n": 5}', b'{"n": 5}garbage', b'{"seed": -1}',
                     b'{"perf_rounds": 1.5}', b'{"ci": "yes"}', b"\x00\x00\x00",
                     b'{"experiments": [' + b'"gmst_era",' * 2000 + b'"x"]}']),
)
bodies = st.one_of(config_dicts.map(_encode), json_values.map(_encode), raw_json_texts)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                 "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "", "application/jsonx",
                                 "APPLICATION/JSON"])

_id_alphabet = st.characters(codec="utf-8", exclude_characters="\r\n ")
path_ids = st.one_of(
    st.text(alphabet=_id_alphabet, max_size=40),
    st.sampled_from(["..", "../..", "../../etc/passwd", "..%2f..%2fetc%2fpasswd",
                     "%2e%2e", "%2e%2e%2f%2e%2e", "%00", "abc%00def", "0123456789ab%00",
                     "0123456789ab/../../x", ".", "%2E", "jobs", "0" * 12 + ".json",
                     "0123456789AB", "ffffffffffff", "0123456789abc", "x" * 5000,
                     "a" * 8000, "%ff%fe", "\u202e", "~root", "*", "?", "#"]),
    st.text(alphabet="0123456789abcdef./%", min_size=10, max_size=14),
)
job_suffixes = st.sampled_from(["", "/logs", "/logs/ws", "/cancel", "/", "/logs/", "/x"])
query_values = st.one_of(st.text(max_size=30), huge_ints.map(str),
                         st.sampled_from(["", "-1", "0", "1", "1e3", "0x10", " 5", "5 ",
                                          "running,", ",", "running,,failed", "RUNNING",
                                          "true", "yes", "2", "nan", "%00", "999999999999999999999"]))
query_keys = st.one_of(st.sampled_from(["limit", "status", "offset", "tail", "follow"]),
                       st.text(max_size=10))


def _target(path: str) -> bytes:
    """Percent-encode what cannot appear raw in a request line; keep `/`, `%` and `.`
    literal so that traversal attempts arrive as such."""
    return quote(path, safe="/%.~*?#:@!$&'()+,;=").encode()


# --- tests -------------------------------------------------------------------------------------

def test_fuzzed_job_bodies_are_refused_with_the_error_shape(busy_daemon) -> None:
    d, done, running = busy_daemon

    @SETTINGS
    @given(body=bodies, ctype=content_types)
    def check(body: bytes, ctype: str) -> None:
        headers = {"Content-Type": ctype} if ctype else {}
        r = call(d.socket_path, "POST", JOBS, body, headers)
        assert_client_error(r, (body[:200], ctype))
        if r.status == 409:  # only a well-formed, valid config reaches the busy check
            assert running in r.json()["error"]["message"]
        if r.status == 429:  # ... or the queue's cap, with when to retry
            assert r.json()["error"]["code"] == "queue_full" and "retry-after" in r.headers

    check()

    @SETTINGS
    @given(body=st.one_of(config_dicts.map(_encode), raw_json_texts,
                          st.dictionaries(st.sampled_from(["grace", "Grace", "x"]), json_values,
                                          max_size=3).map(_encode)))
    def check_cancel(body: bytes) -> None:
        # the completed job: 409 once a body is valid, else 400 naming the field
        r = call(d.socket_path, "POST", f"{JOBS}/{done}/cancel", body, JSON)
        assert_client_error(r, body[:200])

    check_cancel()
    assert d.job(running)["status"] == "running"
    assert_state_valid(d, {done, running})


def test_named_fields_in_refusals(busy_daemon) -> None:
    """The message names the bad field, for the cases a person actually gets wrong."""
    d, done, running = busy_daemon
    cases = [({"n": "10"}, "n"), ({"n": 0}, "n"), ({"n": 2**70}, "n"), ({"seed": -1}, "seed"),
             ({"perf_rounds": 10**9}, "perf_rounds"), ({"experiments": "gmst_era"}, "experiments"),
             ({"experiments": ["../../etc"]}, "experiments"), ({"frobnicate": 1}, "frobnicate"),
             ({"ci": "yes"}, "ci"), ({"n": 1.5}, "n"), ({"n": None, "no_perf": 1}, "no_perf")]
    for body, name in cases:
        r = call(d.socket_path, "POST", JOBS, _encode(body), JSON)
        assert_client_error(r, body)
        assert r.status == 400 and r.json()["error"]["message"].startswith(name), (body, r.body)
    for raw, name in [(b'{"n": 1e400}', "n"), (b'{"resume": 5}', "resume"),
                      (b'{"resume": "2026-01-01_00-00-00", "n": 3}', "resume")]:
        r = call(d.socket_path, "POST", JOBS, raw, JSON)
        assert r.status == 400 and r.json()["error"]["message"].startswith(name), (raw, r.body)
    r = call(d.socket_path, "POST", f"{JOBS}/{running}/cancel", b'{"grace": -1}', JSON)
    assert r.status == 400 and "grace" in r.json()["error"]["message"]
    r = call(d.socket_path, "POST", f"{JOBS}/{running}/cancel", b'{"grace": 1e309}', JSON)
    assert r.status == 400 and "grace" in r.json()["error"]["message"], r.body
    assert d.job(running)["status"] == "running"
    assert_state_valid(d, {done, running})


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1 << 20, 32 << 20])
def test_oversized_bodies_are_413_and_nothing_is_started(busy_daemon, size: int) -> None:
    d, done, running = busy_daemon
    body = b'{"n": 5, "x": "' + b"a" * size + b'"}'
    for target in (JOBS, f"{JOBS}/{running}/cancel"):
        r = call(d.socket_path, "POST", target, body, JSON, timeout=30)
        assert r.status == 413, (target, r.status, r.body[:200])
        assert_client_error(r, target)
    # a lying Content-Length (announces a huge body, sends a little, closes its side)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(d.socket_path))
    s.sendall(b"POST " + JOBS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: 999999999999\r\n\r\n{\"n\": 5")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    if data:  # 413 straight from the header, or nothing at all: never a 5xx
        status = int(data.split(b" ", 2)[1])
        assert 400 <= status < 500, data[:300]
    assert d.job(running)["status"] == "running"
    assert_state_valid(d, {done, running})


def test_fuzzed_paths_and_job_ids_never_reach_the_filesystem(busy_daemon) -> None:
    d, done, running = busy_daemon
    # a file an escaping id could reach; it must never be served or touched
    secret = d.root / "logs" / "secret.log"
    secret.write_text("SECRET\n")
    (d.root / "logs" / "jobs" / "secret.json").write_text("{}")
    before = sorted(p.name for p in (d.root / "logs").rglob("*"))

    @SETTINGS
    @given(job_id=path_ids, suffix=job_suffixes,
           method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS"]))
    def check(job_id: str, suffix: str, method: str) -> None:
        target = _target(f"{JOBS}/{job_id}{suffix}")
        r = call(d.socket_path, method, target, b"" if method in ("POST", "PUT") else None)
        if method == "HEAD":
            assert 400 <= r.status < 500, (target[:200], r.status)
            return
        assert b"SECRET" not in r.body, target[:200]
        assert_client_error(r, (method, target[:200]))

    check()

    @SETTINGS
    @given(run=path_ids)
    def check_results(run: str) -> None:
        r = call(d.socket_path, "GET", _target(f"/api/results/{run}"))
        assert_client_error(r, run[:200])

    check_results()
    after = sorted(p.name for p in (d.root / "logs").rglob("*"))
    assert after == before
    assert secret.read_text() == "SECRET\n"
    (d.root / "logs" / "jobs" / "secret.json").unlink()
    assert_state_valid(d, {done, running})


def test_raw_request_lines_with_dotdot_and_odd_targets(busy_daemon) -> None:
    """Request lines no client library would send, but well-formed HTTP: routed (or not) by
    benchd, refused in the one error shape, never served from outside the job files."""
    d, done, running = busy_daemon
    targets = [b"/api/benchmark/jobs/../../../etc/passwd", b"/api/benchmark/jobs/%2e%2e/%2e%2e",
               b"/api/benchmark/jobs/" + done.encode() + b"%00/logs",
               b"/api/benchmark/jobs/" + done.encode() + b"/../" + done.encode() + b"/logs/..",
               b"/api/benchmark/jobs/%2E%2E%2F%2E%2E%2Flogs%2F" + done.encode() + b".log",
               b"/../../..", b"//api//benchmark//jobs", b"/api/benchmark/jobs/" + b"a" * 7000,
               b"http://evil/api/health/../x", b"/api/results/..%2F..%2F..%2Fetc",
               b"/api/results/%2e%2e", b"/api/benchmark/jobs/" + done.encode() + b"/logs/..%2f..",
               b"/api/benchmark/jobs/" + done.encode() + b"%2flogs"]
    for target in targets:
        r = call(d.socket_path, "GET", target)
        assert_client_error(r, target[:100])
        assert r.status in (400, 404), (target[:100], r.status)
    assert_state_valid(d, {done, running})


def test_malformed_http_is_refused_by_the_parser(busy_daemon) -> None:
    """Not HTTP at all (TLS, NUL in the target, overlong lines, bad Content-Length, bad
    chunking): aiohttp's parser refuses these before any handler or middleware runs; benchd's
    runner (benchd/httpserver.py) still answers in the one error shape and closes the
    connection, and the daemon is unharmed."""
    d, done, running = busy_daemon
    garbage = [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
               b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
               b"GET /api/benchmark/jobs/" + done.encode() + b"\x00/logs HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /api/benchmark/jobs/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /api/benchmark/jobs?limit=\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /api/benchmark/jobs/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /api/health HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
               b"POST /api/benchmark/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
               b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"b" * 100_000 + b"\r\n\r\n",
               b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + b"".join(
                   f"X-{i}: y\r\n".encode() for i in range(20_000)) + b"\r\n"]
    for data in garbage:   # exchange() reads to EOF: returning means benchd closed the socket
        r = exchange(d.socket_path, data)
        assert_client_error(r, data[:60])
        assert "malformed HTTP request" in r.json()["error"]["message"], (data[:60], r.body)
    # and garbage does not flood benchd's log with tracebacks (one DEBUG line at most)
    assert "Error handling request" not in d.stderr_text()
    assert_state_valid(d, {done, running})


def test_fuzzed_query_strings(busy_daemon) -> None:
    d, done, running = busy_daemon
    size = d.log_file(done).stat().st_size

    @SETTINGS
    @given(params=st.lists(st.tuples(query_keys, query_values), max_size=4),
           where=st.sampled_from(["list", "logs", "ws"]))
    def check(params: list[tuple[str, str]], where: str) -> None:
        qs = "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)
        if where == "list":
            target = f"{JOBS}?{qs}"
        else:  # the completed job: a follow ends at once, nothing can hang
            target = f"{JOBS}/{done}/logs{'/ws' if where == 'ws' else ''}?{qs}"
        r = call(d.socket_path, "GET", target, timeout=20)
        assert_ok_or_client_error(r, target)
        if where == "logs" and r.status == 200:
            offset = int(r.headers["x-log-offset"])
            assert 0 <= offset <= size and len(r.body) == size - offset
        if where == "ws":  # no Upgrade header: never a 101, never a 5xx
            assert r.status != 101

    check()
    for bad in ("offset=-1", f"offset={size + 1}", "offset=99999999999999999999999",
                "tail=-5", "tail=1&offset=0", "follow=maybe", "limit=0", "status=",
                "status=RUNNING", "limit=1&limit=2x", "offset=0&offset=5"):
        target = f"{JOBS}/{done}/logs?{bad}" if not bad.startswith(("limit", "status")) \
            else f"{JOBS}?{bad}"
        r = call(d.socket_path, "GET", target)
        assert r.status == 400, (bad, r.status, r.body)
        assert_client_error(r, bad)
    assert_state_valid(d, {done, running})


def _half_open(path: Path, data: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    if data:
        s.sendall(data)
    return s


def test_stalled_and_half_closed_clients_do_not_block_others(busy_daemon) -> None:
    d, done, running = busy_daemon
    partial = [
        b"",                                                      # connects, says nothing
        b"GET /api/heal",                                         # half a request line
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n",               # headers never end
        b"POST /api/benchmark/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"n\": ",                  # body never ends
        b"POST /api/benchmark/jobs/" + running.encode() + b"/cancel HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"gr",
    ]
    stalled = [_half_open(d.socket_path, data) for data in partial for _ in range(8)]
    half_closed = []
    for data in partial[1:]:
        s = _half_open(d.socket_path, data)
        s.shutdown(socket.SHUT_WR)
        half_closed.append(s)
    # a follower of a running job that never reads: its socket buffers fill up
    readers = []
    for _ in range(5):
        s = _half_open(d.socket_path, build("GET", f"{JOBS}/{running}/logs?follow=1"))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        readers.append(s)
    try:
        worst = 0.0
        for i in range(30):
            t0 = time.monotonic()
            r = call(d.socket_path, "GET", "/api/health" if i % 2 else f"{JOBS}/{done}",
                     timeout=5)
            worst = max(worst, time.monotonic() - t0)
            assert r.status == 200
        assert worst < 2.0, worst
        # the half-closed ones get an answer (or a clean close), never a 5xx
        for s in half_closed:
            s.settimeout(10)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            if data:
                status = int(data.split(b" ", 2)[1])
                assert 400 <= status < 500, data[:200]
        # the cancel that never finished its body did not cancel anything
        assert d.job(running)["status"] == "running"
    finally:
        for s in stalled + half_closed + readers:
            s.close()
    wait_until(lambda: d.get("/api/health").status == 200, 5)
    assert_state_valid(d, {done, running})


async def test_websocket_clients_sending_garbage(busy_daemon) -> None:
    """WebSocket followers are read-only: text and binary garbage, an oversized frame and an
    abrupt close from one client change nothing for the job, the daemon, or another follower,
    which still gets every line and then `done`."""
    import aiohttp
    d, done, running = busy_daemon
    gate = d.root / "gate-ws"
    d.set_spec(wait_for_file=str(gate), lines=20, exit_code=0)
    # the running job is held by "gate-never": cancel it, then run one held by our gate
    assert call(d.socket_path, "POST", f"{JOBS}/{running}/cancel", b"").status == 200
    job = d.start_job()["job_id"]
    url = f"http://benchd/api/benchmark/jobs/{job}/logs/ws?offset=0"
    conn = aiohttp.UnixConnector(path=str(d.socket_path))
    async with aiohttp.ClientSession(connector=conn) as s:
        good = await s.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=30))
        for kind in ("text", "binary", "huge", "abrupt"):
            ws = await s.ws_connect(url)
            if kind == "text":
                for i in range(300):
                    await ws.send_str(json.dumps({"type": "cancel", "i": i}) if i % 2 else "\x00{")
            elif kind == "binary":
                for _ in range(50):
                    await ws.send_bytes(os.urandom(1000))
            elif kind == "huge":  # over the server's 4 MiB message limit: it hangs up
                try:
                    await ws.send_bytes(b"x" * (8 << 20))
                except (ConnectionError, aiohttp.ClientError):
                    pass
                while (m := await ws.receive(timeout=30)).type == aiohttp.WSMsgType.TEXT:
                    pass  # log lines sent before it noticed
                assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR), m
            if kind == "abrupt":
                ws._response.connection.transport.abort()  # no close frame at all
            else:
                await ws.close()
        assert d.job(job)["status"] == "running"
        gate.touch()
        msgs = [json.loads(m.data) async for m in good]
    assert msgs[-1] == {"type": "done", "status": "completed", "exit_code": 0}, msgs[-3:]
    lines = [m["line"] for m in msgs if m["type"] == "log"]
    assert lines == d.log_file(job).read_text().splitlines()
    assert_state_valid(d, {done, running, job})


def _read_response(s: socket.socket, timeout: float) -> RawResponse:
    """Read one complete response (head + Content-Length body) without waiting for EOF."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a complete response: {data[:200]!r}"
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            r = parse(data)
            if len(body) >= int(r.headers.get("content-length", "0")):
                return r


def _closed_after(s: socket.socket, t0: float, timeout: float = 10.0) -> float:
    """Seconds from t0 until benchd closed `s` (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_client_timeout_closes_stalled_connections_but_not_followers(daemon_factory) -> None:
    """With --client-timeout 1: a connection that never completes a request head (silent, half
    a request line, headers that never end, or a client dribbling a byte every 0.2 s) is
    closed after about a second; a body that stops arriving gets 408 in the error shape and
    starts nothing; a follower of a running job streams for longer than the timeout and gets
    every line."""
    d = daemon_factory(extra_args=["--client-timeout", "1"],
                       spec={"lines": 30, "lines_per_s": 10, "progress": False})
    job = d.start_job()["job_id"]
    t0 = time.monotonic()
    stalled = [_half_open(d.socket_path, data) for data in (
        b"", b"GET /api/heal", b"GET /api/health HTTP/1.1\r\nHost: x\r\n")]
    body = _half_open(d.socket_path, b"POST /api/benchmark/jobs HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"n\": ")
    dribbler = _half_open(d.socket_path, b"")
    try:
        follow_start = time.monotonic()
        r = call(d.socket_path, "GET", f"{JOBS}/{job}/logs?follow=1", timeout=30)
        followed_for = time.monotonic() - follow_start
        assert r.status == 200, r.body[:200]
        lines = [line for line in r.body.decode().splitlines() if line.startswith("line ")]
        assert lines == [f"line {i} of 30" for i in range(30)]
        assert r.body == d.log_file(job).read_bytes()
        assert followed_for > 2.0, followed_for      # outlived the timeout twice over

        for s in stalled:
            assert 0.8 < _closed_after(s, t0) < 10.0
        r = _read_response(body, 10)
        assert r.status == 408, (r.status, r.body)
        assert_client_error(r, "stalled body")
        assert r.json()["error"]["code"] == "request_timeout"

        # the dribbler keeps sending, a byte at a time: the deadline is on the whole head
        cut = None
        for b in b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
            try:
                dribbler.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
                break
            time.sleep(0.2)   # pacing the hostile client, not synchronising with benchd
        assert cut is not None and cut < 10.0, cut
    finally:
        for s in [*stalled, body, dribbler]:
            s.close()
    jobs = d.get(JOBS).json()["jobs"]
    assert [j["job_id"] for j in jobs] == [job]           # the stalled POST started nothing
    assert d.wait_job(job)["status"] == "completed"
