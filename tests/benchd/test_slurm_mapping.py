"""The Slurm executor's pure parts: a job's request to sbatch options, Slurm's answers
(squeue -O, sacct -c) to statuses, Slurm state names to benchd states. The commands
themselves are exercised against a real cluster in tests/slurm/."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchd.executors.slurm import (SlurmSettings, batch_script, check_time_limit,
                                    nice_for, parse_sacct, parse_squeue,
                                    sbatch_args)
from benchd.states import JobState, slurm_state


def test_sbatch_args_map_the_request_and_the_settings() -> None:
    args = sbatch_args("0123456789ab", Path("/lab"), Path("/lab/logs/0123456789ab.log"),
                       cpus=4, exclusive=True, memory_max_bytes=3 * (1 << 30) + 1,
                       priority=5, settings=SlurmSettings(partition="bench", account="lab",
                                                          time_limit="2:00:00",
                                                          extra=("--qos=x", "-C", "avx2")))
    assert "--job-name=benchd-0123456789ab" in args
    assert "--comment=benchd job 0123456789ab root /lab" in args
    assert "--output=/lab/logs/0123456789ab.log" in args and "--open-mode=append" in args
    assert "--cpus-per-task=4" in args and "--exclusive" in args
    assert "--mem=3073M" in args                      # rounded up to whole MiB
    assert "--nice=-5000" in args
    assert ["--partition=bench", "--account=lab", "--time=2:00:00"] == \
        [a for a in args if a.startswith(("--partition", "--account", "--time"))]
    assert args[-3:] == ["--qos=x", "-C", "avx2"]      # the admin's options last: they win


def test_sbatch_args_defaults_ask_for_one_cpu_and_no_memory_limit() -> None:
    args = sbatch_args("0123456789ab", Path("/lab"), Path("/l.log"))
    assert "--cpus-per-task=1" in args and "--nice=0" in args
    assert not [a for a in args if a.startswith(("--mem", "--exclusive", "--partition",
                                                 "--account", "--time"))]


def test_higher_priority_is_a_lower_nice_by_more_than_fifo_can_undo() -> None:
    assert [nice_for(p) for p in (10, 1, 0, -1, -10)] == sorted(
        nice_for(p) for p in (10, 1, 0, -1, -10))
    assert nice_for(1) - nice_for(0) <= -1000


def test_time_limit_is_checked_with_a_message_naming_it() -> None:
    for ok in ("30", "1:30", "2:00:00", "1-0", "1-12:00:00"):
        assert check_time_limit(ok) == ok
    with pytest.raises(ValueError, match="'an hour'"):
        check_time_limit("an hour")


def test_batch_script_execs_the_quoted_argv() -> None:
    assert batch_script(["/usr/bin/python3", "-m", "pipeline", "--label", "a b'c"]) == (
        "#!/bin/sh\nexec /usr/bin/python3 -m pipeline --label 'a b'\"'\"'c'\n")


def test_parse_squeue_keeps_state_reason_and_exit_status_as_slurm_says() -> None:
    out = ("12|PENDING|Priority|0|N/A|N/A|benchd-aaaaaaaaaaaa|benchd job aaaaaaaaaaaa root /x\n"
           "13|TIMEOUT|TimeLimit|15|2026-12-04T05:08:57|2026-12-04T05:10:08|benchd-b|c|with|bars\n"
           "14|CANCELLED|None|9|2026-12-04T05:08:57|2026-12-04T05:09:00|n|c\n")
    pend, tout, canc = parse_squeue(out)
    assert (pend.state, pend.reason, pend.start) == ("PENDING", "Priority", None)
    assert pend.comment == "benchd job aaaaaaaaaaaa root /x"
    assert pend.benchd_state == JobState.QUEUED and pend.text() == "PENDING (Priority)"
    assert (tout.exit_code, tout.signal) == (0, 15)    # raw wait status: killed by SIGTERM
    assert tout.comment == "c|with|bars" and tout.final
    assert tout.text() == "TIMEOUT (TimeLimit) ExitCode 0:15"
    (exited,) = parse_squeue("15|FAILED|NonZeroExitCode|36608|N/A|N/A|n|c\n")
    assert (exited.exit_code, exited.signal) == (143, 0)
    assert (canc.exit_code, canc.signal, canc.reason) == (0, 9, None)
    assert canc.benchd_state == JobState.CANCELLED


def test_parse_sacct_completion_log() -> None:
    (st,) = parse_sacct("7|OUT_OF_MEMORY|0:125|2026-12-04T05:00:00|2026-12-04T05:00:09|"
                        "benchd-x\n")
    assert (st.slurm_id, st.state, st.exit_code, st.signal) == ("7", "OUT_OF_MEMORY", 0, 125)
    assert st.benchd_state == JobState.FAILED and st.final


@pytest.mark.parametrize("name,state", [
    ("PENDING", JobState.QUEUED), ("RUNNING", JobState.RUNNING),
    ("COMPLETING", JobState.RUNNING), ("COMPLETED", JobState.COMPLETED),
    ("FAILED", JobState.FAILED), ("CANCELLED by 0", JobState.CANCELLED),
    ("TIMEOUT", JobState.FAILED), ("OUT_OF_MEMORY", JobState.FAILED),
    ("NODE_FAIL", JobState.FAILED), ("WHATEVER", None)])
def test_slurm_states_map_to_benchd_states(name: str, state: JobState | None) -> None:
    assert slurm_state(name) == state
