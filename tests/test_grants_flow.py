"""Standing approvals end to end: the sandbox clicks and submits as people do, over signed HTTP,
the bot reads and writes real PostgreSQL, the agent runs the tool.

An approver approves a call *and* similar later ones (plain, with four-eyes, with a quorum of
two); later calls inside the grant run without a review, with a line saying so, until the
grant is used up, expires or is revoked from the App Home; a call outside it (another value of
a constrained argument) gets a normal review. Redacted values stay masked in the modal and the
Home.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from bot.audit import AuditLog
from bot.blocks import GRANT
from bot.grant_blocks import REVOKE, SCOPE_BLOCK, USES_BLOCK
from bot.sweeper import sweep_once
from graph.tools.registry import ToolEntry, ToolRegistry, builtin_entries
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks, assert_valid_view
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.scripted_model import tool_calls

SENT: list[str] = []
CHANNEL, TEXT, KEY = "0", "1", "2"  # the scope's options, in the tool's argument order


@tool
def send_message(channel: str, text: str, api_key: str) -> str:
    """Send a message to a channel (a test tool that counts what it sent)."""
    SENT.append(text)
    return f"sent {text} to {channel}"


class SendModel:
    """Asks to send what the person wrote (``channel=… text=… key=…``), then says Done."""

    def bind_tools(self, tools: Any) -> SendModel:
        return self

    async def ainvoke(
        self, input: list[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        last = input[-1]
        if isinstance(last, HumanMessage):
            found = dict(re.findall(r"(\w+)=(\S+)", str(last.content)))
            args = {"channel": found["channel"], "text": found["text"], "api_key": found["key"]}
            return tool_calls(("send_message", args))
        return AIMessage(content=f"Done: {last.content}")


def policy_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(
        "[tools.send_message]\n"
        f'approvers = ["{ALICE}", "{BOB}"]\n'
        'redact = ["api_key"]\n'
        'grants = { max_duration = "1h", max_uses = 2 }\n' + extra
    )
    return path


@pytest.fixture
def extra() -> str:
    return ""


@pytest.fixture
def ops() -> str:
    """A channel value of this test's own: grants of other tests (same database) never match."""
    return f"ops-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def dev() -> str:
    return f"dev-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def env(database_url: str, tmp_path: Path, extra: str) -> AsyncIterator[SlackEnv]:
    SENT.clear()
    registry = ToolRegistry([*builtin_entries(), ToolEntry(send_message)])
    async with running_slack_env(
        database_url, model=SendModel(), registry=registry, policy_file=policy_file(tmp_path, extra)
    ) as slack_env:
        yield slack_env


async def ask(sandbox: Sandbox, text: str, user: str = CAROL) -> str:
    return await sandbox.post_message(user, "#general", f"<@{BOT}> {text}")


def thread_texts(sandbox: Sandbox, thread: str) -> list[str]:
    return [text_of(m) for m in sandbox.replies("C0GENERAL", thread)]


async def done(sandbox: Sandbox, thread: str) -> list[str]:
    """The thread once the agent said Done (the tool ran)."""
    await sandbox.wait_for(lambda: any("Done: sent" in t for t in thread_texts(sandbox, thread)))
    return thread_texts(sandbox, thread)


async def card(sandbox: Sandbox, thread: str) -> dict[str, Any]:
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    assert_valid_blocks(review["blocks"])
    return review


async def grant_on(
    sandbox: Sandbox, user: str, review: dict[str, Any], scope: list[str], uses: str = "2"
) -> dict[str, Any]:
    """Click *Approve + allow similar…* and submit the modal; the modal as it was shown."""
    await sandbox.click_button(user, "C0GENERAL", review["ts"], GRANT)
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(user))
    view = {k: v for k, v in modal.items() if not k.startswith("_") and k in VIEW_KEYS}
    assert_valid_view(view)
    result = await sandbox.submit_modal(user, {SCOPE_BLOCK: scope, USES_BLOCK: uses})
    assert not result.errors, result.errors
    return modal


def grant_id(text: str) -> str:
    """``G7`` from the line announcing a standing approval."""
    found = re.search(r"Standing approval (G\d+)", text)
    assert found, text
    return found.group(1)


VIEW_KEYS = {"type", "title", "blocks", "close", "submit", "private_metadata", "callback_id"}


async def audit(env: SlackEnv, thread: str) -> list[tuple[str, str | None, str | None]]:
    rows = await AuditLog(env.bot.service.pool).query(tool="send_message")
    return [
        (r["outcome"], r["decided_by"], r["detail"])
        for r in rows
        if r["thread_id"].endswith(thread)
    ]


async def test_a_grant_runs_similar_calls_until_it_is_used_up(
    env: SlackEnv, ops: str, dev: str
) -> None:
    sandbox = env.sandbox
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    review = await card(sandbox, first)
    await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], GRANT)  # approvers only
    [refused] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL))
    assert "Only" in refused["text"] and sandbox.open_modal(CAROL) is None
    modal = await grant_on(sandbox, ALICE, review, [CHANNEL])
    shown = json.dumps(modal)
    assert (
        "sk-live-4417" not in shown
        and "api_key = [redacted]" in shown
        and f"same channel = {ops}" in shown
    )
    texts = await done(sandbox, first)
    [made] = [t for t in texts if "Standing approval G" in t]
    assert "by <@U0ALICE>" in made and f"with channel = {ops}" in made and "at most 2 times" in made
    assert SENT == ["one"]

    other = await ask(
        sandbox, f"channel={dev} text=elsewhere key=sk-live-4417"
    )  # outside the grant
    await card(sandbox, other)

    second = await ask(sandbox, f"channel={ops} text=two key=sk-live-9902")
    texts = await done(sandbox, second)
    assert not review_messages(sandbox, "C0GENERAL", second)
    [ran] = [m for m in sandbox.replies("C0GENERAL", second) if "Ran under" in text_of(m)]
    assert_valid_blocks(ran["blocks"])  # what ran, as a decided card shows it, masked
    assert (
        "two" in text_of(ran)
        and "sk-live-9902" not in json.dumps(ran)
        and "Approved" in text_of(ran)
    )
    gid = grant_id(made)
    assert f"Ran under standing approval {gid} by <@U0ALICE>, 1 of 2 uses left." in "\n".join(texts)
    third = await ask(sandbox, f"channel={ops} text=three key=k3")
    assert "0 of 2 uses left" in "\n".join(await done(sandbox, third))
    assert SENT == ["one", "two", "three"]

    fourth = await ask(sandbox, f"channel={ops} text=four key=k4")  # used up: reviewed again
    await card(sandbox, fourth)
    assert SENT == ["one", "two", "three"]

    events = await audit(env, second)
    assert [e[:2] for e in events] == [("requested", None), ("approved", ALICE)]
    assert events[1][2] == f"standing approval {gid} by {ALICE} (use 1 of 2)"
    created = [e for e in await audit(env, first) if e[0] == "grant_created"]
    assert created and created[0][1] == ALICE


@pytest.mark.parametrize("extra", ["four_eyes = true\n"])
async def test_with_four_eyes_a_creators_own_requests_still_need_a_review(
    env: SlackEnv, ops: str, dev: str
) -> None:
    sandbox = env.sandbox
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    await grant_on(sandbox, ALICE, await card(sandbox, first), [CHANNEL])
    await done(sandbox, first)

    own = await ask(sandbox, f"channel={ops} text=mine key=sk-live-4417", user=ALICE)
    await card(sandbox, own)  # Alice created the grant: her own request is reviewed
    assert "mine" not in SENT

    theirs = await ask(sandbox, f"channel={ops} text=theirs key=sk-live-4417")
    assert any("Ran under standing approval" in t for t in await done(sandbox, theirs))
    assert SENT == ["one", "theirs"]


@pytest.mark.parametrize("extra", ["quorum = 2\n"])
async def test_with_a_quorum_the_grant_needs_the_quorum_to_choose_it(
    env: SlackEnv, ops: str, dev: str
) -> None:
    sandbox = env.sandbox
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    review = await card(sandbox, first)
    await grant_on(sandbox, ALICE, review, [CHANNEL], uses="2")
    [recorded] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE))
    assert "1 of 2" in recorded["text"] and SENT == []
    await grant_on(sandbox, BOB, review, [CHANNEL, TEXT], uses="1")
    texts = await done(sandbox, first)
    [made] = [t for t in texts if "Standing approval G" in t]
    assert "by <@U0ALICE> and <@U0BOB>" in made and "at most 1 time." in made
    assert f"channel = {ops}, text = one" in made  # what both agreed to: the narrower scope

    same = await ask(sandbox, f"channel={ops} text=one key=k9")
    ran = "\n".join(await done(sandbox, same))
    assert "by <@U0ALICE> and <@U0BOB>, 0 of 1 uses left" in ran

    # The quorum reached with one plain approval: the call runs, no grant is made.
    plain = await ask(sandbox, f"channel={dev} text=two key=sk-live-4417")
    review = await card(sandbox, plain)
    await grant_on(sandbox, ALICE, review, [CHANNEL])
    await sandbox.wait_for(lambda: len(sandbox.ephemerals(ALICE)) >= 2)
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
    texts = await done(sandbox, plain)
    assert not any("Standing approval G" in t for t in texts)
    assert any("No standing approval was made" in t and "1 did" in t for t in texts)
    again = await ask(sandbox, f"channel={dev} text=two key=sk-live-4417")
    await card(sandbox, again)


async def test_an_expired_grant_approves_nothing(env: SlackEnv, ops: str, dev: str) -> None:
    sandbox = env.sandbox
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    await grant_on(sandbox, ALICE, await card(sandbox, first), [CHANNEL])
    await done(sandbox, first)
    async with env.bot.service.pool.connection() as conn:  # let its time run out now
        await conn.execute(
            "UPDATE standing_grants SET expires_at = now() - interval '1 second' "
            "WHERE thread_id LIKE %s",
            (f"%{first}",),
        )
    later = await ask(sandbox, f"channel={ops} text=late key=sk-live-4417")
    await card(sandbox, later)
    assert SENT == ["one"]

    # Creating a grant is an approval: a review that expired while the form was open
    # approves nothing and creates no grant.
    other = await ask(sandbox, f"channel={dev} text=slow key=sk-live-4417")
    review = await card(sandbox, other)
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], GRANT)
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    ref = review_ref(review)
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )
    result = await sandbox.submit_modal(ALICE, {SCOPE_BLOCK: [CHANNEL]})
    assert "This review expired at" in json.dumps(result.errors)
    async with env.bot.service.pool.connection() as conn:
        found = await (
            await conn.execute(
                "SELECT count(*) AS n FROM standing_grants WHERE thread_id LIKE %s", (f"%{other}",)
            )
        ).fetchone()
    assert found is not None and found["n"] == 0
    assert SENT == ["one"]


async def test_a_grant_is_listed_masked_and_revoked_from_the_app_home(
    env: SlackEnv, ops: str, dev: str
) -> None:
    sandbox = env.sandbox
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    await grant_on(sandbox, ALICE, await card(sandbox, first), [CHANNEL, KEY])
    made = "\n".join(await done(sandbox, first))
    gid = grant_id(made)[1:]

    wrong_key = await ask(sandbox, f"channel={ops} text=other key=sk-live-9902")
    await card(sandbox, wrong_key)
    same_key = await ask(
        sandbox, f"channel={ops} text=same key=sk-live-4417"
    )  # kept equal by digest
    assert "1 of 2 uses left" in "\n".join(await done(sandbox, same_key))

    home = await published_home(sandbox, BOB)  # an approver who did not create it
    [entry] = [b for b in home["blocks"] if b.get("block_id") == f"grant:{gid}"]
    shown = json.dumps(entry, ensure_ascii=False)
    assert f"api_key = [redacted], channel = {ops}" in shown
    assert "sk-live-4417" not in json.dumps(home) and "1 of 2 uses left" in json.dumps(home)
    assert "Standing approvals" not in json.dumps(await published_home(sandbox, CAROL))

    refused = await env.bot.flow.standing.revoke(CAROL, int(gid))  # neither creator nor approver
    assert refused.startswith("Only its creators")
    after = len(sandbox.calls_of("views.publish"))
    await sandbox.click_in_home(BOB, REVOKE, block_id=f"grant:{gid}")
    await sandbox.wait_for(lambda: len(sandbox.calls_of("views.publish")) > after)
    republished = json.dumps(sandbox.home(BOB), ensure_ascii=False)
    assert f"G{gid} is revoked" in republished and f"grant:{gid}" not in republished
    assert_valid_view(sandbox.calls_of("views.publish")[-1].args["view"])

    later = await ask(sandbox, f"channel={ops} text=late key=sk-live-4417")
    await card(sandbox, later)
    assert SENT == ["one", "same"]
    revoked = [e for e in await audit(env, first) if e[0] == "grant_revoked"]
    assert revoked and revoked[0][1] == BOB


async def published_home(sandbox: Sandbox, user: str) -> dict[str, Any]:
    after = len(sandbox.calls_of("views.publish"))
    await sandbox.open_home(user)
    call = await sandbox.wait_for_call(
        "views.publish", lambda c: c.args.get("user_id") == user, after=after
    )
    assert call.ok, call.response
    assert_valid_view(call.args["view"])
    return dict(call.args["view"])


async def left_deciding(env: SlackEnv, thread: str, within: float = 30.0) -> str:
    """The review of ``thread`` once its mention was handled, left 'deciding' by the handler."""
    deadline = time.monotonic() + within
    while True:
        mention = [
            d.body["event_id"]
            for d in env.sandbox.workspace.deliveries
            if d.body.get("event", {}).get("type") == "app_mention"
            and d.body["event"]["ts"] == thread
        ]
        async with env.bot.service.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT r.ref, r.status FROM slack_reviews r, slack_events e"
                    " WHERE r.thread_ts = %s AND e.event_id = ANY (%s) AND e.status = 'done'",
                    (thread, mention),
                )
            ).fetchone()
        if row is not None:
            assert row["status"] == "deciding", row
            return str(row["ref"])
        assert time.monotonic() < deadline, f"{thread} still being handled"
        await asyncio.sleep(0.05)


class Died(RuntimeError):
    """Where the process running a call under a grant stopped (the claim is left 'deciding')."""


async def test_a_granted_call_finished_by_the_sweeper_names_its_grant(
    env: SlackEnv, ops: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, effects = env.sandbox, env.bot.flow.effects
    first = await ask(sandbox, f"channel={ops} text=one key=sk-live-4417")
    await grant_on(sandbox, ALICE, await card(sandbox, first), [CHANNEL])
    gid = grant_id(next(t for t in await done(sandbox, first) if "Standing approval G" in t))

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise Died("the process stopped here")

    monkeypatch.setattr(effects, "apply", dies)  # claimed under the grant, then gone
    second = await ask(sandbox, f"channel={ops} text=two key=sk-live-9902")
    ref = await left_deciding(env, second)
    monkeypatch.undo()
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET heartbeat_at = now() - interval '10 minutes',"
            " decided_at = now() - interval '1 hour' WHERE ref = %s",
            (ref,),
        )
    assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered >= 1
    await done(sandbox, second)
    assert SENT == ["one", "two"]
    events = await audit(env, second)
    assert [e[:2] for e in events] == [("requested", None), ("approved", ALICE)]
    assert events[1][2] == f"standing approval {gid} by {ALICE} (use 1 of 2)"
