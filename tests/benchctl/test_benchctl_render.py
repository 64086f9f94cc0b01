"""benchctl.render: colour only on terminals without NO_COLOR, a distinct unknown state,
durations, progress text, aligned tables."""
from __future__ import annotations

import io

import pytest

from benchctl import render


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def job(status: str, **kw: object) -> dict:
    base = {"job_id": "0123456789ab", "status": status, "config": {"experiments": ["gmst_era"],
            "n": 50}, "requester_uid": 1000, "requester_name": "alice",
            "created_at": "2026-11-28T04:00:00+00:00", "started_at": "2026-11-28T04:00:01+00:00",
            "finished_at": "2026-11-28T04:01:31+00:00", "run_dir": "results/2026-11-28_04-00-01"}
    base.update(kw)
    return base


def test_colour_needs_a_terminal_and_no_NO_COLOR(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render.use_colour(Tty()) and not render.use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.use_colour(Tty())


def test_history_table_colours_states() -> None:
    jobs = [job("completed"), job("failed"), job("cancelled"), job("unknown")]
    coloured = render.job_rows(jobs, render.Out(colour=True))
    assert "\x1b[32mcompleted" in coloured and "\x1b[31mfailed" in coloured
    assert render.STATE_STYLE["cancelled"] + "cancelled" in coloured
    assert "\x1b[35;7munknown?" in coloured
    plain = render.job_rows(jobs, render.Out())
    assert "\x1b" not in plain and "unknown?" in plain
    lines = plain.splitlines()
    assert lines[0].split() == ["ID", "STATE", "STARTED", "DURATION", "EXPERIMENTS", "N",
                                "LABEL", "WHO", "RESULTS"]
    assert lines[1].split() == ["0123456789ab", "completed", "2026-11-28T04:00:01Z", "1m30s",
                                "gmst_era", "50", "-", "alice", "results/2026-11-28_04-00-01"]
    # columns line up: every row has its STATE at the same column
    col = lines[0].index("STATE")
    assert all(line[col - 2:col] == "  " for line in lines[1:])


def test_defaults_shown_plainly() -> None:
    row = render.job_rows([job("running", config={}, finished_at=None, run_dir=None)],
                          render.Out())
    cells = row.splitlines()[1].split()
    assert "all" in cells and "default" in cells and cells[-1] == "-"


def test_n_is_what_the_run_reported_once_it_started() -> None:
    assert render.n_text({}, None) == "default"
    assert render.n_text({"ci": True}, {"k": 1, "total": 2}) == "ci"   # not said yet
    assert render.n_text({"ci": True}, {"n": 200, "seed": 42}) == "200"
    assert render.n_text({"resume": "2026-01-01_00-00-00"}, None) == "stored"
    assert render.n_text({"resume": "2026-01-01_00-00-00"}, {"n": 10}) == "10"


@pytest.mark.parametrize("secs,text", [(None, "-"), (5.4, "5s"), (61, "1m01s"),
                                       (3600 * 2 + 120, "2h02m")])
def test_duration(secs: float | None, text: str) -> None:
    assert render.duration(secs) == text


def test_progress_text() -> None:
    assert render.progress_text({"k": 3, "total": 9, "experiment": "frame_rotation_bpn",
                                 "phase": "adapter", "adapter": "erfa"}) \
        == "3/9 experiments · frame_rotation_bpn · erfa"
    assert render.progress_text(None) == "" and render.progress_text({"k": 0, "total": 0}) == ""


def test_final_line() -> None:
    text = render.final_line(job("failed", exit_code=2, reason="orchestrator exited 2"), False)
    assert text.startswith("job 0123456789ab failed") and "exit code 2" in text


def test_cancelled_is_orange_where_the_terminal_can_show_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert render._orange() == "\x1b[38;5;208m"
    monkeypatch.setenv("TERM", "linux")
    assert render._orange() == "\x1b[33m"     # 8 colours: yellow is the nearest
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert render._orange() == "\x1b[38;5;208m"


def test_short_list_keeps_whole_names_and_counts_the_rest() -> None:
    names = ["gmst_era", "equ_ecl", "precession", "kepler_solver"]
    assert render.short_list(names, None) == ",".join(names)
    assert render.short_list(names, 100) == ",".join(names)
    assert render.short_list(names, 20) == "gmst_era,equ_ecl +2"
    assert render.short_list(names, 11) == "gmst_era +3"
    assert render.short_list(names, 7) == "gms… +3"


def test_table_fits_a_width_never_cutting_kept_columns() -> None:
    rows = [["0123456789ab", "a very long reason that goes on and on", ["x1", "x2", "x3"]]]
    text = render.table(["ID", "REASON", "LIST"], rows, None, False, 40, keep=(0,))
    assert all(len(line) <= 40 for line in text.splitlines()), text
    assert "0123456789ab" in text and "…" in text
    whole = render.table(["ID", "REASON", "LIST"], rows, None, False)
    assert "goes on and on" in whole and "x1,x2,x3" in whole


def test_times_for_a_person_and_for_a_script(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert render.short_time("2026-11-28T04:15:18+00:00") == "2026-11-28T04:15:18Z"
        assert render.short_time("2026-11-28T04:15:18+00:00", True) == "2026-11-28 13:15:18 JST"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    from datetime import datetime, timezone
    now = datetime(2026, 11, 28, 5, 0, tzinfo=timezone.utc)
    assert render.ago("2026-11-28T04:55:00+00:00", now) == "5 min ago"
    assert render.ago("2026-11-28T04:59:58+00:00", now) == "just now"
    assert render.ago("2026-11-26T04:00:00+00:00", now) == "2 days ago"
