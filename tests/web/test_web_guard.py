"""The dashboard's guard and `benchctl web`'s token, without a browser: a real benchd (fake
orchestrator) on a real socket, requests made as a browser would make them (the headers a
page cannot forge: Host, Origin, User-Agent), and a real `benchctl web` process."""
from __future__ import annotations

import http.client
import re
import sys
from collections.abc import Iterator

import pytest

from tests.support.daemon import Daemon, daemon_factory  # noqa: F401 (fixture)
from tests.web.conftest import WebForward, start_web

JOBS = "/api/benchmark/jobs"
UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/150.0"
HOST = "localhost:8080"
JSON = "application/json"


@pytest.fixture
def d(daemon_factory) -> Daemon:
    return daemon_factory()


def browser(d: Daemon, method: str, path: str, body: bytes | None = None,
            **headers: str):
    hdrs = {"Host": HOST, "User-Agent": UA, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return d.request(method, path, body, hdrs)


def token_of(d: Daemon, host: str = HOST) -> str:
    page = browser(d, "GET", "/", Host=host)
    assert page.status == 200, page.body
    m = re.search(rb'<meta name="csrf-token" content="([0-9a-f]+)">', page.body)
    assert m
    return m.group(1).decode()


def test_browser_state_change_needs_same_origin_json_and_the_csrf_token(d: Daemon) -> None:
    body = b'{"experiments": ["gmst_era"]}'
    token = token_of(d)
    cases = [
        ({"Origin": "http://evil.example", "Content_Type": JSON, "X_CSRF_Token": token},
         "cross-origin request refused"),
        ({"Content_Type": JSON, "X_CSRF_Token": token}, "Origin header missing"),
        ({"Origin": f"http://{HOST}", "Content_Type": JSON}, "X-CSRF-Token missing or wrong"),
        ({"Origin": f"http://{HOST}", "Content_Type": JSON, "X_CSRF_Token": "0" * 64},
         "X-CSRF-Token missing or wrong"),
        ({"Origin": f"http://{HOST}", "Content_Type": "text/plain", "X_CSRF_Token": token},
         "must be JSON"),
    ]
    for headers, why in cases:
        r = browser(d, "POST", JOBS, body, **headers)
        assert r.status == 403 and why in r.error["message"], (headers, r.status, r.body)
    assert d.get(JOBS).json()["total"] == 0
    ok = browser(d, "POST", JOBS, body, Origin=f"http://{HOST}", Content_Type=JSON,
                 X_CSRF_Token=token)
    assert ok.status == 201, ok.body
    # benchctl, curl and scripts send no browser headers: the API is unchanged for them
    assert d.start_job(experiments=["gmst_era"])["status"] in ("queued", "running", "starting")


def test_pages_get_a_strict_csp_and_a_stable_csrf_token(d: Daemon) -> None:
    page = browser(d, "GET", "/", Host="127.0.0.1:4567")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe" not in csp.split("script-src")[1].split(";")[0]
    assert b"<script>" not in page.body and b"<script type=\"module\" src=" in page.body
    # HMAC(daemon secret, uid): the same for one user (bob's differs: test_web_browser.py)
    assert token_of(d) == token_of(d, "127.0.0.1")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example",
                                  "127.0.0.2:80"])
def test_pages_and_browser_api_calls_refuse_a_foreign_host(d: Daemon, host: str) -> None:
    for path in ("/", "/history", "/static/common.js", JOBS):
        r = browser(d, "GET", path, Host=host)
        assert r.status == 403 and f"Host {host!r} refused" in r.error["message"], (path, r.body)


def test_websocket_from_another_origin_is_refused(d: Daemon) -> None:
    job = d.start_job(experiments=["gmst_era"])
    headers = dict(Upgrade="websocket", Connection="Upgrade", Sec_WebSocket_Version="13",
                   Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==")
    path = f"{JOBS}/{job['job_id']}/logs/ws"
    r = browser(d, "GET", path, Origin="http://evil.example", **headers)
    assert r.status == 403 and "cross-origin" in r.error["message"]
    r = browser(d, "GET", path, Origin=f"http://{HOST}", **headers)
    assert r.status == 101


def test_static_files_are_cached_by_content_hash(d: Daemon) -> None:
    page = browser(d, "GET", "/history").body.decode()
    url = re.search(r'href="(/static/style\.css\?v=[0-9a-f]+)"', page).group(1)
    r = browser(d, "GET", url)
    assert r.status == 200 and "immutable" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith("text/css")
    plain = browser(d, "GET", "/static/common.js")
    assert plain.headers["cache-control"] == "no-cache" and "etag" in plain.headers \
        or "last-modified" in plain.headers
    assert browser(d, "GET", "/static/../app.py").status == 404


def test_page_errors_are_readable_pages(d: Daemon) -> None:
    r = browser(d, "GET", "/jobs/000000000000")
    assert r.status == 404 and b"no job &#39;000000000000&#39;" in r.body and b"<html" in r.body
    r = browser(d, "GET", "/results/2020-01-01_00-00-00")
    assert r.status == 404 and b"<html" in r.body
    r = browser(d, "GET", "/history?before=nope")
    assert r.status == 400 and b"before: not a job id" in r.body


@pytest.fixture
def forward(d: Daemon) -> Iterator[WebForward]:
    fwd = start_web([sys.executable, "-m", "benchctl", "--socket", str(d.socket_path), "web"],
                    d.process_env())
    try:
        yield fwd
    finally:
        fwd.stop()


def _tcp(fwd: WebForward, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", fwd.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_benchctl_web_needs_its_token_then_a_cookie(d: Daemon, forward: WebForward) -> None:
    assert forward.url.startswith("http://127.0.0.1:")
    status, _, body = _tcp(forward, "/")
    assert status == 403 and b"token missing or wrong" in body
    assert _tcp(forward, "/?token=wrong")[0] == 403
    status, headers, _ = _tcp(forward, f"/history?token={forward.token}&status=failed")
    assert status == 303 and headers["Location"] == "/history?status=failed"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    status, _, body = _tcp(forward, "/history", {"Cookie": f"x=1; {cookie}"})
    assert status == 200 and b"signed in as <b>root</b>" in body
    status, _, _ = _tcp(forward, "/", {"Cookie": cookie.replace(forward.token, "x" * 32)})
    assert status == 403


def test_benchctl_web_refuses_a_bad_port(d: Daemon) -> None:
    import subprocess
    r = subprocess.run([sys.executable, "-m", "benchctl", "--socket", str(d.socket_path), "web",
                        "--port", "70000"], capture_output=True, text=True, timeout=60,
                       env=d.process_env())
    assert r.returncode == 2 and "--port: must be between 0 and 65535, got 70000" in r.stderr
