"""benchd.states: the one state table, its named transitions, and README's copy of it."""
from __future__ import annotations

import re
from pathlib import Path

from benchd.states import (ACTIVE, CANCELLABLE, ELIGIBLE, FINAL, STOPPING, TRANSITIONS, WAITING,
                           JobState, Transition, can_transition)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_state_is_active_waiting_or_final_exactly_once() -> None:
    groups = [ACTIVE, WAITING, FINAL]
    for s in JobState:
        assert sum(s in g for g in groups) == 1, s
    assert ELIGIBLE <= WAITING and JobState.PAUSED not in ELIGIBLE
    assert CANCELLABLE == frozenset(JobState) - FINAL


def test_final_states_have_no_successor_and_every_other_state_can_end() -> None:
    for s in FINAL:
        assert TRANSITIONS[s] == frozenset()
    for s in frozenset(JobState) - FINAL:
        assert TRANSITIONS[s] & FINAL, s
        assert JobState.CANCELLED in TRANSITIONS[s], f"{s} cannot be cancelled"


def test_named_transitions() -> None:
    for t in Transition:
        assert can_transition(*t.value), t
    assert can_transition(JobState.QUEUED, JobState.FAILED)       # a dependency failed
    assert not can_transition(JobState.QUEUED, JobState.RUNNING)  # always through starting
    assert not can_transition(JobState.PAUSED, JobState.STARTING)  # resume re-queues first
    assert not can_transition(JobState.QUEUED, JobState.COMPLETED)


def test_readme_states_table_lists_every_state_once() -> None:
    text = README.read_text()
    table = text.split("| state | meaning | may become |", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert sorted(names) == sorted(s.value for s in JobState)


def test_a_running_job_is_paused_or_preempted_through_a_stopping_state() -> None:
    """running -> pausing -> paused -> queued and running -> preempting -> preempted ->
    starting: a job stopped and kept always says first that it is stopping (it still holds
    its slot), never jumps from running to a waiting state."""
    for path in ([JobState.RUNNING, JobState.PAUSING, JobState.PAUSED, JobState.QUEUED],
                 [JobState.RUNNING, JobState.PREEMPTING, JobState.PREEMPTED, JobState.STARTING],
                 [JobState.PREEMPTING, JobState.PAUSING]):
        for old, new in zip(path, path[1:]):
            assert can_transition(old, new), (old, new)
    for waiting in WAITING:
        assert not can_transition(JobState.RUNNING, waiting), waiting
    assert STOPPING <= ACTIVE and not STOPPING & WAITING
