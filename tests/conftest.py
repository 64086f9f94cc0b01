"""Suite-wide grouping for parallel runs (scripts/test: pytest-xdist, `-n 2 --dist loadgroup`).

Every test joins its module's group, so a module's tests run on one worker, in order, and a
module-scoped fixture (a real pipeline run, a template run, a booted daemon) is built once,
as in a serial run. Every test that creates real system users (the `system_users` fixture)
joins one group instead, so useradd/userdel never contend for /etc/passwd from two workers.
Without xdist the markers do nothing.
"""
from __future__ import annotations

import os

import pytest

SYSTEM_USERS_GROUP = "system-users"

# The terminal tests give benchctl a pseudo-terminal of a chosen size; COLUMNS/LINES inherited
# from whatever runs pytest (pytest-xdist workers export COLUMNS=80 LINES=24) would override it.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)


@pytest.hookimpl(tryfirst=True)   # before xdist appends the group to each test's node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if "system_users" in getattr(item, "fixturenames", ()):
            group = SYSTEM_USERS_GROUP
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
