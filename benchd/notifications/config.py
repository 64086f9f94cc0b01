"""benchd's own notification settings: /etc/benchd/notify.toml (--notify-config).

    [smtp]                          # needed for mailto: targets
    host = "localhost"
    port = 25
    starttls = false                # STARTTLS before AUTH/MAIL
    from = "benchd@lab.example"
    auth_file = "/etc/benchd/smtp-auth"   # optional: one line "user:password", mode 0600
    timeout = 10

    [[target]]                      # server-wide: every job's events go here too
    url = "https://hooks.lab.example/benchd"
    secret = "whsec_..."
    on = ["fail"]

A mistake here is a start-up error naming the key, never a silently dropped notification.
"""
from __future__ import annotations

import os
import socket
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from benchd.defaults import NOTIFY_CONFIG
from benchd.errors import InvalidRequest
from benchd.schema import NotifyTarget
from benchd.notifications.targets import TargetPolicy, check_target

DEFAULT_PATH = NOTIFY_CONFIG


class NotifyConfigError(Exception):
    """The settings file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    sender: str = ""
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NotifyConfig:
    smtp: SmtpConfig | None = None
    targets: tuple[NotifyTarget, ...] = ()
    allow_hosts: frozenset[str] | None = None
    source: str | None = None            # the file it came from, for messages

    @property
    def policy(self) -> TargetPolicy:
        return TargetPolicy(allow_hosts=self.allow_hosts, smtp_configured=self.smtp is not None)


def load(path: Path | None, allow_hosts: frozenset[str] | None = None) -> NotifyConfig:
    """The settings in `path`; an absent default file means "no server-wide settings"."""
    if path is None:
        return NotifyConfig(allow_hosts=allow_hosts)
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if path == DEFAULT_PATH:
            return NotifyConfig(allow_hosts=allow_hosts)
        raise NotifyConfigError(f"--notify-config {path}: no such file") from None
    except OSError as e:
        raise NotifyConfigError(f"--notify-config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise NotifyConfigError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - {"smtp", "target"})
    if unknown:
        raise NotifyConfigError(f"{path}: {unknown[0]}: unknown key; allowed: smtp, target")
    smtp = _smtp(path, data.get("smtp"))
    policy = TargetPolicy(allow_hosts=allow_hosts, smtp_configured=smtp is not None)
    raw_targets = data.get("target", [])
    if not isinstance(raw_targets, list):
        raise NotifyConfigError(f"{path}: target: expected [[target]] tables")
    targets = []
    for i, raw in enumerate(raw_targets):
        try:
            t = NotifyTarget(url=raw.get("url"), on=raw.get("on"), secret=raw.get("secret"))
            extra = sorted(set(raw) - {"url", "on", "secret"})
            if extra:
                raise InvalidRequest(f"target[{i}].{extra[0]}: unknown key; allowed: url, on, "
                                     f"secret")
            targets.append(check_target(t, f"target[{i}]", policy))
        except InvalidRequest as e:
            raise NotifyConfigError(f"{path}: {e.message}") from None
        except AttributeError:
            raise NotifyConfigError(f"{path}: target[{i}]: expected a table") from None
    if (targets and any(t.secret for t in targets)) and st.st_mode & stat.S_IROTH:
        raise NotifyConfigError(f"{path} holds webhook secrets but is readable by everyone "
                                f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 0640 it")
    return NotifyConfig(smtp=smtp, targets=tuple(targets), allow_hosts=allow_hosts,
                        source=str(path))


def _smtp(path: Path, raw: object) -> SmtpConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise NotifyConfigError(f"{path}: smtp: expected a table")
    allowed = {"host", "port", "starttls", "from", "auth_file", "timeout"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise NotifyConfigError(f"{path}: smtp.{extra[0]}: unknown key; allowed: "
                                f"{', '.join(sorted(allowed))}")
    host = raw.get("host")
    if not isinstance(host, str) or not host:
        raise NotifyConfigError(f"{path}: smtp.host: expected a host name")
    port = raw.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise NotifyConfigError(f"{path}: smtp.port: expected 1..65535, got {port!r}")
    starttls = raw.get("starttls", False)
    if not isinstance(starttls, bool):
        raise NotifyConfigError(f"{path}: smtp.starttls: expected true or false")
    timeout = raw.get("timeout", 10)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 300:
        raise NotifyConfigError(f"{path}: smtp.timeout: expected seconds in (0, 300]")
    sender = raw.get("from") or f"benchd@{socket.getfqdn()}"
    if not isinstance(sender, str) or "\n" in sender or "\r" in sender:
        raise NotifyConfigError(f"{path}: smtp.from: expected one address")
    username = password = None
    auth_file = raw.get("auth_file")
    if auth_file is not None:
        username, password = _read_auth(path, Path(auth_file))
    return SmtpConfig(host=host, port=port, starttls=starttls, sender=sender,
                      username=username, password=password, timeout=float(timeout))


def _read_auth(path: Path, auth_file: Path) -> tuple[str, str]:
    """user:password from a file only benchd's user may read (0600 or stricter)."""
    try:
        fd = os.open(auth_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise NotifyConfigError(f"{path}: smtp.auth_file {auth_file}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise NotifyConfigError(f"{path}: smtp.auth_file {auth_file} must be a regular "
                                    f"file of mode 0600 (it is "
                                    f"{stat.S_IMODE(st.st_mode):04o})")
        text = f.read(4096).decode("utf-8", "replace").strip()
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise NotifyConfigError(f"{path}: smtp.auth_file {auth_file}: expected one line "
                                f"user:password")
    return user, password
