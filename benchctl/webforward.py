"""`benchctl web`'s forwarder: a loopback TCP port to benchd's Unix socket, as the caller.

Every accepted TCP connection opens its own connection to the socket from this process, so
benchd's SO_PEERCRED sees the user who ran `benchctl web` and authorises as for benchctl.
Any local user can reach a loopback port, so a connection is forwarded only once its first
request proves it knows the random token (as Jupyter does): `?token=T` in the URL (answered
with a redirect that sets the cookie and drops the token from the address bar) or the cookie
itself. The rest of that connection is then spliced byte for byte (keep-alive requests and
WebSocket upgrades included): a TCP connection belongs to the one client that opened it, and
browsers partition their connection pools by the top-level site, so no other site's page can
send on a connection a dashboard page authenticated.
"""
from __future__ import annotations

import asyncio
import hmac
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT_S = 30.0
COOKIE_PREFIX = "benchctl_web_"


class Forwarder:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `socket_path`."""

    def __init__(self, socket_path: str, port: int = 0, token: str | None = None) -> None:
        self.socket_path = socket_path
        self.port = port
        self.token = token or secrets.token_urlsafe(24)
        self.server: asyncio.base_events.Server | None = None

    @property
    def cookie_name(self) -> str:   # one per port: two users' forwarders do not collide
        return f"{COOKIE_PREFIX}{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self.server is not None
        async with self.server:
            await self.server.serve_forever()

    # --- one connection ---------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        try:
            verdict = self._check(head)
            if verdict is not None:
                writer.write(verdict)
                await writer.drain()
                return
            await self._splice(head, reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _check(self, head: bytes) -> bytes | None:
        """None: forward; else the answer to send (redirect setting the cookie, or 403)."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        target = parts[1] if len(parts) == 3 else "/"
        cookies = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "cookie":
                for item in value.split(";"):
                    k, _, v = item.strip().partition("=")
                    cookies[k] = v
        if hmac.compare_digest(cookies.get(self.cookie_name, ""), self.token):
            return None
        url = urlsplit(target)
        query = parse_qsl(url.query, keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), "")
        if given and hmac.compare_digest(given, self.token):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = urlunsplit(("", "", url.path or "/", rest, ""))
            return (f"HTTP/1.1 303 See Other\r\nLocation: {location}\r\n"
                    f"Set-Cookie: {self.cookie_name}={self.token}; Path=/; HttpOnly; "
                    f"SameSite=Strict\r\nContent-Length: 0\r\nCache-Control: no-store\r\n"
                    f"Connection: close\r\n\r\n").encode()
        body = (b"benchctl web: token missing or wrong. Open the URL `benchctl web` printed "
                b"(it ends in ?token=...).\n")
        return (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + body)

    async def _splice(self, head: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError as e:
            body = f"benchctl web: cannot reach benchd at {self.socket_path}: {e}\n".encode()
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8"
                         b"\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
            return
        up_writer.write(head)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (ConnectionError, OSError):
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

