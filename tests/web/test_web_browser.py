"""The dashboard in a real browser: headless Debian chromium (Selenium) against a real benchd
running the real pipeline (small n), reached through real `benchctl web` forwarders of two
real users (tests/web/conftest.py). Screenshots of each main page are saved as artefacts
(tests/web/browser.py: $BENCHD_TEST_ARTIFACTS/web or logs/test-artifacts/web).

Economy: one benchd and one chromium per module (bob's only for his test); one real job
(gmst_era, n = 200) runs to the end, the other real jobs are cancelled within seconds."""
from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator

import pytest

from pipeline.progress import PREFIX
from tests.web.browser import PHONE, REBIND_HOST, chrome, shot
from tests.web.conftest import WebLab

JOBS = "/api/benchmark/jobs"
GREEN, ORANGE = "rgb(31, 138, 59)", "rgb(230, 126, 0)"
LONG = 300          # a real pipeline job on a loaded 2-core machine


@pytest.fixture(scope="module")
def browser(web_lab: WebLab) -> Iterator:
    drv = chrome()
    try:
        drv.get(web_lab.mine.url)           # the token becomes a cookie (303 to /)
        yield drv
    finally:
        drv.quit()


def base(fwd) -> str:
    return f"http://127.0.0.1:{fwd.port}"


def until(drv, what, timeout: float = 60, message: str = ""):
    """Bounded poll of `what(drv)` (Selenium's WebDriverWait)."""
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(what, message)


def js(drv, script: str, *args):
    return drv.execute_script(script, *args)


def text(drv, css: str) -> str:
    return js(drv, "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
              css)


def badge(drv) -> str:
    return js(drv, "return document.getElementById('job-badge').dataset.state")


def shown_log(lab: WebLab, job_id: str) -> str:
    """The log file as the pane must show it: every line but the progress lines."""
    data = lab.daemon.log_file(job_id).read_text()
    return "".join(line for line in data.splitlines(keepends=True) if not line.startswith(PREFIX))


def test_run_from_form_live_log_survives_refresh_then_green_badge_and_svg_plots(
        web_lab: WebLab, browser) -> None:
    drv = browser
    drv.get(base(web_lab.mine) + "/")
    until(drv, lambda d: js(d, "return document.querySelectorAll('#experiments input').length"),
          message="experiments never listed")
    shot(drv, "run-idle-desktop")
    shot(drv, "run-idle-phone", PHONE)
    drv.find_element("css selector", '#experiments input[value="gmst_era"]').click()
    n = drv.find_element("id", "f-n")
    n.send_keys("0")                         # the API's refusal shows next to its field
    drv.find_element("id", "run-button").click()
    until(drv, lambda d: text(d, '.field-error[data-for="n"]'), 30, "no message next to n")
    assert text(drv, '.field-error[data-for="n"]').startswith("n: ")
    assert not js(drv, "return document.getElementById('run-button').disabled")
    shot(drv, "run-field-error")
    n.clear()
    n.send_keys("200")
    drv.find_element("id", "f-perf_rounds").send_keys("1")
    drv.find_element("id", "f-label").send_keys("web-form")
    # the submit handler disables the button and shows the spinner before its request
    disabled, spinner = js(drv, """const b = document.getElementById('run-button'); b.click();
        return [b.disabled, getComputedStyle(b.querySelector('.spinner')).display]""")
    assert disabled and spinner == "inline-block"
    until(drv, lambda d: "?job=" in d.current_url, message="no job page after Run")
    job_id = drv.current_url.split("?job=")[1]
    until(drv, lambda d: text(d, "#log").count("\n") >= 1, LONG, "no log line arrived")
    assert js(drv, "return document.getElementById('run-button').disabled")
    status = web_lab.daemon.job(job_id)["status"]
    assert status in ("starting", "running"), f"the job ended before the refresh ({status})"
    shot(drv, "job-running-desktop")
    before = text(drv, "#job-progress-text")
    drv.refresh()                        # mid-job: the pane resumes at the byte reached
    until(drv, lambda d: badge(d) in ("running", "completed"), 30)
    assert text(drv, "#job-progress-text")     # the bar as it was, not blank until the next line
    assert before
    seen: list[tuple[str, float]] = []

    def progressed(d) -> bool:
        p = js(d, """return [document.getElementById('job-progress-text').textContent,
                     parseFloat(document.getElementById('job-bar').style.width || '0')]""")
        if not seen or seen[-1] != tuple(p):
            seen.append(tuple(p))
        return badge(d) in ("completed", "failed", "cancelled", "unknown")
    until(drv, progressed, LONG, "the job did not end")
    assert badge(drv) == "completed", text(drv, "#job-message")
    texts = [t for t, _ in seen if t]
    # one experiment: the bar moves from adapter to adapter, then fills when it is done
    assert len(set(texts)) >= 3 and all(t.startswith("1/1 experiments · ") for t in texts), seen
    widths = [w for _, w in seen]
    assert widths == sorted(widths) and widths[-1] == 100.0, seen
    until(drv, lambda d: text(d, "#log-state") == "", 30, "the log never finished")
    assert text(drv, "#log") == shown_log(web_lab, job_id)      # none lost, none repeated
    assert js(drv, "return getComputedStyle(document.getElementById('job-badge'))"
                   ".backgroundColor") == GREEN
    assert not js(drv, "return document.getElementById('run-button').disabled")
    shot(drv, "job-completed-desktop")
    shot(drv, "job-completed-phone", PHONE)
    drv.find_element("id", "job-results").click()
    until(drv, lambda d: "/results/" in d.current_url)
    svgs = js(drv, "return document.querySelectorAll('.report figure svg').length")
    assert svgs >= 3, svgs                   # three figures per experiment
    shot(drv, "run-detail-desktop")
    shot(drv, "run-detail-phone", PHONE)
    drv.get(base(web_lab.mine) + "/history")
    row = until(drv, lambda d: d.find_element("xpath", f"//tr[.//code[text()='{job_id}']]"))
    assert "View Logs" in row.text and "web-form" in row.text
    shot(drv, "history-desktop")
    shot(drv, "history-phone", PHONE)
    drv.get(base(web_lab.mine) + "/results")
    run_id = drv.find_element("css selector", "table.runs tbody tr").get_attribute("data-run")
    drv.find_element("css selector", f'button.pin[data-run="{run_id}"]').click()
    until(drv, lambda d: d.find_elements("css selector", f'button.unpin[data-run="{run_id}"]'),
          30, "pin did not take")
    assert "pinned" in text(drv, f'tr[data-run="{run_id}"]')
    shot(drv, "results-desktop")
    drv.find_element("css selector", f'button.unpin[data-run="{run_id}"]').click()
    until(drv, lambda d: d.find_elements("css selector", f'button.pin[data-run="{run_id}"]'), 30)
    drv.get(f"{base(web_lab.mine)}/compare?base={run_id}&head={run_id}")
    until(drv, lambda d: text(d, "#verdict"), 120, "no compare verdict")
    assert text(drv, "#verdict") == "ok" and len(drv.find_elements("css selector", "tbody tr")) >= 2
    shot(drv, "compare-desktop")
    # every page kept to its Content-Security-Policy: nothing refused, no script error (the
    # network's entries are the API's answers, e.g. the 400 for n = 0 above)
    problems = [e["message"] for e in drv.get_log("browser")
                if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert not problems, problems


def test_other_user_cannot_cancel_and_is_told_why_then_owner_cancels_orange(
        web_lab: WebLab, browser) -> None:
    d = web_lab.daemon
    job = d.start_job(n=200, perf_rounds=1, label="cancel-me")   # every experiment: long
    job_id = job["job_id"]
    drv = browser
    drv.get(f"{base(web_lab.mine)}/?job={job_id}")
    until(drv, lambda x: text(x, "#log").count("\n") >= 1, LONG, "no log line arrived")
    bob = chrome()
    try:
        bob.get(web_lab.bob.url)                              # bob's own forwarder and token
        bob.get(f"{base(web_lab.bob)}/jobs/{job_id}")
        assert f"signed in as {web_lab.bob_name}" in text(bob, ".who")
        assert not bob.find_element("id", "job-pause").is_displayed()   # not his to pause
        assert text(bob, "#job-not-yours").startswith("root's job: only they, root")
        token = "return document.querySelector('meta[name=csrf-token]').content"
        assert js(bob, token) != js(drv, token)        # a per-user CSRF token
        bob.find_element("id", "job-cancel").click()
        until(bob, lambda x: x.find_element("id", "job-action-error").is_displayed(), 30)
        why = text(bob, "#job-action-error")
        assert "belongs to root" in why and "only they, root or the admin group" in why, why
        assert d.job(job_id)["status"] == "running"
        shot(bob, "job-refused-other-user")
    finally:
        bob.quit()
    label = js(drv, """const b = document.getElementById('job-cancel'); b.click();
                       return b.textContent""")
    assert label == "Cancelling…"
    until(drv, lambda x: badge(x) == "cancelled", 60)
    assert js(drv, "return getComputedStyle(document.getElementById('job-badge'))"
                   ".backgroundColor") == ORANGE
    assert text(drv, "#job-message").startswith("Cancelled")
    assert not js(drv, "return document.getElementById('run-button').disabled")
    assert text(drv, "#run-button .label") == "Run"
    shot(drv, "job-cancelled-desktop")


def test_queued_job_shows_its_position_pauses_and_resumes(web_lab: WebLab, browser) -> None:
    d = web_lab.daemon
    running = d.start_job(n=200, perf_rounds=1, label="blocker")["job_id"]    # every experiment
    queued = d.start_job(experiments=["gmst_era"], n=200, label="waiter")["job_id"]
    try:
        drv = browser
        drv.get(f"{base(web_lab.mine)}/jobs/{queued}")
        until(drv, lambda x: badge(x) == "queued", 30)
        assert text(drv, "#job-message").startswith("Queued, position 1")
        assert drv.find_element("id", "job-pause").is_displayed()
        shot(drv, "job-queued")
        drv.find_element("id", "job-pause").click()
        until(drv, lambda x: badge(x) == "paused", 30)
        assert d.job(queued)["status"] == "paused"
        assert drv.find_element("id", "job-resume").is_displayed()
        assert not drv.find_element("id", "job-pause").is_displayed()
        shot(drv, "job-paused")
        drv.find_element("id", "job-resume").click()
        until(drv, lambda x: badge(x) == "queued", 30)
        assert d.job(queued)["status"] == "queued"
        drv.get(base(web_lab.mine) + "/history")
        rows = [r.text for r in drv.find_elements("css selector", "section.card")[0]
                .find_elements("css selector", "tbody tr")]
        assert running in rows[0] and "running" in rows[0], rows
        assert queued in rows[1] and "queued #1" in rows[1], rows
        shot(drv, "history-with-queue")
    finally:
        for job_id in (queued, running):
            d.post_json(f"{JOBS}/{job_id}/cancel", {}, timeout=120)


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """Another origin on the same machine (same site: 127.0.0.1 on another port, so the
    dashboard's SameSite cookie IS sent): a form POST and a fetch at the dashboard."""
    target = ""

    def do_GET(self) -> None:
        body = f"""<!DOCTYPE html><html><body>
<form id="f" method="post" action="{self.target}/api/benchmark/jobs" enctype="text/plain">
<input name='{{"experiments":["gmst_era"],"label":"csrf","x":"' value='"}}'></form>
<script>
fetch("{self.target}/api/benchmark/jobs", {{method: "POST", mode: "no-cors",
  credentials: "include", headers: {{"Content-Type": "text/plain"}},
  body: '{{"experiments":["gmst_era"],"label":"csrf"}}'}})
  .finally(() => document.getElementById("f").submit());
</script></body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_cross_origin_csrf_and_rebinding_host_are_refused(web_lab: WebLab, browser) -> None:
    d = web_lab.daemon
    before = d.get(JOBS).json()["total"]
    _EvilPage.target = base(web_lab.mine)
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    drv = browser
    try:
        drv.get(f"http://127.0.0.1:{evil.server_address[1]}/")
        until(drv, lambda x: "/api/benchmark/jobs" in x.current_url, 30, "the form never posted")
        until(drv, lambda x: "cross-origin request refused" in x.page_source, 30)
    finally:
        evil.shutdown()
        thread.join(10)
    assert d.get(JOBS).json()["total"] == before
    # DNS rebinding: another name resolving to 127.0.0.1 (chromium's host-resolver rule)
    drv.get(f"http://{REBIND_HOST}:{web_lab.mine.port}/?token={web_lab.mine.token}")
    until(drv, lambda x: "refused" in x.page_source, 30)
    assert f"Host '{REBIND_HOST}:{web_lab.mine.port}' refused" in drv.page_source
    shot(drv, "rebinding-refused")


def test_the_live_log_continues_across_a_benchd_restart(web_lab: WebLab, browser) -> None:
    """kill -9 of benchd while the page follows a job: the job runs on under its supervisor,
    the page's WebSocket reconnects (at the byte offset reached) once benchd is back on the
    same socket, and the pane ends equal to the log file: no line lost or repeated."""
    d = web_lab.daemon
    job_id = d.start_job(n=200, perf_rounds=1, label="restart")["job_id"]  # every experiment
    drv = browser
    drv.get(f"{base(web_lab.mine)}/jobs/{job_id}")
    until(drv, lambda x: text(x, "#log").count("\n") >= 1, LONG, "no log line arrived")
    d.kill9()
    d.start(timeout=90, preexec_fn=lambda: os.setgid(web_lab.gid))
    assert d.job(job_id)["status"] == "running"
    lines = text(drv, "#log").count("\n")
    until(drv, lambda x: text(x, "#log").count("\n") > lines, LONG,
          "no log line after the restart")
    assert d.post_json(f"{JOBS}/{job_id}/cancel", {}, timeout=120).status == 200
    until(drv, lambda x: badge(x) == "cancelled", 60)
    until(drv, lambda x: text(x, "#log-state") == "", 30, "the log never finished")
    assert text(drv, "#log") == shown_log(web_lab, job_id)      # none lost, none repeated

