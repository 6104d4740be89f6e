"""Switch one exactly-once guard off, so a test can show the other one holds on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from graph import AgentService
from graph.locks import Lease


@contextmanager
def lease_bypassed(service: AgentService) -> Iterator[list[str]]:
    """Every ``leases.hold`` of ``service`` holds nothing (and rides nothing along): runs of
    one thread may overlap. Yields the threads "held", so a test can see the bypass was used."""
    held: list[str] = []

    @asynccontextmanager
    async def hold(thread_id: str) -> AsyncIterator[Lease]:
        held.append(thread_id)
        yield Lease(thread_id, "bypassed")

    original: Any = service.leases.hold
    service.leases.hold = hold  # type: ignore[method-assign]
    try:
        yield held
    finally:
        service.leases.hold = original  # type: ignore[method-assign]
