"""Raw HTTP/1.1 over a Unix socket, byte for byte: the hostile tests need to send request
lines that http.client refuses to build (NUL, raw `..`, overlong paths, half requests)."""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2:]


def parse(raw: bytes) -> RawResponse:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response head in {raw[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return RawResponse(status, headers, body)


def build(method: str, target: bytes | str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> bytes:
    """One request with `Connection: close` (the answer ends when the socket does)."""
    if isinstance(target, str):
        target = target.encode("utf-8", "surrogateescape")
    hdrs = {"Host": "benchd", "Connection": "close", **(headers or {})}
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n" + b"".join(
        f"{k}: {v}\r\n".encode("latin-1") for k, v in hdrs.items()) + b"\r\n"
    return head + (body or b"")


def exchange(path: str | Path, data: bytes, timeout: float = 20.0) -> RawResponse:
    """Send `data`, read until the daemon closes the connection, parse the response."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may answer (e.g. 413) and close before reading it all
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return parse(b"".join(chunks))
    finally:
        s.close()


def call(path: str | Path, method: str, target: bytes | str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 20.0) -> RawResponse:
    return exchange(path, build(method, target, body, headers), timeout)
