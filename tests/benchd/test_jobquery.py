"""benchd.jobquery against the obvious definition: for random histories and queries, walking
the pages with the `next` cursor yields exactly the matching jobs, newest first, each once,
and `total` counts them (hypothesis-generated cases)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from benchd.jobquery import JobQuery, page
from benchd.schema import JobConfig, JobRecord
from benchd.states import JobState

STATES = list(JobState)
TIMES = [f"2026-12-0{d}T{h:02d}:00:00.000+00:00" for d in (1, 2, 3) for h in (0, 6, 12, 18)]

record = st.builds(
    lambda i, t, s, u, lab, exps: JobRecord(
        job_id=f"{i:012x}", status=s, config=JobConfig(experiments=exps, label=lab),
        requester_uid=0, requester_name=u, created_at=t),
    st.integers(0, 2**40), st.sampled_from(TIMES), st.sampled_from(STATES),
    st.sampled_from(["alice", "bob"]), st.sampled_from([None, "nightly"]),
    st.sampled_from([None, ["gmst_era"], ["equ_ecl", "gmst_era"], ["equ_ecl"]]))
query = st.builds(
    JobQuery, limit=st.integers(1, 7),
    statuses=st.none() | st.frozensets(st.sampled_from(STATES), min_size=1),
    user=st.none() | st.sampled_from(["alice", "bob", "carol"]),
    label=st.none() | st.just("nightly"), experiment=st.none() | st.just("equ_ecl"),
    since=st.none() | st.sampled_from(TIMES), until=st.none() | st.sampled_from(TIMES))


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=40, unique_by=lambda r: r.job_id), query)
def test_walking_the_pages_yields_exactly_the_matching_jobs(records, q) -> None:
    records.sort(key=lambda r: (r.created_at, r.job_id))
    order = [r.job_id for r in records]
    index = {job_id: i for i, job_id in enumerate(order)}
    jobs = {r.job_id: r for r in records}
    expected = [r.job_id for r in reversed(records) if q.matches(r)
                and (q.since is None or r.created_at >= q.since)
                and (q.until is None or r.created_at <= q.until)]
    walked, cursor = [], None
    for _ in range(len(records) + 2):
        p = page(order, index, jobs, JobQuery(**{**q.__dict__, "before": cursor}))
        assert p.total == len(expected) and len(p.jobs) <= q.limit
        walked += [r.job_id for r in p.jobs]
        cursor = p.next
        if cursor is None:
            break
    assert walked == expected
