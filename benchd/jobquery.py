"""History queries: which jobs a `GET /api/benchmark/jobs` page holds, and its cursor.

Records are kept oldest first (creation order), so a page is found by position, not by a scan
from the newest: the `before` cursor is a dict lookup, `since`/`until` are bisections on
created_at, and without predicate filters (status, user, label, experiment) a page costs
O(limit + log n) whatever its depth. With predicates the matching records are scanned
(and counted for `total`). The bisections assume creation order is created_at order, which
holds unless the wall clock is set back (a page is then still complete, `since`/`until` may
be off around the step).
"""
from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchd.schema import JobRecord
from benchd.states import JobState


@dataclass(frozen=True)
class JobQuery:
    """One page request. Times are UTC ISO-8601 in JobRecord.created_at's format."""
    limit: int | None = None
    before: str | None = None                  # a job id: only jobs created before it
    statuses: frozenset[JobState] | None = None
    user: str | None = None                    # requester_name
    label: str | None = None
    experiment: str | None = None              # jobs that ran it (all-experiment jobs too)
    since: str | None = None                   # created_at >= since
    until: str | None = None                   # created_at <= until

    def matches(self, rec: JobRecord) -> bool:
        if self.statuses is not None and rec.status not in self.statuses:
            return False
        if self.user is not None and rec.requester_name != self.user:
            return False
        if self.label is not None and rec.config.label != self.label:
            return False
        if self.experiment is not None:
            cfg = rec.config
            if cfg.resume is not None or (cfg.experiments is not None
                                          and self.experiment not in cfg.experiments):
                return False
        return True

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.statuses, self.user, self.label,
                                           self.experiment))


@dataclass(frozen=True)
class Page:
    jobs: list[JobRecord]
    next: str | None        # pass as `before` for the next (older) page; None: no more
    total: int              # jobs matching the filters, all pages together


def page(order: Sequence[str], index: Mapping[str, int], jobs: Mapping[str, JobRecord],
         q: JobQuery) -> Page:
    """The page of `q` over `order` (job ids, oldest first; index: id -> position).
    KeyError if `q.before` is not a known job id."""
    def created(job_id: str) -> str:
        return jobs[job_id].created_at

    lo = bisect.bisect_left(order, q.since, key=created) if q.since is not None else 0
    end = bisect.bisect_right(order, q.until, key=created) if q.until is not None else len(order)
    hi = min(end, index[q.before]) if q.before is not None else end
    out: list[JobRecord] = []
    nxt = None
    for i in range(hi - 1, lo - 1, -1):
        rec = jobs[order[i]]
        if not q.matches(rec):
            continue
        if q.limit is not None and len(out) >= q.limit:
            nxt = out[-1].job_id      # one more exists: the page is not the last
            break
        out.append(rec)
    if q.filtered:
        total = sum(1 for i in range(lo, end) if q.matches(jobs[order[i]]))
    else:
        total = max(0, end - lo)
    return Page(out, nxt, total)
