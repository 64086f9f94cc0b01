"""A raw HTTP responder on a real Unix socket, for client edge cases a real benchd cannot be
made to produce on cue (a stream cut inside a chunk at a chosen byte, a malformed status
line). Everything else in tests/benchctl and tests/e2e talks to a real benchd."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[bytes, socket.socket], None]


class RawServer:
    """Accepts connections in a thread; each is handled by the next handler of `script`
    (the last one repeats). Records every request head it received."""

    def __init__(self, path: Path, script: list[Handler]) -> None:
        self.path = str(path)
        self.script = script
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        break
                    head += data
                self.requests.append(head)
                handler = self.script[min(len(self.requests), len(self.script)) - 1]
                try:
                    handler(head, conn)
                except OSError:
                    pass


def chunked(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return body + (b"0\r\n\r\n" if end else b"")


def respond(status: int, body: bytes, headers: dict[str, str] | None = None,
            chunks: list[bytes] | None = None, end: bool = True) -> Handler:
    """A handler sending one response: Content-Length body, or chunked `chunks` (with the
    final 0-chunk unless end=False, then the connection just closes)."""
    def handler(head: bytes, conn: socket.socket) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        if chunks is None:
            lines.append(f"Content-Length: {len(body)}")
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        else:
            lines.append("Transfer-Encoding: chunked")
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + chunked(*chunks, end=end))
    return handler
