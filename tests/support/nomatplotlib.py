"""Simulate a machine without matplotlib: a sitecustomize.py, put first on PYTHONPATH, that
installs an import hook refusing `matplotlib` (and its submodules) with ImportError, exactly
what Python raises when the package is not installed. Uninstalling it from the shared .venv
is not an option (other tests and engineers use it), so absence is simulated this way, for
every interpreter started with that PYTHONPATH (benchd, its children, benchctl, pipeline)."""
from __future__ import annotations

from pathlib import Path

SITECUSTOMIZE = '''\
import sys


class _NoMatplotlib:
    """Refuses matplotlib as if it were not installed (tests/support/nomatplotlib.py)."""

    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoMatplotlib())
'''


def blocker_dir(where: Path) -> Path:
    """A directory holding the blocking sitecustomize.py; put it first on PYTHONPATH."""
    d = Path(where) / "no-matplotlib"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return d
