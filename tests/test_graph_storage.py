"""Long conversations are stored in chunks (graph/chunks.py): nothing is lost or trimmed, a
step writes a small header instead of the whole history, another process reads the same thing,
and pruning deletes exactly the chunks no kept checkpoint names. Real PostgreSQL throughout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from psycopg import DataError

from graph import RunOutcome, chunks
from graph.db import PooledPostgresSaver, migrate, open_pool
from graph.service import thread_config
from tests.conftest import AgentFactory
from tests.support.counting_tools import registry_with
from tests.support.graph_helpers import state_messages
from tests.support.scripted_model import ScriptedModel, tool_calls

TURNS = 12  # four messages a turn: 48 messages, three full chunks
NOTE = "n" * 600


def script(turns: int) -> ScriptedModel:
    replies: list[AIMessage] = []
    for turn in range(turns):
        replies += [tool_calls(("record_note", {"note": f"turn {turn}"})), AIMessage("noted")]
    return ScriptedModel(replies)


async def blob_rows(database_url: str, thread_id: str) -> list[dict[str, Any]]:
    async with open_pool(database_url, max_size=1) as pool, pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT channel, version, type, length(blob) AS size FROM checkpoint_blobs"
            " WHERE thread_id = %s",
            (thread_id,),
        )
        return list(await cursor.fetchall())


def contents(messages: list[BaseMessage]) -> list[tuple[str, str | None, Any]]:
    return [(type(m).__name__, m.id, m.content) for m in messages]


async def test_a_long_conversation_reads_back_whole_in_another_process(
    agent_factory: AgentFactory, database_url: str, thread_id: str
) -> None:
    async with agent_factory(script(TURNS), registry_with()) as service:
        for turn in range(TURNS):
            started = await service.start_turn(thread_id, f"{turn}: {NOTE}", user="U1")
            assert isinstance(started, RunOutcome) and len(started.pending) == 1
            decision: dict[str, Any] = {"action": "continue", "by": "U2"}
            if turn == TURNS - 1:
                decision = {"action": "update", "data": {"note": "edited"}, "by": "U2"}
            answered = await service.answer(thread_id, started.pending[0].interrupt_id, decision)
            assert isinstance(answered, RunOutcome) and answered.reply == "noted"
        written = await state_messages(service, thread_id)

    assert len(written) == 4 * TURNS
    assert [m.content for m in written if isinstance(m, HumanMessage)] == [
        f"{turn}: {NOTE}" for turn in range(TURNS)
    ]
    rows = await blob_rows(database_url, thread_id)
    headers = [r for r in rows if r["type"].startswith(chunks.CHUNKED_TYPE_PREFIX)]
    stored_chunks = [r for r in rows if r["channel"] == chunks.chunks_channel("messages")]
    assert headers, "a 48-message conversation is stored chunked"
    assert len(stored_chunks) >= len(written) // chunks.CHUNK_ITEMS
    # the header holds the tail, not the history: far smaller than the conversation
    assert max(r["size"] for r in headers) < 0.4 * sum(r["size"] for r in stored_chunks)

    async with agent_factory(ScriptedModel([]), registry_with()) as fresh:  # a new replica
        read = await state_messages(fresh, thread_id)
    assert contents(read) == contents(written)
    edited = [m for m in read if isinstance(m, AIMessage) and m.tool_calls][-1]
    assert edited.tool_calls[0]["args"] == {"note": "edited"}


@pytest.fixture
async def saver(database_url: str) -> AsyncIterator[PooledPostgresSaver]:
    async with open_pool(database_url, max_size=4) as pool:
        saver = PooledPostgresSaver(pool)
        await migrate(pool, (), saver.setup)
        yield saver


def conversation(count: int) -> list[BaseMessage]:
    return [HumanMessage(f"message {i}", id=f"m{i}") for i in range(count)]


async def put(
    saver: PooledPostgresSaver,
    thread_id: str,
    messages: list[BaseMessage],
    version: int,
    parent: str | None = None,
    checkpoint_id: str | None = None,
) -> str:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = checkpoint_id or checkpoint["id"]
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": f"{version:032}"}
    config = thread_config(thread_id)
    config["configurable"].update(checkpoint_ns="", checkpoint_id=parent)
    saved = await saver.aput(config, checkpoint, {}, {"messages": f"{version:032}"})
    return str(saved["configurable"]["checkpoint_id"])


async def read_back(database_url: str, thread_id: str) -> list[BaseMessage]:
    """Through a saver with nothing in memory, as another replica would."""
    async with open_pool(database_url, max_size=2) as pool:
        loaded = await PooledPostgresSaver(pool).aget_tuple(thread_config(thread_id))
    assert loaded is not None
    return list(loaded.checkpoint["channel_values"]["messages"])


def chunk_digests(rows: list[dict[str, Any]]) -> set[str]:
    return {r["version"] for r in rows if r["channel"] == chunks.chunks_channel("messages")}


async def test_a_replaced_message_in_an_old_chunk_is_stored_and_the_old_chunk_pruned(
    saver: PooledPostgresSaver, database_url: str
) -> None:
    thread_id = f"test-{uuid.uuid4().hex[:12]}"
    messages = conversation(40)  # two full chunks and a tail of 8
    first = await put(saver, thread_id, messages, 1)
    before = chunk_digests(await blob_rows(database_url, thread_id))
    assert len(before) == 2

    changed = [*messages[:3], HumanMessage("replaced", id="m3"), *messages[4:], *conversation(2)]
    await put(saver, thread_id, changed, 2, parent=first)
    after_write = chunk_digests(await blob_rows(database_url, thread_id))
    new = after_write - before
    assert len(new) == 1, "only the chunk holding the replaced message is new"
    assert contents(await read_back(database_url, thread_id)) == contents(changed)

    await saver.aprune([thread_id])
    kept = chunk_digests(await blob_rows(database_url, thread_id))
    assert len(kept) == 2 and new <= kept, "the replaced chunk is gone, the new one kept"
    assert len(before & kept) == 1, "the unchanged chunk is still shared"
    assert contents(await read_back(database_url, thread_id)) == contents(changed)


async def test_a_failed_write_is_not_taken_as_stored(
    saver: PooledPostgresSaver, database_url: str
) -> None:
    thread_id = f"test-{uuid.uuid4().hex[:12]}"
    messages = conversation(48)
    with pytest.raises(DataError, match="NUL"):
        # a text column cannot hold NUL: the checkpoint row fails after the chunk rows
        await put(saver, thread_id, messages, 1, checkpoint_id="bad\x00id")
    assert saver.chunk_memory.stored((thread_id, "", "messages")) == ()

    async with saver._cursor() as cur:  # as if the failed write had lost its chunk rows too
        await cur.execute("DELETE FROM checkpoint_blobs WHERE thread_id = %s", (thread_id,))
    await put(saver, thread_id, messages, 2)
    assert len(chunk_digests(await blob_rows(database_url, thread_id))) == 3
    assert contents(await read_back(database_url, thread_id)) == contents(messages)


def test_split_encodes_only_chunks_it_has_not_stored() -> None:
    encoded: list[list[Any]] = []

    def dumps(value: Any) -> tuple[str, bytes]:
        encoded.append(value)
        return "repr", repr([m.content for m in value]).encode()

    messages = conversation(2 * chunks.CHUNK_ITEMS + 5)
    first = chunks.split(messages, (), dumps)
    assert len(first.new) == 2 and first.header["tail"] == messages[-5:]
    assert chunks.joined(first.chunks, first.header["tail"]) == messages

    appended = chunks.split([*messages, *conversation(chunks.CHUNK_ITEMS)], first.chunks, dumps)
    assert [c.digest for c in appended.chunks[:2]] == first.header["chunks"]
    assert len(appended.new) == 1  # the old tail filled up the third chunk

    equal_copies = [m.model_copy() for m in messages]  # equal but not the stored objects
    again = chunks.split(equal_copies, first.chunks, dumps)
    assert len(again.new) == 2 and [c.digest for c in again.chunks] == first.header["chunks"]
    assert not chunks.is_chunked(conversation(2 * chunks.CHUNK_ITEMS - 1))
