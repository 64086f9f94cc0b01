"""benchctl.follow: resume at the byte offset after a cut stream, trust a clean end only when
the job is final, give up after the reconnect window; the terminal rendering of progress.
The cut-at-a-chosen-byte cases use a scripted responder on a real socket (see
benchctl_rawserver); the same behaviour against a real benchd killed with -9 is in
tests/e2e/test_benchctl_e2e.py."""
from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from benchctl import follow, render
from benchctl.client import Client, Unreachable
from tests.benchctl.benchctl_rawserver import RawServer, respond


@pytest.fixture
def sock_path() -> Path:
    d = Path(tempfile.mkdtemp(prefix="bctl-", dir="/tmp"))
    yield d / "s.sock"
    shutil.rmtree(d, ignore_errors=True)


class Collect:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False
        self.notices: list[str] = []

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def job(status: str) -> bytes:
    return json.dumps({"job_id": "0123456789ab", "status": status}).encode()


def test_resumes_at_byte_offset_after_cut(sock_path: Path) -> None:
    script = [respond(200, b"", {"X-Log-Offset": "100"}, chunks=[b"a\n", b"b"], end=False),
              respond(200, b"", {"X-Log-Offset": "103"}, chunks=[b"c\n"]),
              respond(200, job("completed"))]
    sink = Collect()
    with RawServer(sock_path, script) as srv:
        final = follow.follow(Client(str(sock_path)), "0123456789ab", sink, tail=5)
    assert final["status"] == "completed"
    assert sink.data == b"a\nbc\n" and sink.closed
    first, second, third = (r.split(b"\r\n", 1)[0] for r in srv.requests)
    assert first == b"GET /api/benchmark/jobs/0123456789ab/logs?follow=1&tail=5 HTTP/1.1"
    assert second == b"GET /api/benchmark/jobs/0123456789ab/logs?follow=1&offset=103 HTTP/1.1"
    assert third == b"GET /api/benchmark/jobs/0123456789ab HTTP/1.1"


def test_clean_end_while_running_reconnects(sock_path: Path) -> None:
    script = [respond(200, b"", {"X-Log-Offset": "0"}, chunks=[b"x\n"]),
              respond(200, job("running")),
              respond(200, b"", {"X-Log-Offset": "2"}, chunks=[b"y\n"]),
              respond(200, job("failed"))]
    sink = Collect()
    with RawServer(sock_path, script) as srv:
        final = follow.follow(Client(str(sock_path)), "0123456789ab", sink, offset=0)
    assert final["status"] == "failed" and sink.data == b"x\ny\n"
    assert b"offset=2" in srv.requests[2]


def test_gives_up_after_reconnect_window(sock_path: Path) -> None:
    sink = Collect()
    with pytest.raises(Unreachable):
        follow.follow(Client(str(sock_path)), "0123456789ab", sink, offset=7,
                      reconnect_s=0.3)
    assert sink.notices == ["lost benchd; reconnecting (for up to 0.3 s) to continue at byte 7"]


def test_error_answer_is_raised(sock_path: Path) -> None:
    body = b'{"error": {"code": "invalid_request", "message": "offset: past the end"}}'
    from benchctl.client import ApiError
    with RawServer(sock_path, [respond(400, body)]):
        with pytest.raises(ApiError) as exc:
            follow.follow(Client(str(sock_path)), "0123456789ab", Collect(), offset=99)
    assert exc.value.exit_code == 2 and "offset" in exc.value.message


class FakeTty(io.StringIO):
    """A text stream that says it is a terminal (what a pty gives; the real pty is in e2e)."""

    def isatty(self) -> bool:
        return True


def test_terminal_sink_draws_progress_instead_of_lines() -> None:
    term = FakeTty()
    out = io.BytesIO()
    sink = follow.TerminalSink(out, render.StatusLine(term))
    prog = ('@@benchd-progress {"run_id":"r","k":3,"total":9,"experiment":"gmst_era",'
            '"adapter":null,"phase":"start"}\n').encode()
    sink.write(b"hello\nwor")
    sink.write(b"ld\n" + prog + b"tail")
    sink.close()
    assert out.getvalue() == b"hello\nworld\ntail\n"
    assert "3/9 experiments · gmst_era" in term.getvalue()
    assert term.getvalue().endswith("\r\x1b[K")  # progress line cleared at the end


def test_raw_sink_is_byte_exact() -> None:
    out = io.BytesIO()
    sink = follow.RawSink(out)
    data = b"@@benchd-progress {}\n\xff\xfe partial"
    sink.write(data)
    sink.close()
    assert out.getvalue() == data
