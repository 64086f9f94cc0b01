"""Who is on the other end of a Unix-socket connection: the kernel's SO_PEERCRED, never
anything the client claims. The job layer uses the uid for ownership and cancel rights."""
from __future__ import annotations

import pwd
import socket
import struct
from dataclasses import dataclass

from benchd.errors import Forbidden

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int
    user: str


def user_name(uid: int) -> str:
    """The account name for `uid`, or the number itself when it has no passwd entry
    (a container uid, a deleted account): a job is never refused for that."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def peer_cred(sock: socket.socket | None) -> PeerCred:
    """Credentials of the process that connected `sock` (as of connect(2)). Anything that is
    not a Unix stream socket has no trustworthy identity and is refused."""
    if sock is None or sock.family != socket.AF_UNIX:
        raise Forbidden("requests are only accepted over benchd's Unix socket "
                        "(the caller's identity comes from SO_PEERCRED)")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid=pid, uid=uid, gid=gid, user=user_name(uid))
