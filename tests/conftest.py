"""Shared fixtures: one real PostgreSQL per test session (the embedded wheel unless
``TEST_DATABASE_URL`` names another server)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from graph import AgentService, AgentSettings, open_agent
from graph.db import start_embedded_postgres, stop_embedded_postgres
from graph.model import ChatModel
from graph.tools.registry import ToolRegistry


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Its own directory, outside pytest's rotating temp dirs (the server runs as another
    system user when we are root, and must be able to reach it)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix="approval-bot-test-pg-"))
    data_dir.chmod(0o755)
    yield start_embedded_postgres(data_dir)
    stop_embedded_postgres(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


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
