"""Which benchd socket benchctl talks to, and whether a socket it found by itself is trusted.

Order: `--socket PATH`, else `$BENCHD_SOCKET`, else `$BENCHD_ROOT/run/benchd.sock` (these
three are the caller's own choice and are used as given), else `run/benchd.sock` in the
current directory or the nearest parent that has one (like git looks for `.git`: up to the
filesystem root, never across a mount point), else the system service's
`/run/benchd/benchd.sock`.

Why the trust check: whoever can put a socket where benchctl looks can answer in benchd's
name ("completed, exit 0"), e.g. another user in a 1777 scratch directory. To plant or swap
the socket at D/run/benchd.sock an attacker must own the socket (be the one listening), or own
or be able to write to D/run, D or any directory above D (write access lets him rename the
entry below and put his own in its place). So a found socket is used only if it and every
directory from its own up to `/` are owned by a trusted user (the caller, root, or benchd's
service user, which owns `/run/benchd`) and no directory is writable by others, except:
- sticky directories (`/tmp`, mode 1777): others may add entries but not rename or remove the
  trusted ones the path goes through, which are all checked themselves;
- group-writable directories of a user-private group (the group named like the owner, with no
  other members): the umask-002 convention of Debian-like systems, where the group is just
  the owner. A shared group's write access lets its members swap entries, so it is refused.
The socket's own mode does not matter (0660 root:benchd is the service's): writing a socket
means connecting to it; only its owner, the listener, decides who answers. Directories that
discovery walked through below the found one hold no part of the path used: each was a
candidate itself, and a socket planted there later is found first and checked.
Symlinks are not followed (a link's target could sit anywhere): `--socket` takes them.

Stdlib only (os, and pwd/grp when an owner is not the caller or root): run on every call.
"""
from __future__ import annotations

import os
import stat

from benchctl.exitcodes import UNTRUSTED_SOCKET, CliError
from benchd.defaults import ROOT_ENV, SERVICE_USER, SOCKET_ENV, SYSTEM_SOCKET

RUN_SOCKET = os.path.join("run", "benchd.sock")


class SocketChoice:
    """The socket to use, how it was chosen (`status` prints it), and for a socket that was
    looked for but not found, where benchctl looked (the 'cannot reach' message says it)."""

    def __init__(self, path: str, how: str, searched: str | None = None) -> None:
        self.path = path
        self.how = how
        self.searched = searched


class UntrustedSocket(CliError):
    """A socket found by discovery that someone other than the caller, root or benchd's
    service user could have put there (exit UNTRUSTED_SOCKET)."""

    def __init__(self, socket_path: str, reason: str) -> None:
        super().__init__(
            f"refusing the benchd socket found at {socket_path}: {reason}.\n"
            "  Whoever controls that path can answer in benchd's name. If you trust it, name "
            f"it yourself:\n  --socket {socket_path} (or BENCHD_SOCKET={socket_path}).",
            UNTRUSTED_SOCKET)
        self.socket_path = socket_path
        self.reason = reason


def choose_socket(explicit: str | None = None) -> SocketChoice:
    """The socket benchctl should use (see the module docstring). Raises UntrustedSocket when
    the socket discovery found fails the trust check: refusing, not skipping to the next
    candidate, so that a planted socket is noticed (as git refuses a `.git` of another
    owner) and the user is never silently served by a different daemon."""
    if explicit:
        return SocketChoice(explicit, "given with --socket")
    env = os.environ.get(SOCKET_ENV)
    if env:
        return SocketChoice(env, f"from ${SOCKET_ENV}")
    root = os.environ.get(ROOT_ENV)
    if root:
        local = os.path.join(root, RUN_SOCKET)
        if _present(local):
            return SocketChoice(local, f"from ${ROOT_ENV}")
        searched = f"{local} (from ${ROOT_ENV})"
    else:
        try:
            cwd = os.getcwd()
        except OSError:  # the current directory was removed
            cwd = None
        found, top = _walk_up(cwd) if cwd else (None, None)
        if found:
            check_trusted(found)
            here = os.path.dirname(os.path.dirname(found))
            return SocketChoice(found, "found in the current directory" if here == cwd
                                else f"found in {here}, a parent of the current directory")
        local = os.path.join(cwd or ".", RUN_SOCKET)
        if not cwd:
            searched = f"{RUN_SOCKET} (no current directory)"
        elif cwd == "/":
            searched = f"{RUN_SOCKET} in /"
        elif top == "/":
            searched = f"{RUN_SOCKET} in {cwd} and each parent directory"
        else:
            searched = (f"{RUN_SOCKET} in {cwd} and each parent directory up to the mount "
                        f"point {top} (discovery does not cross filesystems)")
    system = str(SYSTEM_SOCKET)
    if _present(system):
        check_trusted(system)
        return SocketChoice(system, "the system service's (none found nearer)")
    return SocketChoice(local, "none found", f"looked for {searched} and for {system}")


def _present(path: str) -> bool:
    """The path exists, or may: a socket in a directory we may not enter (/run/benchd is 0750
    benchd:benchd) counts as present, so that connecting says "permission denied"."""
    try:
        os.lstat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _walk_up(start: str) -> tuple[str | None, str]:
    """(the first D/run/benchd.sock present from `start` upwards, the last directory looked
    in): stops at `/` or below a mount point (a parent on another device is not looked in)."""
    d = start
    try:
        dev = os.stat(d).st_dev
    except OSError:
        return None, d
    while True:
        candidate = os.path.join(d, RUN_SOCKET)
        if _present(candidate):
            return candidate, d
        parent = os.path.dirname(d)
        if parent == d:
            return None, d
        try:
            if os.stat(parent).st_dev != dev:
                return None, d
        except OSError:
            return None, d
        d = parent


def check_trusted(sock: str) -> None:
    """Raise UntrustedSocket unless `sock` and every directory above it are safe (see the
    module docstring); a socket we may not even stat is left to connect() to report."""
    sock = os.path.abspath(sock)
    uid = os.geteuid()
    try:
        st = os.lstat(sock)
    except PermissionError:
        st = None  # its directory is closed to us (checked below); connect says EACCES
    except FileNotFoundError:
        st = None  # gone since we looked: connect says so
    except OSError as exc:
        raise UntrustedSocket(sock, f"cannot check it: {exc.strerror}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UntrustedSocket(sock, "the socket is a symlink (discovery follows none)")
        if not stat.S_ISSOCK(st.st_mode):
            raise UntrustedSocket(sock, "it is not a socket")
        if not _trusted_owner(st.st_uid, uid):
            raise UntrustedSocket(sock, f"the socket is owned by {_owner(st.st_uid)}, "
                                        f"{_trusted_owners(uid)}")
    path = os.path.dirname(sock)
    while True:
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise UntrustedSocket(sock, f"cannot check {path}: {exc.strerror}") from None
        problem = _directory_problem(path, st, uid)
        if problem:
            raise UntrustedSocket(sock, problem)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _directory_problem(path: str, st: os.stat_result, uid: int) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink (discovery follows none)"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if not _trusted_owner(st.st_uid, uid):
        return (f"{path} (mode {mode:04o}) is owned by {_owner(st.st_uid)}, "
                f"{_trusted_owners(uid)}")
    if mode & stat.S_ISVTX:
        return None
    if mode & stat.S_IWOTH:
        return f"{path} (mode {mode:04o}, not sticky) is writable by everyone"
    if mode & stat.S_IWGRP and not _private_group(st.st_uid, st.st_gid):
        return (f"{path} (mode {mode:04o}, not sticky) is writable by group "
                f"{_group(st.st_gid)}: its members could replace what is in it")
    return None


_service_uid: list[int | None] = []


def _trusted_owner(owner: int, uid: int) -> bool:
    """The caller, root, or benchd's service user (owner of /run/benchd)."""
    if owner in (uid, 0):
        return True
    if not _service_uid:  # looked up only when needed: NSS costs ~0.3 ms
        import pwd
        try:
            _service_uid.append(pwd.getpwnam(SERVICE_USER).pw_uid)
        except KeyError:
            _service_uid.append(None)
    return owner == _service_uid[0]


def _private_group(owner: int, gid: int) -> bool:
    """A user-private group: named like `owner` and without other listed members."""
    import grp
    import pwd
    try:
        name = pwd.getpwuid(owner).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return group.gr_name == name and set(group.gr_mem) <= {name}


def _owner(uid: int) -> str:
    import pwd
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    import grp
    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"


def _trusted_owners(uid: int) -> str:
    you = "root (you)" if uid == 0 else f"you ({_owner(uid)}), root"
    return f"not by {you} or benchd's service user {SERVICE_USER}"
