"""Fixtures shared by the job-layer tests (modules with a fixture of the same name override)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from benchd.jobs import JobManager
from tests.support import fake_orchestrator_argv, kill_job_processes, write_spec


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


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty benchd root."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
async def made(root: Path, spec: Callable[..., Path]
               ) -> AsyncIterator[Callable[..., Awaitable[JobManager]]]:
    """make(**kw) -> a reconciled JobManager on `root` running the fake orchestrator; all
    closed and their jobs killed at the end."""
    managers: list[JobManager] = []

    async def make(**kw: object) -> JobManager:
        m = JobManager(root, orchestrator=fake_orchestrator_argv(), grace=2.0, **kw)
        await m.reconcile()
        managers.append(m)
        return m
    yield make
    for m in managers:
        await m.close()
        for rec in m.list_jobs():
            kill_job_processes(rec.job_id)
