"""The retention planner against random runs: random ages, sizes, pins and use, random
policies. Nothing protected is ever deleted, and the rules' arithmetic holds."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from benchd.retention.policy import DAY_S, Policy, RunFacts, plan, protection

NOW = 2_000_000_000.0


@st.composite
def runs(draw):
    n = draw(st.integers(0, 25))
    ages = draw(st.lists(st.floats(0, 400), min_size=n, max_size=n, unique=True))
    out = []
    for i, age in enumerate(ages):
        created = NOW - age * DAY_S
        # ids follow creation time, as real run ids do (name order = start order)
        out.append(RunFacts(run_id=f"{int(created):012d}_{i:02d}", created=created,
                            size=draw(st.integers(0, 10_000)), pinned=draw(st.booleans()),
                            in_use=draw(st.integers(0, 9)) == 0, archived=draw(st.booleans()),
                            staged=draw(st.integers(0, 5)) == 0))
    return out


policies = st.builds(
    Policy,
    keep_days=st.none() | st.floats(0.5, 300),
    keep_runs=st.none() | st.integers(1, 10),
    max_size=st.none() | st.integers(0, 100_000),
    archive_after=st.none() | st.floats(0.5, 300))


@settings(max_examples=400, deadline=None)
@given(runs(), policies, st.integers(0, 50_000))
def test_nothing_protected_goes_and_the_rules_hold(facts, policy, need):
    actions, kept = plan(facts, policy, NOW, need)
    by_id = {r.run_id: r for r in facts}
    protected = protection(facts, policy)
    deleted = {a.run_id for a in actions if a.kind == "delete"}
    archived = {a.run_id for a in actions if a.kind == "archive"}
    published = sorted((r for r in facts if not r.staged), key=lambda r: r.run_id, reverse=True)

    # never deleted: pinned, in use, the newest published run, the newest keep_runs
    for r in facts:
        if r.pinned or r.in_use:
            assert r.run_id not in deleted
            if r.pinned or r.in_use:
                assert r.run_id not in archived
    if published:
        assert published[0].run_id not in deleted
    if policy.keep_runs:
        assert not deleted & {r.run_id for r in published[:policy.keep_runs]}
    assert not deleted & set(protected)
    assert not deleted & archived
    # staged runs only ever go by keep-days
    for a in actions:
        if by_id[a.run_id].staged:
            assert a.kind == "delete" and a.rule == "keep-days"
    # keep-days: every unprotected run older than D is deleted, and nothing younger by it
    if policy.keep_days is not None:
        for r in facts:
            old = (NOW - r.created) / DAY_S > policy.keep_days
            if old and r.run_id not in protected:
                assert r.run_id in deleted
        for a in actions:
            if a.rule == "keep-days":
                assert a.age_days > policy.keep_days
    # max-size: afterwards within the size, or every published run left is protected; and
    # the runs it took are older than every unprotected run it left
    if policy.max_size is not None:
        left = [r for r in published if r.run_id not in deleted]
        total = sum(r.size for r in left)
        assert total <= policy.max_size or all(r.run_id in protected for r in left) or any(
            a.rule == "min-free" for a in actions)
        taken = [by_id[a.run_id] for a in actions if a.rule == "max-results-size"]
        if taken:
            newest_taken = max(r.created for r in taken)
            for r in left:
                if r.run_id not in protected and r.created < newest_taken:
                    assert False, f"{r.run_id} is older than a run taken by size, but kept"
    # min-free only when a policy is set; stops once enough is freed
    pressure = [a for a in actions if a.rule == "min-free"]
    if pressure:
        assert policy.enabled
        before = sum(a.size for a in actions if a.kind == "delete" and a.rule != "min-free")
        assert before + sum(a.size for a in pressure[:-1]) < need
    if not policy.enabled:
        assert not deleted - {a.run_id for a in actions if a.rule == "keep-days"}
    # archive-after: only old, unpinned, not in use, not already archived, not deleted
    for a in actions:
        if a.kind == "archive":
            r = by_id[a.run_id]
            assert not r.archived and not r.staged and a.age_days > policy.archive_after
    # what a 507 names when space could not be found: every protected run
    if need and sum(a.size for a in actions if a.kind == "delete") < need:
        assert {k.run_id for k in kept} >= set(protected)
