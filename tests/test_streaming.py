"""Streamed replies (``bot.streaming``): the agent's reply written into the thread through
Slack's streaming methods as the model writes it, ending as the ordinary reply message; a
workspace without them gets today's plain message; a stream a dead worker left open is closed
by the sweeper. Sandbox over signed HTTP, real PostgreSQL, the offline planner streaming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks
from bot.mrkdwn import escape
from bot.redaction import MASK
from bot.streaming import held_back
from bot.sweeper import sweep_once
from bot.threads import SlackThread
from graph.offline import OFFLINE_HELP
from sandbox.server import Sandbox
from tests.support.bot_harness import ALICE, BOT, SlackEnv, review_messages, running_slack_env

WITHIN = 60.0  # bounded, sized for a busy 2-core machine (the planner paces its words)


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url, stream_replies=True) as slack_env:
        yield slack_env


def without_ids(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in block.items() if k != "block_id"} for block in body]


def bot_replies(sandbox: Sandbox, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies(channel, thread_ts)[1:] if m.get("bot_id")]


def streamed_text(sandbox: Sandbox, ts: str) -> str:
    """What the three streaming calls carried for the message at ``ts``, in order."""
    [start] = [c for c in sandbox.calls_of("chat.startStream") if c.response.get("ts") == ts]
    parts = [str(start.args.get("markdown_text") or "")]
    for call in sandbox.calls_of("chat.appendStream") + sandbox.calls_of("chat.stopStream"):
        if call.args.get("ts") == ts and call.ok:
            parts.append(str(call.args.get("markdown_text") or ""))
    return "".join(parts)


async def finished_reply(sandbox: Sandbox, channel: str, thread_ts: str, words: str) -> Any:
    return await sandbox.wait_for(
        lambda: next(
            (
                m
                for m in bot_replies(sandbox, channel, thread_ts)
                if words in str(m.get("text")) and not m.get("streaming") and m.get("blocks")
            ),
            None,
        ),
        within=WITHIN,
    )


async def test_a_reply_streams_in_batches_and_ends_as_the_ordinary_reply(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> tell me a story")
    reply = await finished_reply(sandbox, "C0GENERAL", ts, "running offline")
    # the stream: started in the thread, for the person who asked, then appended in batches
    [start] = sandbox.calls_of("chat.startStream")
    assert start.args["thread_ts"] == ts and start.args["recipient_user_id"] == ALICE
    assert start.args["recipient_team_id"] == "T0SANDBOX"
    appends = sandbox.calls_of("chat.appendStream")
    assert appends and all(c.ok for c in appends)
    assert all(len(str(c.args["markdown_text"])) <= 12_000 for c in appends)
    assert len(appends) < len(OFFLINE_HELP.split())  # batched, not one call per word
    assert [c.args["ts"] for c in sandbox.calls_of("chat.stopStream")] == [reply["ts"]]
    assert streamed_text(sandbox, reply["ts"]) == escape(OFFLINE_HELP)
    # ...and it ends as the one ordinary reply message, exactly as a posted reply reads
    assert without_ids(reply["blocks"]) == blocks.reply_blocks(OFFLINE_HELP)
    assert reply["text"] == blocks.reply_text(OFFLINE_HELP)
    assert [m["ts"] for m in bot_replies(sandbox, "C0GENERAL", ts)] == [reply["ts"]]
    assert not sandbox.calls_of("chat.postMessage")
    await streams_settle_at(env, ts, 0)


async def test_the_reply_after_an_approval_streams(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> what's the weather in sf?")
    [review] = await sandbox.wait_for(
        lambda: review_messages(sandbox, "C0GENERAL", ts), within=WITHIN
    )
    assert not sandbox.calls_of("chat.startStream")  # a message of tool calls has no text
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    done = await finished_reply(sandbox, "C0GENERAL", ts, "Done.")
    assert [c.response["ts"] for c in sandbox.calls_of("chat.startStream")] == [done["ts"]]
    assert streamed_text(sandbox, done["ts"]).startswith("Done.")
    assert sum("Done." in str(m.get("text")) for m in bot_replies(sandbox, "C0GENERAL", ts)) == 1


@pytest.mark.parametrize("error", ["unknown_method", "not_allowed", "method_deprecated"])
async def test_a_workspace_without_streaming_gets_the_plain_message(
    database_url: str, error: str
) -> None:
    async with running_slack_env(database_url, stream_replies=True) as env:
        sandbox = env.sandbox
        sandbox.web_api.streams.unavailable = error
        for ask in ("tell me a story", "and another"):
            ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
            reply = await finished_reply(sandbox, "C0GENERAL", ts, "running offline")
            assert without_ids(reply["blocks"]) == blocks.reply_blocks(OFFLINE_HELP)
        # asked once; the workspace is then remembered as one that does not stream
        [start] = sandbox.calls_of("chat.startStream")
        assert start.error == error
        assert len(sandbox.calls_of("chat.postMessage")) == 2
        assert not sandbox.calls_of("chat.appendStream")


async def open_streams(env: SlackEnv, thread_ts: str) -> int:
    """The open streams of this test's thread (the database is shared by the whole session,
    so another test's bot may have rows of its own there)."""
    thread_id = SlackThread("T0SANDBOX", "C0GENERAL", thread_ts).thread_id
    async with env.bot.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM bot_reply_streams WHERE thread_id = %s", (thread_id,)
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def streams_settle_at(env: SlackEnv, thread_ts: str, count: int) -> None:
    """Until ``count`` streams are open in the thread: a stream's row goes just after Slack
    stopped it (the other order could leave a message "typing" forever), so a reader may see
    it a moment."""
    async with asyncio.timeout(WITHIN):
        while True:
            if await open_streams(env, thread_ts) == count:
                return
            await asyncio.sleep(0.05)  # polling the database: no event to wait on


async def test_a_stream_left_open_by_a_dead_worker_is_closed_by_the_sweeper(
    env: SlackEnv,
) -> None:
    """The worker writes, then is gone (never stops): the row it left is found stale and the
    stream stopped, so the message does not stay "typing"."""
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", "a thread")
    thread = SlackThread("T0SANDBOX", "C0GENERAL", ts)
    stream = env.bot.flow.streams.open(thread, ALICE, frozenset())
    await stream.text("Half of a repl")
    [message] = bot_replies(sandbox, "C0GENERAL", ts)
    assert message.get("streaming") and message["text"] == "Half of a repl"
    assert await open_streams(env, ts) == 1
    await sweep_once(env.bot.flow, stuck_after=3600)
    assert await open_streams(env, ts) == 1  # a live stream is left alone
    [message] = bot_replies(sandbox, "C0GENERAL", ts)
    assert message.get("streaming")
    report = await sweep_once(env.bot.flow, stuck_after=0)
    assert report.streams_closed >= 1  # this one, and any another test's bot left behind
    [closed] = bot_replies(sandbox, "C0GENERAL", ts)
    assert not closed.get("streaming") and closed["text"] == "Half of a repl"
    assert await open_streams(env, ts) == 0


async def test_a_secret_is_never_streamed_even_split_across_chunks(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", "a thread")
    thread = SlackThread("T0SANDBOX", "C0GENERAL", ts)
    stream = env.bot.flow.streams.open(thread, ALICE, frozenset({"hunter2-xyz"}))
    for piece in ("The password is hun", "ter2", "-x", "yz, and <!channel> too. ", "Bye."):
        await stream.text(piece)
    await stream.message_end(final=True)
    [message] = bot_replies(sandbox, "C0GENERAL", ts)
    calls = sandbox.workspace.calls
    sent = [str(c.args.get("markdown_text") or "") for c in calls if _streaming(c)]
    assert not any(fragment in "".join(sent) for fragment in ("hun", "ter2", "xyz"))
    assert message["text"] == escape(f"The password is {MASK}, and <!channel> too. Bye.")


def _streaming(call: Any) -> bool:
    return str(call.method).startswith(("chat.startStream", "chat.appendStream", "chat.stop"))


def test_held_back_never_cuts_through_a_secret() -> None:
    assert held_back("plain words", frozenset()) == len("plain words")
    secret = frozenset({"abcdef"})
    assert held_back("xx abc", secret) == 1  # "abc" may be the start of the secret
    assert held_back("xx abcdef yyyyyy", secret) == len("xx abcdef yyyyyy") - 5
    assert held_back("xx abcdef yy", secret) == 3  # the cut would fall inside it: before it


async def test_a_policy_that_redacts_gets_replies_posted_whole(
    database_url: str, tmp_path: Path
) -> None:
    """Fail closed: a call run without review could put a redacted value in the reply before
    the bot knows it, so with redaction configured nothing is streamed."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[tools.set_channel_topic]\nredact = ["topic"]\n')
    async with running_slack_env(database_url, stream_replies=True, policy_file=policy) as env:
        sandbox = env.sandbox
        ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> tell me a story")
        reply = await finished_reply(sandbox, "C0GENERAL", ts, "running offline")
        assert without_ids(reply["blocks"]) == blocks.reply_blocks(OFFLINE_HELP)
        assert not sandbox.calls_of("chat.startStream")


async def shown_after_approval(env: SlackEnv) -> list[str]:
    """What the bot posted in the thread after the review card, in thread order: each
    message's kind (a tool result card, the reply)."""
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> what's the weather in sf?")
    [review] = await sandbox.wait_for(
        lambda: review_messages(sandbox, "C0GENERAL", ts), within=WITHIN
    )
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await finished_reply(sandbox, "C0GENERAL", ts, "Done.")
    await sandbox.settle(5)
    after = [m for m in bot_replies(sandbox, "C0GENERAL", ts) if m["ts"] > review["ts"]]
    return [
        "result" if str(m.get("text")).startswith("weather_search:") else str(m.get("text"))[:5]
        for m in after
    ]


async def test_a_streamed_turn_shows_the_result_card_before_the_reply_as_unstreamed(
    env: SlackEnv, database_url: str
) -> None:
    """The call's result is posted as soon as the run reports it, before the model writes
    about it: the streamed reply comes after the card, as a posted reply does, once."""
    streamed = await shown_after_approval(env)
    assert streamed == ["result", "Done."], streamed
    [start] = env.sandbox.calls_of("chat.startStream")
    [card] = [
        c
        for c in env.sandbox.calls_of("chat.postMessage")
        if str(c.args.get("text")).startswith("weather_search:")
    ]
    assert card.response["ts"] < start.response["ts"]  # posted before the stream began
    async with running_slack_env(database_url) as unstreamed:
        assert await shown_after_approval(unstreamed) == streamed
