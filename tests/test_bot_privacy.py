"""Secrets and privacy end to end through the sandbox: a redacted argument never shows up in
anything the bot posts, lists or logs; a review is listed only to people who can see its
conversation; and every notification ``text`` is escaped like the blocks."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from langchain_core.messages import AIMessage
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditLog
from bot.flow import ReviewFlow
from bot.listeners.home import lister_for
from bot.logs import configure_logging
from bot.migrations import migrate_bot
from bot.permissions import Approvers
from bot.policy import Policy, ToolPolicy
from bot.store import BotStore
from bot.threads import SlackThread
from graph import RunOutcome, ToolResult
from graph.db import open_pool
from sandbox import SandboxConfig, running_sandbox
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

SECRET = "launch code 4242-alpha"
POLICY = """\
[defaults]
approvers = ["U0ALICE", "U0BOB"]

[tools.set_channel_topic]
redact = ["topic"]
"""
HOSTILE = "<!channel> see <https://evil.example|slack.com> & <@U0BOB>"
POSTING = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish")


def outputs(sandbox: Sandbox) -> list[str]:
    """Everything the bot sent people: posted/updated messages, ephemerals, published views
    (their arguments as sent), and the answers it gave through response URLs."""
    sent = [
        json.dumps(call.args, ensure_ascii=False)
        for call in sandbox.workspace.calls
        if call.method in POSTING
    ]
    sent += [json.dumps(e.to_dict(), ensure_ascii=False) for e in sandbox.workspace.ephemerals]
    return sent


def posted_texts(sandbox: Sandbox) -> list[str]:
    """The top-level ``text`` of every message the bot posted or updated."""
    return [
        str(call.args.get("text") or "")
        for call in sandbox.workspace.calls
        if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")
    ]


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The bot's own log handler at DEBUG, where libraries log request bodies."""
    stream = io.StringIO()
    root, sdk = logging.getLogger(), logging.getLogger("slack_sdk.web.async_client")
    levels = root.level, sdk.level
    sdk.setLevel(logging.NOTSET)  # an earlier bot in this process may have fixed it at INFO
    handler = configure_logging("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        sdk.setLevel(levels[1])  # the bot sets it from the level in force (bot.app.sdk_logger)


@pytest.fixture
async def redacting_env(
    database_url: str, tmp_path: Path, debug_log: io.StringIO
) -> AsyncIterator[SlackEnv]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    model = ScriptedModel(
        [
            tool_calls(("set_channel_topic", {"channel": "#random", "topic": SECRET})),
            AIMessage(content=f"Done: the topic of #random is now “{SECRET}”. {HOSTILE}"),
        ]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=policy
    ) as slack_env:
        yield slack_env


async def test_a_redacted_argument_is_hidden_in_every_output(
    redacting_env: SlackEnv, debug_log: io.StringIO, database_url: str
) -> None:
    env, sandbox = redacting_env, redacting_env.sandbox
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> set the random topic")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    assert SECRET not in text_of(review) and "[redacted]" in text_of(review)

    # The App Home and /approvals list the review, masked.
    await sandbox.open_home(ALICE)
    home = await sandbox.wait_for(
        lambda: (h := sandbox.home(ALICE)) and "set_channel_topic" in text_of(h) and h
    )
    assert "[redacted]" in text_of(home)
    await sandbox.run_command(ALICE, "#general", "/approvals")
    [listed] = await sandbox.wait_for(
        lambda: [e for e in sandbox.ephemerals(ALICE) if "set_channel_topic" in text_of(e)]
    )
    assert "[redacted]" in text_of(listed)

    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    replies = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done:" in text_of(m)]
    )
    assert sandbox.workspace.channel("C0RANDOM").topic == SECRET  # what was approved ran
    result = next(m for m in sandbox.replies("C0GENERAL", thread) if "returned" in text_of(m))
    assert "[redacted]" in text_of(result) and "[redacted]" in text_of(replies[0])
    await sandbox.settle(5)

    leaks = [sent for sent in outputs(sandbox) if SECRET in sent]
    assert not leaks, leaks
    logged = debug_log.getvalue()
    assert "conversations.setTopic" in logged  # the library did log the call...
    assert SECRET not in logged  # ...with the topic masked
    trail = [
        row
        for row in await AuditLog(env.bot.service.pool).query(tool="set_channel_topic")
        if row["thread_id"].endswith(thread)
    ]
    assert trail and trail[-1]["executed_args"]["topic"] == "[redacted]"
    assert SECRET not in json.dumps(trail, default=str)


async def test_fallback_text_is_escaped_and_cut_between_entities(
    redacting_env: SlackEnv,
) -> None:
    sandbox = redacting_env.sandbox
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> set the random topic")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done:" in text_of(m)]
    )
    await sandbox.settle(5)
    texts = posted_texts(sandbox)
    reply = next(t for t in texts if t.startswith("Done:"))
    assert "&lt;!channel&gt;" in reply and "&lt;https://evil.example|slack.com&gt;" in reply
    assert "&amp;" in reply
    for text in texts:
        assert "<!channel" not in text and "<http" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text  # no entity cut in half


# -- who sees which review -----------------------------------------------------------------


@pytest.fixture
async def open_env(database_url: str) -> AsyncIterator[SlackEnv]:
    """No approvers configured: anyone who can see a review may decide it."""
    model = ScriptedModel(
        [
            tool_calls(("weather_search", {"city": "Oslo, private to Carol"})),
            tool_calls(("weather_search", {"city": "Bergen, private room"})),
        ]
    )
    async with running_slack_env(database_url, model=model) as slack_env:
        yield slack_env


async def listed_to(sandbox: Sandbox, user: str, needle: str) -> bool:
    """Whether ``user``'s Home and ``/approvals`` answer show ``needle`` (both must agree)."""
    after = len(sandbox.workspace.calls)
    await sandbox.open_home(user)
    call = await sandbox.wait_for_call(
        "views.publish", lambda c: c.args.get("user_id") == user, after=after
    )
    in_home = needle in text_of({"blocks": call.args["view"]["blocks"]})
    before = len(sandbox.ephemerals(user))
    await sandbox.run_command(user, "#general", "/approvals")
    answers = await sandbox.wait_for(
        lambda: (found := sandbox.ephemerals(user)[before:]) and found, within=10
    )
    in_answer = needle in text_of(answers[0])
    assert in_home == in_answer, (user, in_home, in_answer)
    return in_home


async def test_a_review_is_listed_only_to_people_who_can_see_its_conversation(
    open_env: SlackEnv,
) -> None:
    sandbox = open_env.sandbox
    dm = sandbox.open_dm(CAROL)
    await sandbox.post_message(CAROL, BOT, "what's the weather in Oslo?")
    await sandbox.wait_for(
        lambda: (
            [m for m in sandbox.messages(dm) if "Oslo" in text_of(m) and m.get("bot_id")]
            or [
                r
                for m in sandbox.messages(dm)
                for r in sandbox.replies(dm, m["ts"])
                if r.get("bot_id") and "Oslo" in text_of(r)
            ]
        ),
        within=10,
    )
    room = sandbox.workspace.create_channel("secret-room", ALICE, is_private=True)
    sandbox.workspace.invite(room.id, [BOT])
    asked = await sandbox.post_message(ALICE, room.id, f"<@{BOT}> weather in Bergen?")
    await sandbox.wait_for(lambda: review_messages(sandbox, room.id, asked), within=10)

    assert await listed_to(sandbox, CAROL, "Oslo")  # her own DM
    assert not await listed_to(sandbox, BOB, "Oslo")  # another person's DM
    assert not await listed_to(sandbox, ALICE, "Oslo")
    assert await listed_to(sandbox, ALICE, "Bergen")  # a member of the private channel
    assert not await listed_to(sandbox, BOB, "Bergen")  # not a member
    assert not await listed_to(sandbox, CAROL, "Bergen")


async def test_an_unreadable_conversation_is_listed_to_nobody(open_env: SlackEnv) -> None:
    """Fail closed: when Slack will not say who is in a conversation, nobody sees its
    reviews (here the bot has left the private channel the review came from)."""
    sandbox = open_env.sandbox
    room = sandbox.workspace.create_channel("left-room", ALICE, is_private=True)
    sandbox.workspace.invite(room.id, [BOT])
    asked = await sandbox.post_message(ALICE, room.id, f"<@{BOT}> weather in Oslo?")
    await sandbox.wait_for(lambda: review_messages(sandbox, room.id, asked), within=10)
    assert await listed_to(sandbox, ALICE, "Oslo")
    room.members.discard(BOT)  # Slack now answers channel_not_found about the room
    lister_for(open_env.bot.flow).audience.cache_seconds = 0  # ask again at once
    assert not await listed_to(sandbox, ALICE, "Oslo")


async def test_the_sandbox_answers_who_is_in_a_conversation_as_slack_does() -> None:
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())
    async with running_sandbox(config) as sandbox:
        client = AsyncWebClient(token=config.bot_token, base_url=sandbox.api_url)
        dm = sandbox.open_dm(CAROL)
        assert (await client.conversations_info(channel=dm))["channel"]["user"] == CAROL
        assert set((await client.conversations_members(channel=dm))["members"]) == {CAROL, BOT}
        first = await client.conversations_members(channel="C0GENERAL", limit=2)
        rest = await client.conversations_members(
            channel="C0GENERAL", cursor=first["response_metadata"]["next_cursor"]
        )
        assert {*first["members"], *rest["members"]} == {ALICE, BOB, CAROL, BOT}
        closed = sandbox.workspace.create_channel("closed", ALICE, is_private=True)
        for method in (client.conversations_info, client.conversations_members):
            with pytest.raises(SlackApiError) as refused:
                await method(channel=closed.id)  # the bot is not in it
            assert refused.value.response["error"] == "channel_not_found"


async def test_an_unreviewed_call_is_masked_from_the_arguments_its_result_carries(
    database_url: str,
) -> None:
    """An auto-approved call has no review row: the arguments come with its result
    (``ToolResult.args``), and the result and the reply are masked from them."""
    policy = Policy(tools={"set_channel_topic": ToolPolicy(redact=frozenset({"topic"}))})
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())
    async with running_sandbox(config) as sandbox, open_pool(database_url, max_size=2) as pool:
        await migrate_bot(pool)
        client = AsyncWebClient(token=config.bot_token, base_url=sandbox.api_url)
        agent = SimpleNamespace(mcp_tools={})  # present() asks only how to name tools
        flow = ReviewFlow(agent, BotStore(pool), client, Approvers(policy, client))  # type: ignore[arg-type]
        parent = sandbox.workspace.post(sandbox.workspace.channel("C0GENERAL"), CAROL, "go")
        thread = SlackThread("T0SANDBOX", "C0GENERAL", parent.ts)
        ran = ToolResult(
            "toolu_auto_1",
            "set_channel_topic",
            f"Set the topic of #random to: {SECRET}",
            "success",
            args={"channel": "#random", "topic": SECRET},
            auto_rule="AGENT_AUTO_APPROVE",
        )
        outcome = RunOutcome(thread.thread_id, [ran], reply=f'I set it to "{SECRET}".')
        await flow.present(thread, outcome)
        posted = [c for c in sandbox.calls_of("chat.postMessage") if c.ok]
        assert len(posted) == 2
        assert all(SECRET not in json.dumps(c.args) for c in posted)
        assert all("[redacted]" in json.dumps(c.args) for c in posted)
