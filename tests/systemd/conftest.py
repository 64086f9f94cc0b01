"""Fixtures for the systemd tests: a freshly booted systemd per test with benchd installed by
scripts/install-service (from the checkout's venv) and the fake orchestrator wired in."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.systemd.ctlib import Container, have_tools

TOOLS, SKIP_REASON = have_tools()


@pytest.fixture
def bare() -> Iterator[Container]:
    """A booted container with nothing of benchd installed."""
    if TOOLS is None:
        pytest.skip(SKIP_REASON)
    ct = Container(TOOLS)
    try:
        yield ct
    finally:
        ct.stop()


@pytest.fixture
def booted() -> Iterator[Container]:
    """A booted container with benchd installed (not started) and the fake orchestrator."""
    if TOOLS is None:
        pytest.skip(SKIP_REASON)
    ct = Container(TOOLS)
    try:
        ct.install()
        ct.use_fake_orchestrator()
        yield ct
    finally:
        try:
            # shown by pytest only when the test failed
            print("---- journal of benchd ----\n" + ct.journal()[-6000:])
        except Exception as exc:  # the container may be what broke
            print(f"(no journal: {exc!r})")
        ct.stop()


@pytest.fixture
def ct(booted: Container) -> Container:
    """benchd installed; only benchd.socket started (benchd itself is not running yet)."""
    booted.systemctl("start", "benchd.socket")
    return booted
