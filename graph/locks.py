"""One run at a time per thread, across every process that shares the database.

LangGraph has no per-thread lock: two resumes of one interrupt would both run the node. A lease
row in PostgreSQL serialises runs across replicas without holding a connection for the whole run
(a hundred threads waiting on the model must not exhaust the pool), and expires if its holder
dies. Inside one process an ``asyncio.Lock`` per thread queues waiters without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg
import psycopg_pool

from graph.db import Pool

log = logging.getLogger(__name__)


class LeaseTimeout(TimeoutError):
    """The thread stayed busy longer than a caller is willing to wait."""


RELEASE_SQL = "DELETE FROM agent_thread_leases WHERE thread_id = %s AND holder = %s"


@dataclass
class Lease:
    """A held thread. A statement given to :meth:`on_release` rides along with the release,
    as a data-modifying CTE of the same statement: one round trip instead of two. If the rider
    fails, the thread is still released, without it."""

    thread_id: str
    holder: str
    rider: tuple[LiteralString, tuple[Any, ...]] | None = None

    def on_release(self, statement: LiteralString, params: tuple[Any, ...]) -> None:
        """Run ``statement`` (an INSERT, UPDATE or DELETE) with the release."""
        self.rider = (statement, params)

    def release_statement(self) -> tuple[LiteralString, tuple[Any, ...]]:
        if self.rider is None:
            return RELEASE_SQL, (self.thread_id, self.holder)
        statement, params = self.rider
        return (
            "WITH rider AS (" + statement + ") " + RELEASE_SQL,
            (*params, self.thread_id, self.holder),
        )


@dataclass
class ThreadLeases:
    pool: Pool
    ttl_seconds: float = 30.0
    wait_seconds: float = 120.0
    poll_seconds: float = 0.02
    holder_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _local: dict[str, asyncio.Lock] = field(default_factory=dict)
    _waiters: dict[str, int] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, thread_id: str) -> AsyncIterator[Lease]:
        """Hold the thread for the duration of the block, renewing the lease as it runs.

        ``wait_seconds`` bounds the whole wait, in this process (behind another run of the
        same thread here) and in the database (behind another replica's): past it,
        :class:`LeaseTimeout`. A short-waiting copy of these leases (retention's) shares the
        in-process locks, so it gives up on a thread busy here as soon as on one busy
        elsewhere, instead of waiting for the run to end."""
        lock = self._local.setdefault(thread_id, asyncio.Lock())
        self._waiters[thread_id] = self._waiters.get(thread_id, 0) + 1
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        try:
            await self._enter(lock, thread_id)
            try:
                holder = f"{self.holder_prefix}:{uuid.uuid4().hex[:8]}"
                await self._acquire(thread_id, holder, deadline)
                # Most runs end long before the first renewal is due: a timer costs less than
                # a task started (and cancelled) for every run.
                renewer: list[asyncio.Task[None]] = []
                timer = asyncio.get_running_loop().call_later(
                    self.ttl_seconds / 3,
                    lambda: renewer.append(asyncio.create_task(self._renew(thread_id, holder))),
                )
                lease = Lease(thread_id, holder)
                try:
                    yield lease
                finally:
                    timer.cancel()
                    for task in renewer:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    await self._release(lease)
            finally:
                lock.release()
        finally:
            self._waiters[thread_id] -= 1
            if not self._waiters[thread_id]:
                del self._waiters[thread_id]
                self._local.pop(thread_id, None)

    async def _enter(self, lock: asyncio.Lock, thread_id: str) -> None:
        """Take this process's lock of the thread, waiting at most ``wait_seconds`` (a free
        lock, the usual case, is taken without a timer)."""
        if not lock.locked():
            await lock.acquire()
            return
        try:
            await asyncio.wait_for(lock.acquire(), self.wait_seconds)
        except TimeoutError:
            raise self._timeout(thread_id) from None

    def _timeout(self, thread_id: str) -> LeaseTimeout:
        return LeaseTimeout(f"thread {thread_id} stayed busy for {self.wait_seconds}s")

    async def _acquire(self, thread_id: str, holder: str, deadline: float) -> None:
        delay = self.poll_seconds
        while not await self._try(thread_id, holder):
            if asyncio.get_running_loop().time() > deadline:
                raise self._timeout(thread_id)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _try(self, thread_id: str, holder: str) -> bool:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    """
                INSERT INTO agent_thread_leases AS l (thread_id, holder, expires_at)
                VALUES (%s, %s, now() + make_interval(secs => %s))
                ON CONFLICT (thread_id) DO UPDATE
                    SET holder = excluded.holder, expires_at = excluded.expires_at
                    WHERE l.expires_at < now()
                RETURNING holder
                """,
                    (thread_id, holder, self.ttl_seconds),
                )
            ).fetchone()
        return row is not None

    async def _renew(self, thread_id: str, holder: str) -> None:
        """Renew now (the first third of the lease has passed), then every third."""
        while True:
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(
                        "UPDATE agent_thread_leases SET expires_at = now() + "
                        "make_interval(secs => %s) WHERE thread_id = %s AND holder = %s",
                        (self.ttl_seconds, thread_id, holder),
                    )
            except Exception:  # the run goes on; the next renewal may succeed
                log.warning("could not renew the lease on thread %s", thread_id, exc_info=True)
            await asyncio.sleep(self.ttl_seconds / 3)

    async def _release(self, lease: Lease) -> None:
        try:
            await self._execute(*lease.release_statement())
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout):  # expires by itself
            log.warning("could not release the lease on thread %s", lease.thread_id, exc_info=True)
        except Exception:
            # The rider failed (the release rolled back with it): release the thread anyway
            # rather than keep it locked until the lease expires.
            log.exception("could not run the release rider on thread %s", lease.thread_id)
            with contextlib.suppress(Exception):
                await self._execute(RELEASE_SQL, (lease.thread_id, lease.holder))

    async def _execute(self, statement: LiteralString, params: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(statement, params)
