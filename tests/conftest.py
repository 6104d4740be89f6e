"""Shared fixtures: one real PostgreSQL per test session (the embedded wheel unless
``TEST_DATABASE_URL`` names another server).

A session stopped with SIGTERM (a CI timeout, ``kill``, ``./dev test`` stopped: it ``exec``s
pytest, so the signal reaches this process) is interrupted like Ctrl-C, so the session's
fixtures are finalized: the embedded servers stop and their data directories are removed.
Python's default SIGTERM ends the process at once, without finalizers or ``atexit``.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import FrameType

import pytest

from graph import AgentService, AgentSettings, open_agent
from graph.db import start_embedded_postgres, stop_embedded_postgres
from graph.model import ChatModel
from graph.tools.registry import ToolRegistry
from tests.support.bot_harness import SlackEnv, running_slack_env
from tests.support.langgraph_dev import langgraph_dev  # noqa: F401  (session fixture)


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn the first SIGTERM into KeyboardInterrupt; later ones must not cut the clean-up
    short (a do-nothing handler, not SIG_IGN, which the clean-up's child processes inherit)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # nobody else wanted it
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def remove_embedded_postgres(data_dir: Path) -> None:
    """Stop the server of ``data_dir`` and delete the directory; idempotent."""
    stop_embedded_postgres(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Its own directory, outside pytest's rotating temp dirs (the server runs as another
    system user when we are root, and must be able to reach it). Removed when the session
    ends, and at exit should the fixture's finalizer never run."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix="approval-bot-test-pg-"))
    data_dir.chmod(0o755)
    cleanup = functools.partial(remove_embedded_postgres, data_dir)
    atexit.register(cleanup)
    try:
        yield start_embedded_postgres(data_dir)
    finally:
        cleanup()
        atexit.unregister(cleanup)


@pytest.fixture
def thread_id() -> str:
    """A fresh conversation id per test, so tests share the database but not threads."""
    return f"test-{uuid.uuid4().hex[:12]}"


AgentFactory = Callable[..., AbstractAsyncContextManager[AgentService]]


@pytest.fixture
def agent_factory(database_url: str) -> AgentFactory:
    """Open a service on the test database with a given model and tool registry."""

    def factory(
        model: ChatModel | None = None, registry: ToolRegistry | None = None, **settings: object
    ) -> AbstractAsyncContextManager[AgentService]:
        return open_agent(
            AgentSettings(database_url=database_url, **settings),  # type: ignore[arg-type]
            model=model,
            registry=registry,
        )

    return factory


@pytest.fixture
async def offline_agent(agent_factory: AgentFactory) -> AsyncIterator[AgentService]:
    async with agent_factory() as service:
        yield service


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    """The real bot behind the Slack sandbox, with `running_slack_env`'s defaults (the demo
    model and tools, everyone an approver). A module that wants another bot defines its own
    ``env`` fixture, which takes the place of this one for that module."""
    async with running_slack_env(database_url) as slack_env:
        yield slack_env
