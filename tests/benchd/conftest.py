"""Fixtures shared by the job-layer tests (modules with a fixture of the same name override)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import write_spec


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Set the fake orchestrator's behaviour for jobs started after the call (a short
    successful run until a test says otherwise)."""
    path = tmp_path / "spec.json"
    monkeypatch.setenv("FAKE_ORCHESTRATOR_SPEC", str(path))

    def set_spec(**kw: object) -> Path:
        return write_spec(path, **kw)
    set_spec()
    return set_spec
