"""Retention: pins, pruning and archival of result runs and old job records.

- policy.py: the pure decision: given every run's age, size, pin and use, what goes and why.
- prune.py: carrying it out crash-safely (rename into a trash directory, then delete) and the
  audit trail (benchd's log and logs/retention.jsonl).
- service.py: when it runs (hourly, below the free-space watermark, before a 507) and what
  the API asks of it.
Nothing is ever deleted unless an operator set a policy (all options are off by default).
"""
