"""Two ``python -m bot`` replicas on one PostgreSQL behind a round-robin forwarder.

Slack (the sandbox) knows one Request URL; a loopback forwarder hands each request, bytes and
signature headers untouched, to the replicas in turn. Twenty simultaneous Approve clicks spread
over both run the tool once and tell the other nineteen clickers who decided; a conversation
whose messages and clicks land on alternating replicas behaves like one bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.server import Sandbox
from tests.support.bot_harness import ALICE, BOB, BOT, text_of
from tests.support.chaos import (
    Replicas,
    bot_replies,
    bounded_wait,
    buttons_of,
    review_of,
    running_replicas,
)

GENERAL, RANDOM = "C0GENERAL", "C0RANDOM"


@pytest.fixture
async def replicas(database_url: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    async with running_replicas(database_url, tmp_path, "chaos_replicas") as running:
        yield running


def said(sandbox: Sandbox, thread: str, words: str) -> list[str]:
    return [text_of(m) for m in bot_replies(sandbox, GENERAL, thread) if words in text_of(m)]


async def test_twenty_clicks_over_two_replicas_run_the_tool_once(replicas: Replicas) -> None:
    sandbox, front = replicas.sandbox, replicas.front
    thread = await sandbox.post_message(ALICE, "#general", f'<@{BOT}> post "once only" to #random')
    review = await bounded_wait(lambda: review_of(sandbox, GENERAL, thread, "post_message"), 15)
    assert review and buttons_of(review)
    before = list(front.hits)

    clicks = [
        sandbox.click_button(user, GENERAL, review["ts"], "review_approve")
        for user in [ALICE, BOB] * 10
    ]
    responses = await asyncio.gather(*clicks)
    spread = [after - earlier for after, earlier in zip(front.hits, before, strict=True)]

    def stale_notices() -> list[str]:
        return [
            e["text"]
            for user in (ALICE, BOB)
            for e in sandbox.ephemerals(user)
            if "already approved by" in e["text"]
        ]

    done = await bounded_wait(lambda: said(sandbox, thread, "Done."), 15)

    def told_both() -> bool:  # each late clicker is told; the same note once per replica
        return all(
            any("already approved by" in e["text"] for e in sandbox.ephemerals(user))
            for user in (ALICE, BOB)
        )

    notices = await bounded_wait(told_both, 15)
    await asyncio.sleep(0.5)  # a twentieth note or a second run would show up by now
    posts = [m for m in sandbox.messages(RANDOM) if m.get("text") == "once only"]
    attempts = [
        c for c in sandbox.calls_of("conversations.history") if c.args.get("channel") == RANDOM
    ]
    decided = [
        m
        for m in bot_replies(sandbox, GENERAL, thread)
        if str(m.get("text")).startswith("Approved")
    ]
    print(
        "replicas summary:",
        {
            "clicks_per_replica": spread,
            "stale_notices": len(stale_notices()),
            "posts": len(posts),
            "tool_attempts": len(attempts),
        },
    )
    assert [r.status for r in responses] == [200] * 20
    assert min(spread) >= 5, spread  # the clicks really were spread over both replicas
    assert done and len(done) == 1
    assert notices and 2 <= len(stale_notices()) <= 4, stale_notices()
    assert len(posts) == 1 and len(attempts) == 1
    assert len(decided) == 1 and "Approved by <@U0" in text_of(decided[0])
    assert not buttons_of(decided[0])


async def test_a_conversation_over_alternating_replicas_behaves_like_one_bot(
    replicas: Replicas,
) -> None:
    sandbox, front = replicas.sandbox, replicas.front
    before = list(front.hits)
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Oslo?")
    first = await bounded_wait(lambda: review_of(sandbox, GENERAL, thread, "weather_search"), 15)
    assert first and "Oslo" in text_of(first)

    # A reply while the review waits: one reminder, from whichever replica got it.
    await sandbox.post_message(ALICE, "#general", "and the weather in Rome?", thread)
    assert await bounded_wait(lambda: said(sandbox, thread, "pending review"), 15)
    await sandbox.click_button(BOB, GENERAL, first["ts"], "review_approve")
    assert await bounded_wait(lambda: said(sandbox, thread, "Done."), 15)

    # A plain reply (no mention) continues the conversation on either replica.
    await sandbox.post_message(ALICE, "#general", "what's the weather in Paris?", thread)

    def second_review() -> dict[str, object] | None:
        for message in bot_replies(sandbox, GENERAL, thread):
            if buttons_of(message) and "Paris" in text_of(message):
                return message
        return None

    second = await bounded_wait(second_review, 15)
    assert second
    await sandbox.click_button(ALICE, GENERAL, str(second["ts"]), "review_approve")
    assert await bounded_wait(lambda: len(said(sandbox, thread, "Done.")) == 2, 15)
    await asyncio.sleep(0.5)  # room for a duplicate answer from the other replica

    spread = [after - earlier for after, earlier in zip(front.hits, before, strict=True)]
    replies = [str(m.get("text")) for m in bot_replies(sandbox, GENERAL, thread)]
    print("conversation over replicas:", {"requests_per_replica": spread, "replies": replies})
    assert min(spread) >= 2, spread
    assert len(said(sandbox, thread, "pending review")) == 1
    assert len(said(sandbox, thread, "Done.")) == 2
    assert [r for r in replies if r.startswith(("Approval needed", "Approved"))] == [
        "Approved: weather_search",
        "Approved: weather_search",
    ]
