"""benchctl.client against real Unix sockets: a scripted raw responder for protocol edge cases
(cut streams, odd bodies) that a real benchd cannot be made to produce on cue."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from benchctl.client import ApiError, Client, StreamCut, Unreachable, job_path, query
from benchctl.exitcodes import BUSY, INTERNAL, UNAVAILABLE, UNKNOWN_JOB, USAGE, CliError
from tests.benchctl.benchctl_rawserver import RawServer, respond


@pytest.fixture
def sock_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a short path: AF_UNIX paths are limited to 107 bytes
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="bctl-", dir="/tmp"))
    yield d / "s.sock"
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def test_json_call_sends_body_and_decodes(sock_path: Path) -> None:
    with RawServer(sock_path, [respond(201, b'{"job_id": "abc"}')]) as srv:
        out = Client(str(sock_path)).call("POST", "/api/benchmark/jobs", {"n": 5})
    assert out == {"job_id": "abc"}
    head = srv.requests[0]
    assert head.startswith(b"POST /api/benchmark/jobs HTTP/1.1\r\n")
    assert b"Connection: close" in head and b"Content-Length: 8" in head


def test_chunked_stream_complete(sock_path: Path) -> None:
    with RawServer(sock_path, [respond(200, b"", {"X-Log-Offset": "7"},
                                       chunks=[b"one\n", b"two\nthr", b"ee\n"])]):
        resp = Client(str(sock_path)).open("GET", "/x")
        assert resp.headers["x-log-offset"] == "7"
        assert b"".join(resp.iter_body()) == b"one\ntwo\nthree\n"
        assert resp.complete


def test_chunked_stream_cut_is_detected(sock_path: Path) -> None:
    with RawServer(sock_path, [respond(200, b"", chunks=[b"one\n", b"tw"], end=False)]):
        resp = Client(str(sock_path)).open("GET", "/x")
        got = []
        with pytest.raises(StreamCut):
            for piece in resp.iter_body():
                got.append(piece)
        assert b"".join(got) == b"one\ntw"
        assert not resp.complete


@pytest.mark.parametrize("status,code,exit_code", [
    (404, "job_not_found", UNKNOWN_JOB), (409, "busy", BUSY), (400, "invalid_request", USAGE),
    (413, "payload_too_large", USAGE), (500, "internal", INTERNAL), (404, None, UNKNOWN_JOB)])
def test_error_body_maps_to_exit_code(sock_path: Path, status: int, code: str | None,
                                      exit_code: int) -> None:
    body = json.dumps({"error": {"code": code, "message": f"msg {code}"}}).encode()
    with RawServer(sock_path, [respond(status, body)]):
        with pytest.raises(ApiError) as exc:
            Client(str(sock_path)).call("GET", "/x")
    assert exc.value.exit_code == exit_code
    assert exc.value.message == f"msg {code}"


def test_non_json_error_says_status(sock_path: Path) -> None:
    with RawServer(sock_path, [respond(502, b"bad gateway")]):
        with pytest.raises(ApiError) as exc:
            Client(str(sock_path)).call("GET", "/x")
    assert "502" in exc.value.message and exc.value.exit_code == INTERNAL


def test_malformed_status_line(sock_path: Path) -> None:
    def handler(head: bytes, conn: socket.socket) -> None:
        conn.sendall(b"garbage\r\n\r\n")
    with RawServer(sock_path, [handler]):
        with pytest.raises(CliError) as exc:
            Client(str(sock_path)).call("GET", "/x")
    assert exc.value.exit_code == INTERNAL and "malformed" in exc.value.message


def test_missing_socket_is_unreachable_with_hint(sock_path: Path) -> None:
    with pytest.raises(Unreachable) as exc:
        Client(str(sock_path)).call("GET", "/api/health")
    msg = exc.value.message
    assert exc.value.exit_code == UNAVAILABLE
    assert str(sock_path) in msg and "no such socket" in msg
    assert "benchd --root DIR" in msg and "systemctl start benchd.socket" in msg


def test_stale_socket_is_unreachable(sock_path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock_path))
    s.close()  # the file stays, nobody listens: what a crashed daemon leaves
    with pytest.raises(Unreachable) as exc:
        Client(str(sock_path)).call("GET", "/api/health")
    assert "connection refused" in exc.value.message


def test_paths_are_quoted() -> None:
    assert job_path("../etc", "/logs") == "/api/benchmark/jobs/..%2Fetc/logs"
    assert query(limit=5, status=None) == "?limit=5"
    assert query() == ""
