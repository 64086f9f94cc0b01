"""A lean HTTP/1.1 client for benchd's Unix socket.

Why not aiohttp or http.client: benchctl runs in scripts' loops, so start-up time counts; this
is a raw socket, one request per connection (`Connection: close`), Content-Length and chunked
bodies. Streams are read incrementally and know whether they ended cleanly (the final chunk
arrived) or were cut (daemon killed), so a follower can reconnect from the byte it reached.
"""
from __future__ import annotations

import json
import os

# The C socket module: socket.py adds nothing a one-shot AF_UNIX client needs and costs ~1 ms
# of start-up (it builds its enums at import).
import _socket as socket
from collections.abc import Iterator
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any
from urllib.parse import quote, urlencode

from benchctl.exitcodes import INTERNAL, UNAVAILABLE, CliError, for_api_error

_RECV = 65536
_MAX_HEAD = 65536
DEFAULT_TIMEOUT_S = 30.0


class Unreachable(CliError):
    """The daemon cannot be reached on the socket. The message tells the cases apart, as
    their cures differ: no socket or a stale one (start benchd), permission denied (benchd
    runs: join the group that may connect), no answer (frozen)."""

    def __init__(self, socket_path: str, cause: OSError, searched: str | None = None) -> None:
        hint = _START_HINT
        if isinstance(cause, PermissionError):
            why, hint = _permission_detail(socket_path)
        elif isinstance(cause, FileNotFoundError):
            why = "no such socket" + (f" ({searched})" if searched else "")
        elif isinstance(cause, ConnectionRefusedError):
            why = ("connection refused: nothing listens on it (a stale socket: benchd is not "
                   "running)")
        elif isinstance(cause, TimeoutError):
            why, hint = f"it took the connection but sent no answer ({cause})", _FROZEN_HINT
        else:
            why = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(f"cannot reach benchd at {os.path.abspath(socket_path)}: {why}.\n"
                         + hint, UNAVAILABLE)
        self.socket_path = socket_path


_START_HINT = ("  Start it with `benchd --root DIR` (socket DIR/run/benchd.sock) or "
               "`systemctl start benchd.socket`;\n"
               "  point benchctl elsewhere with --socket PATH or BENCHD_SOCKET.")
_FROZEN_HINT = ("  Is it frozen or overloaded? `systemctl status benchd` or its log says; "
                "under systemd the watchdog restarts a frozen benchd.")


def _permission_detail(socket_path: str) -> tuple[str, str]:
    """(why, hint) for EACCES: which path shuts us out (the socket, or the first directory
    above it that we may stat but not enter), its owner, group and mode, and the cure, which
    is usually to join its group (benchd runs: starting it would not help)."""
    import grp
    import pwd
    path = os.path.abspath(socket_path)
    while True:
        try:
            st = os.stat(path)
            break
        except PermissionError:
            parent = os.path.dirname(path)
            if parent == path:
                return "permission denied", _START_HINT
            path = parent
        except OSError:
            return "permission denied", _START_HINT
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group_entry = grp.getgrgid(st.st_gid)
        group, members = group_entry.gr_name, group_entry.gr_mem
    except KeyError:
        group, members = str(st.st_gid), []
    why = (f"permission denied: {path} is {owner}:{group} mode "
           f"{st.st_mode & 0o7777:04o}")
    group_may = st.st_mode & (0o020 if path == os.path.abspath(socket_path) else 0o010)
    if st.st_gid in os.getgroups() or st.st_gid == os.getegid():
        return (f"{why}, and its group {group} (yours) may not connect",
                "  Ask its owner to open it to the group (benchd --socket-mode 0660), or "
                "use another socket with --socket PATH.")
    if not group_may:
        return (f"{why}: only its owner may connect",
                "  Use another socket with --socket PATH, or ask its owner.")
    if user in members:
        return (f"{why}; you ({user}) were added to group {group} after this login "
                "session started",
                f"  benchd is running. Log in again (or run `newgrp {group}`) to use the "
                "new group.")
    return (f"{why}, and you ({user}) are not in group {group}",
            f"  benchd is running; only members of group {group} may use it. Join it: "
            f"`sudo usermod -aG {group} {user}`,\n  then log in again.")
class NoAnswer(CliError):
    """benchd took the request but did not answer in time (exit 70: the request may have
    had its effect, so this is not 'unreachable'). Following turns it into Unreachable."""

    def __init__(self, socket_path: str, waited: float | None) -> None:
        super().__init__(f"benchd at {socket_path} did not answer within {waited:g} s; the "
                         f"request may still take effect.\n" + _FROZEN_HINT, INTERNAL)
        self.socket_path = socket_path
        self.waited = waited


class ApiError(CliError):
    """benchd answered with an error body {"error": {"code", "message"}}."""

    def __init__(self, http_status: int, code: str | None, message: str) -> None:
        super().__init__(message, for_api_error(http_status, code))
        self.http_status = http_status
        self.code = code


class StreamCut(Exception):
    """The connection ended before the response did (e.g. benchd was killed)."""


class Response:
    """Status, lower-cased headers and a body that is read on demand."""

    def __init__(self, sock: socket.socket, status: int, headers: dict[str, str],
                 rest: bytes) -> None:
        self.status = status
        self.headers = headers
        self._sock = sock
        self._buf = rest
        self.complete = False  # True once the whole body has been read

    def set_timeout(self, seconds: float | None) -> None:
        """How long a body read may wait for the next byte (then TimeoutError)."""
        self._sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def _fill(self) -> bool:
        try:
            data = self._sock.recv(_RECV)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return False
        self._buf += data
        return True

    def iter_body(self) -> Iterator[bytes]:
        """Yield body bytes as they arrive. Raises StreamCut when the connection ends early."""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                yield from self._iter_chunked()
            elif "content-length" in self.headers:
                left = int(self.headers["content-length"])
                while left > 0:
                    if not self._buf and not self._fill():
                        raise StreamCut(f"{left} body bytes missing")
                    piece, self._buf = self._buf[:left], self._buf[left:]
                    left -= len(piece)
                    yield piece
            else:  # body ends when the connection does
                while True:
                    if self._buf:
                        piece, self._buf = self._buf, b""
                        yield piece
                    if not self._fill():
                        break
            self.complete = True
        finally:
            self.close()

    def _iter_chunked(self) -> Iterator[bytes]:
        while True:
            while b"\r\n" not in self._buf:
                if not self._fill():
                    raise StreamCut("connection closed inside a chunk header")
            line, self._buf = self._buf.split(b"\r\n", 1)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise StreamCut(f"bad chunk header {line[:40]!r}") from None
            if size == 0:
                return  # trailers (none expected) are ignored: we close the connection
            while size > 0:
                if not self._buf and not self._fill():
                    raise StreamCut("connection closed inside a chunk")
                piece, self._buf = self._buf[:size], self._buf[size:]
                size -= len(piece)
                yield piece
            while len(self._buf) < 2:
                if not self._fill():
                    raise StreamCut("connection closed after a chunk")
            self._buf = self._buf[2:]

    def read(self) -> bytes:
        return b"".join(self.iter_body())

    def json(self) -> Any:
        return json.loads(self.read())


class Client:
    """One benchd endpoint (a Unix socket path); every call opens its own connection."""

    def __init__(self, socket_path: str, timeout: float | None = DEFAULT_TIMEOUT_S,
                 searched: str | None = None) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.searched = searched  # where discovery looked, when it found nothing

    def open(self, method: str, path: str, body: bytes | None = None,
             timeout: float | None = -1.0) -> Response:
        """Send one request and read the status line and headers. Raises Unreachable."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if timeout == -1.0 else timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise Unreachable(self.socket_path, exc, self.searched) from None
        head = [f"{method} {path} HTTP/1.1", "Host: benchd", "Connection: close",
                "Accept: application/json", "User-Agent: benchctl"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = sock.recv(_RECV)
                if not data:
                    raise ConnectionResetError("benchd closed the connection before answering")
                buf += data
                if len(buf) > _MAX_HEAD:
                    raise CliError("benchd sent an oversized response head", INTERNAL)
        except (ConnectionResetError, BrokenPipeError) as exc:
            sock.close()
            raise Unreachable(self.socket_path, exc) from None
        except TimeoutError:
            waited = sock.gettimeout()
            sock.close()
            raise NoAnswer(self.socket_path, waited) from None
        except BaseException:
            sock.close()
            raise
        raw_head, rest = buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            sock.close()
            raise CliError(f"benchd sent a malformed status line {lines[0]!r}", INTERNAL) from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Response(sock, status, headers, rest)

    def call(self, method: str, path: str, payload: Any = None,
             timeout: float | None = -1.0) -> Any:
        """A JSON request; returns the decoded JSON body or raises ApiError / Unreachable."""
        data = self.call_raw(method, path, payload, timeout)
        try:
            return json.loads(data)
        except ValueError:
            raise CliError(f"benchd's answer to {method} {path} is not JSON: {data[:200]!r}",
                           INTERNAL) from None

    def call_raw(self, method: str, path: str, payload: Any = None,
                 timeout: float | None = -1.0) -> bytes:
        """The body bytes of a successful answer, undecoded (--json re-encodes them)."""
        body = None if payload is None else json.dumps(payload).encode()
        resp = self.open(method, path, body, timeout)
        try:
            data = resp.read()
        except StreamCut as exc:
            raise CliError(f"benchd's answer to {method} {path} was cut off: {exc}",
                           INTERNAL) from None
        except TimeoutError:
            raise CliError(f"benchd at {self.socket_path} stopped answering {method} {path}",
                           INTERNAL) from None
        if resp.status >= 400:
            raise_api_error(resp.status, data)
        return data


def raise_api_error(status: int, data: bytes) -> None:
    """Raise ApiError from an error response body (the one shape, or whatever came)."""
    code, message = None, None
    try:
        err = json.loads(data)["error"]
        code, message = err.get("code"), err.get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if not message:
        message = f"benchd answered HTTP {status}: {data[:200].decode('utf-8', 'replace')}"
    raise ApiError(status, code, message)


def job_path(job_id: str, suffix: str = "") -> str:
    return f"/api/benchmark/jobs/{quote(job_id, safe='')}{suffix}"


def query(**params: Any) -> str:
    """'?a=1&b=x' for the params that are not None ('' when none)."""
    items = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(items) if items else ""
