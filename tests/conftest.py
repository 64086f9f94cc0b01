"""Suite-wide test environment.

scripts/test runs the suite on two pytest-xdist workers with `--dist loadscope`: each module's
tests run on one worker, in order, so a module-scoped fixture (a real pipeline run, a template
run) is built once, as in a serial run.
"""
from __future__ import annotations

import os

# The terminal tests give benchctl a pseudo-terminal of a chosen size; COLUMNS/LINES inherited
# from whatever runs pytest (pytest-xdist workers export COLUMNS=80 LINES=24) would override it.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)
