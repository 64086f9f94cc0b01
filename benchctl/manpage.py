"""benchctl(1), generated from the argparse parsers (so it says what `--help` says).

`benchctl --man` prints it; scripts/install-service writes it to
/usr/local/share/man/man1/benchctl.1. Read a checkout's with `benchctl --man | man -l -`.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timezone


def _esc(text: str) -> str:
    """Roff-safe text: backslashes, leading dots/quotes, and hyphens of options."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\n".join(("\\&" + ln) if ln.startswith((".", "'")) else ln
                     for ln in text.split("\n"))


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            names = ", ".join(f"\\fB{_esc(o)}\\fR" for o in action.option_strings)
            if action.nargs != 0:
                names += f" \\fI{_esc(str(action.metavar or action.dest.upper()))}\\fR"
        else:
            names = f"\\fI{_esc(str(action.metavar or action.dest))}\\fR"
        out += [".TP", names, _esc(action.help or "")]
    return out


def roff() -> str:
    """The whole page."""
    from benchctl import cli
    from benchctl.exitcodes import EXIT_CODES
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [f'.TH BENCHCTL 1 "{date}" "benchd" "User Commands"', ".SH NAME",
             "benchctl \\- start, follow, cancel and inspect benchmark jobs run by benchd",
             ".SH SYNOPSIS", "\\fBbenchctl\\fR [\\fB\\-\\-socket\\fR \\fIPATH\\fR] "
             "[\\fB\\-\\-no\\-pager\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
             ".SH DESCRIPTION", _esc(parser.description or ""), ".SH GLOBAL OPTIONS",
             *_options(parser), ".SH COMMANDS"]
    for name in cli.COMMANDS:
        p = sub.choices[name]
        usage = " ".join(p.format_usage().split())[len("usage: "):]
        lines += [f".SS {name}", f"\\fB{_esc(usage)}\\fR", ".PP", ".nf",
                  _esc((p.description or "").strip()), ".fi", *_options(p)]
    lines += [".SH OUTPUT",
              _esc("On a terminal, tables are fitted to its width (lists shortened, long cells "
                   "cut with \u2026), times are local with their zone (TZ is honoured), history "
                   "shows relative start times, and long output goes through $PAGER (default "
                   "less -FRX). Piped, output is complete and plain: times are ISO 8601 UTC "
                   "(2026-11-28T04:15:18Z) and logs are byte-exact. --json is the API's JSON."),
              ".SH EXIT STATUS"]
    for code, text in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _esc(text)]
    lines += [".SH ENVIRONMENT", ".TP", "\\fBBENCHD_SOCKET\\fR", _esc(cli.SOCKET_HELP),
              ".TP", "\\fBPAGER\\fR, \\fBBENCHCTL_PAGER\\fR",
              _esc("the pager for long output on a terminal (cat or empty: none)"),
              ".TP", "\\fBNO_COLOR\\fR", "no colour even on a terminal",
              ".TP", "\\fBTZ\\fR", "the zone times are shown in on a terminal",
              ".SH SEE ALSO", "\\fBbenchd\\fR(8); \\fBbenchctl completion\\fR bash|zsh|fish"]
    return "\n".join(lines) + "\n"
