"""Running a coroutine to completion from sync code, for the graph's sync faces.

The hosted graph serves ``invoke``/``stream`` as well as ``ainvoke``/``astream``; a model with
only ``ainvoke`` (a test's scripted model) or a tool with only a coroutine (an MCP tool) must
still run there, in LangGraph's context (its config lives in context variables).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_sync(start: Callable[[], Awaitable[T]]) -> T:
    """Await ``start()`` from sync code, keeping the caller's context variables: on this
    thread when no event loop runs on it, else on a short-lived worker thread (a sync
    ``invoke`` called from inside async code, whose loop is busy waiting for it)."""

    async def main() -> T:
        return await start()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, main()).result()
