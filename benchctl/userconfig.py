"""The caller's own settings: $XDG_CONFIG_HOME/benchctl/config.toml (~/.config/...).

    [[notify]]                       # sent with every `benchctl run` (--no-notify-defaults
    url = "https://hooks.example/x"  # leaves them out); its secret also signs an explicit
    secret = "whsec_..."             # --notify of the same URL
    on = ["end"]

Read only by the commands that need it (start-up time). A file holding secrets must not be
readable by others: benchctl refuses it rather than use a secret someone else could read.
"""
from __future__ import annotations

import os
import stat
from typing import Any

from benchctl.exitcodes import USAGE, CliError

SECRET_ENV = "BENCHCTL_WEBHOOK_SECRET"


def path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "benchctl", "config.toml")


def load() -> dict[str, Any]:
    """The parsed file, {} when there is none; a broken one is a usage error naming it."""
    import tomllib
    where = path()
    try:
        with open(where, "rb") as f:
            st = os.fstat(f.fileno())
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CliError(f"{where}: {e}", USAGE) from None
    targets = data.get("notify", [])
    if not isinstance(targets, list) or not all(isinstance(t, dict) and isinstance(
            t.get("url"), str) for t in targets):
        raise CliError(f"{where}: notify: expected [[notify]] tables with a url", USAGE)
    if any(t.get("secret") for t in targets) and st.st_mode & 0o077:
        raise CliError(f"{where} holds webhook secrets but others may read it (mode "
                       f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 {where}", USAGE)
    return data


def default_targets(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in t.items() if k in ("url", "secret", "on")}
            for t in config.get("notify", [])]


def target_for(url: str, on: list[str] | None, config: dict[str, Any],
               flag: str = "--notify") -> dict[str, Any]:
    """An explicit target: a webhook is signed with the config's secret for that URL, else
    with $BENCHCTL_WEBHOOK_SECRET; without either it cannot be sent."""
    scheme = url.partition(":")[0].lower()
    if scheme not in ("http", "https", "mailto"):
        raise CliError(f"{flag} {url}: scheme {scheme!r} is not allowed; use https, http or "
                       f"mailto", USAGE)
    target: dict[str, Any] = {"url": url}
    if on is not None:
        target["on"] = on
    if scheme == "mailto":
        return target
    known = next((t for t in default_targets(config) if t["url"] == url), None)
    secret = (known or {}).get("secret") or os.environ.get(SECRET_ENV)
    if not secret:
        raise CliError(f"{flag} {url}: a webhook needs a secret (whsec_...) to sign with: add "
                       f"a [[notify]] entry for it to {path()} or set {SECRET_ENV}", USAGE)
    target["secret"] = secret
    if on is None and known and known.get("on") is not None:
        target["on"] = known["on"]
    return target
