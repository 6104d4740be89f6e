"""Work started by Slack requests, tracked so a shutdown can wait for it.

Shutdown is graceful because a replica is stopped on every deploy: Bolt acknowledges a click at
once and applies the decision in a background task, so a process that simply exited would drop
decisions people already saw acknowledged. On SIGTERM the server stops taking requests, waits
(bounded, :data:`SHUTDOWN_GRACE_SECONDS`) for the work those requests started, and only then
closes the database pools.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, cast

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 25.0  # under the 30 s most orchestrators wait before SIGKILL


_REQUEST_WORK: contextvars.ContextVar[InflightWork | None] = contextvars.ContextVar(
    "request_work", default=None
)


class InflightWork:
    """The asyncio tasks started while handling Slack requests, so shutdown can wait for them.

    Bolt runs each listener in a task it creates after ``ack()`` and never joins. Rather than
    wrapping each listener, a request is handled inside :meth:`request_scope`, and a task factory
    adopts every task created in that scope (the scope is a context variable, which new tasks
    inherit, so tasks those tasks start are adopted too). New listeners need no extra care,
    and neither does a transport without the scope: :func:`adopting_middleware` opens it for
    every request Bolt dispatches.
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        token = _REQUEST_WORK.set(self)
        try:
            yield
        finally:
            _REQUEST_WORK.reset(token)

    def adopt(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` s for adopted tasks; cancel the rest; return how many were."""
        self.draining = True
        current = asyncio.current_task()
        waiting = {task for task in self.tasks if task is not current and not task.done()}
        if waiting:
            log.info("waiting for %d in-flight request task(s) to finish", len(waiting))
            _, late = await asyncio.wait(waiting, timeout=grace)
            # A task can start another while finishing; those are part of the same work.
            while not late and (more := {t for t in self.tasks if t is not current} - waiting):
                waiting |= more
                _, late = await asyncio.wait(more, timeout=grace)
            if late:
                log.warning("cancelling %d task(s) still running after %.0f s", len(late), grace)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=5)
                return len(late)
        return 0


Next = Callable[[], Awaitable[None]]


def adopting_middleware(work: InflightWork) -> Callable[[Next], Awaitable[None]]:
    """A Bolt global middleware that puts the request in ``work``'s scope, so the listener
    tasks Bolt starts for it are adopted even when the transport opened no
    :meth:`InflightWork.request_scope` (a Socket Mode handler built without it, a test that
    dispatches to the app itself). Without it such a listener outlived the bot's exit: the
    pools closed under a running decision, which then failed with ``PoolClosed``.

    Bolt starts a request's listeners after its global middleware returned, in the task that
    ran it, so the scope is entered here and not left: it lasts as long as that task (one per
    request, in every transport Bolt has), or until the transport's own ``request_scope``
    exits, which restores what was there before.
    """

    async def adopt_listeners(next: Next) -> None:  # Bolt passes arguments by name
        _REQUEST_WORK.set(work)
        await next()

    return adopt_listeners


TaskFactory = Callable[..., "asyncio.Future[Any]"]


def install_task_tracking(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` hand tasks created in a request scope to that scope's :class:`InflightWork`.

    Idempotent; an existing task factory (e.g. eager tasks) is kept and wrapped.
    """
    previous = cast(TaskFactory | None, loop.get_task_factory())
    if getattr(previous, "_adopts_request_work", False):
        return

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        context: contextvars.Context | None = kwargs.get("context")
        owner = context.get(_REQUEST_WORK) if context is not None else _REQUEST_WORK.get()
        if owner is not None and isinstance(task, asyncio.Task):
            owner.adopt(task)
        return task

    factory._adopts_request_work = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)  # type: ignore[arg-type]
