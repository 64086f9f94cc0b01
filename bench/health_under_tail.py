#!/usr/bin/env python3
"""/api/health latency while clients ask for huge tails of a big log, side by side:

    .venv/bin/python bench/health_under_tail.py [--baseline REV] [--clients 10] [--mb 50]
                                                [--seconds 10]

A real benchd (tests/support/daemon.py) with one finished job whose log is then grown to
--mb MB of short lines ("%09d short line", 2.5 M lines for 50 MB). Health is asked
back to back, one connection each, for --seconds: with no other load, then while --clients
clients (a separate process, one thread each) ask for ?tail=1000000000 over and over --
reading the response head only (by then benchd has found where the tail starts: the scan
this measures), then reading the whole 50 MB body as a real client would; and while
--clients WebSocket followers read the log from offset 0 (one message per line).
--baseline REV runs the same on benchd and pipeline as of git revision REV (git archive into
a temporary directory), e.g. the commit before the fix. Target: health p99 < 50 ms with 10
tail clients on a 50 MB log.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile.loadgen import percentile  # noqa: E402
from tests.hostile.rawhttp import build, call  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402

TAIL = 10**9
TARGET_P99_MS = 50.0


def grow_log(d: Daemon, mb: float) -> str:
    """Run one (short) job to its end, then append short lines to its log up to `mb` MB;
    returns the job id. Nothing in benchd holds a finished job's log open."""
    job_id = d.start_job()["job_id"]
    d.wait_job(job_id, timeout=60)
    path = d.log_file(job_id)
    with open(path, "ab") as f:
        i = 0
        while f.tell() < mb * 1e6:
            f.write(b"".join(b"%09d short line\n" % n for n in range(i, i + 100_000)))
            i += 100_000
    return job_id


def health_latencies(d: Daemon, seconds: float) -> list[float]:
    """Back-to-back GET /api/health for `seconds` (each answered fully); seconds each."""
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or not out:
        t0 = time.perf_counter()
        r = call(d.socket_path, "GET", "/api/health", timeout=120)
        out.append(time.perf_counter() - t0)
        assert r.status == 200, r.status
    return out


def _tail_once(sock: str, target: str, body: bool) -> str:
    """One tail request; returns its X-Log-Offset."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(300)
    try:
        s.connect(sock)
        s.sendall(build("GET", target))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response head")
            buf += chunk
        head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        if not head.startswith("HTTP/1.1 200"):
            raise RuntimeError(head.splitlines()[0])
        offset = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                      if line.lower().startswith("x-log-offset:"))
        while body and s.recv(1 << 20):
            pass
        return offset
    finally:
        s.close()


def tail_clients(sock: str, job_id: str, clients: int, body: bool) -> int:
    """Child process: `clients` threads asking for tail=10^9 until stdin closes. Prints
    "ready" once a first answer arrived, then at the end a JSON summary."""
    target = f"/api/benchmark/jobs/{job_id}/logs?tail={TAIL}"
    stop = threading.Event()
    first = threading.Event()
    lock = threading.Lock()
    counts = {"requests": 0, "errors": 0, "offsets": set()}

    def run() -> None:
        while not stop.is_set():
            try:
                off = _tail_once(sock, target, body)
            except Exception as e:  # counted: the figure must say if tails failed
                with lock:
                    counts["errors"] += 1
                    counts.setdefault("error", repr(e))
                continue
            with lock:
                counts["requests"] += 1
                counts["offsets"].add(off)
            if not first.is_set():
                first.set()
                print("ready", flush=True)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    sys.stdin.read()  # until the parent closes it
    stop.set()
    for t in threads:
        t.join(300)
    counts["offsets"] = sorted(counts["offsets"])
    print(json.dumps(counts), flush=True)
    return 0


def ws_clients(sock: str, job_id: str, clients: int) -> int:
    """Child process: `clients` WebSocket followers reading the log from offset 0 over and
    over until stdin closes. Prints "ready" after the first 1,000 messages, then a summary."""
    import asyncio

    import aiohttp
    counts = {"requests": 0, "errors": 0, "messages": 0}
    stop = threading.Event()

    async def one() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s:
            while not stop.is_set():
                try:
                    async with s.ws_connect(f"http://benchd/api/benchmark/jobs/{job_id}"
                                            "/logs/ws?offset=0", max_msg_size=0) as ws:
                        async for _ in ws:
                            counts["messages"] += 1
                            if counts["messages"] == 1000:
                                print("ready", flush=True)
                            if stop.is_set():
                                return
                    counts["requests"] += 1
                except aiohttp.ClientError:
                    counts["errors"] += 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(clients)))

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    sys.stdin.read()
    stop.set()
    print(json.dumps(counts), flush=True)
    return 0


def under_tails(d: Daemon, job_id: str, clients: int, seconds: float,
                body: bool, ws: bool = False) -> tuple[list[float], dict]:
    """Health latencies while `clients` tail=10^9 clients (or WebSocket followers) run; and
    their summary."""
    argv = [sys.executable, str(Path(__file__).resolve()), "_tail_clients",
            str(d.socket_path), job_id, str(clients), "ws" if ws else "1" if body else "0"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # a first tail answered: the load is on
        if line.strip() != "ready":
            raise RuntimeError(f"tail clients did not start: {line!r}")
        lat = health_latencies(d, seconds)
        out, _ = child.communicate("", timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return lat, json.loads(out.strip().splitlines()[-1])


def export_revision(rev: str, dest: Path) -> Path:
    """benchd/ and pipeline/ as of `rev` (git archive), to run as a baseline."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "benchd", "pipeline"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(dest)
    return dest


def scenario(root: Path, mb: float, clients: int, seconds: float,
             code: Path | None = None) -> list[tuple[str, list[float], dict | None]]:
    """(load label, health latencies, tail summary) for: no load, heads only, full bodies."""
    env = {"PYTHONPATH": str(code)} if code else {}
    d = Daemon(root, env=env)
    try:
        d.start()
        job_id = grow_log(d, mb)
        rows: list[tuple[str, list[float], dict | None]] = [
            ("no tail load", health_latencies(d, seconds), None)]
        for body, what in ((False, "response head"), (True, "whole body")):
            lat, summary = under_tails(d, job_id, clients, seconds, body)
            rows.append((f"{clients} x tail={TAIL:.0e} ({what})", lat, summary))
        lat, summary = under_tails(d, job_id, clients, seconds, False, ws=True)
        rows.append((f"{clients} x WebSocket from offset 0", lat, summary))
        return rows
    finally:
        d.close()


def fmt_ms(lat: list[float]) -> str:
    return (f"{percentile(lat, 50) * 1e3:.1f} / {percentile(lat, 99) * 1e3:.1f} / "
            f"{max(lat) * 1e3:.1f} ms (n={len(lat)})")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_tail_clients":
        sock, job_id, clients, mode = sys.argv[2:6]
        if mode == "ws":
            return ws_clients(sock, job_id, int(clients))
        return tail_clients(sock, job_id, int(clients), mode == "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="REV", help="also run benchd as of this git revision")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--mb", type=float, default=50.0, help="log size in MB")
    ap.add_argument("--seconds", type=float, default=10.0, help="health sampling per row")
    a = ap.parse_args()
    table = [("code", "load", "health p50 / p99 / max", "answered (X-Log-Offset)", "target")]
    with tempfile.TemporaryDirectory(prefix="benchd-tail-") as t:
        tmp = Path(t)
        runs = [("this checkout", None)]
        if a.baseline:
            runs.append((a.baseline, export_revision(a.baseline, tmp / "baseline")))
        for label, code in runs:
            print(f"... {label}", file=sys.stderr, flush=True)
            for load, lat, summary in scenario(tmp / f"root-{len(table)}", a.mb, a.clients,
                                               a.seconds, code):
                if summary is None:
                    tails = ""
                elif "messages" in summary:
                    tails = f"{summary['messages']:,} messages; {summary['errors']} errors"
                else:
                    tails = (f"{summary['requests']} ({','.join(summary['offsets'])}); "
                             f"{summary['errors']} errors")
                ok = percentile(lat, 99) * 1e3 < TARGET_P99_MS
                table.append((label, load, fmt_ms(lat), tails,
                              "ok" if ok else f"MISSED (p99 < {TARGET_P99_MS:g} ms)"))
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    print(f"log {a.mb:g} MB of short lines; {a.seconds:g} s of back-to-back health per row; "
          f"python {sys.version.split()[0]}")
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
