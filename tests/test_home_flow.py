"""App Home and ``/approvals`` end to end: the sandbox delivers ``app_home_opened`` and the
slash command over signed HTTP to the real bot, which reads real PostgreSQL and answers with
``views.publish`` and the command's ``response_url``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks, assert_valid_view
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

APPROVERS = {"*": frozenset({ALICE})}


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url, approvers=APPROVERS) as slack_env:
        yield slack_env


def view_text(view: dict[str, Any]) -> str:
    return text_of({"blocks": view["blocks"]})


async def open_home(sandbox: Sandbox, user: str) -> dict[str, Any]:
    """Open the Home tab and return the view the bot publishes in answer."""
    after = len(sandbox.workspace.calls)
    await sandbox.open_home(user)
    call = await sandbox.wait_for_call(
        "views.publish", lambda c: c.args.get("user_id") == user, after=after
    )
    assert call.ok, call.response
    assert_valid_view(call.args["view"])
    home = sandbox.home(user)
    assert home is not None and home["blocks"] == call.args["view"]["blocks"]
    return home


def thread_link(sandbox: Sandbox, thread: str, review: dict[str, Any]) -> str:
    """Slack's archive link to the review message in its thread."""
    message = review["ts"].replace(".", "")
    return f"{sandbox.url}/archives/C0GENERAL/p{message}?thread_ts={thread}&cid=C0GENERAL"


async def ask(env: SlackEnv, city: str, user: str = CAROL) -> tuple[str, dict[str, Any]]:
    ts = await env.sandbox.post_message(user, "#general", f"<@{BOT}> what's the weather in {city}?")
    [review] = await env.sandbox.wait_for(lambda: review_messages(env.sandbox, "C0GENERAL", ts))
    return ts, review


async def home_showing(env: SlackEnv, user: str, link: str) -> str:
    """The user's Home once it links the review's message: the link names the message as soon
    as its ts is stored, just after it is posted (until then it names the thread)."""
    for _ in range(50):
        shown = view_text(await open_home(env.sandbox, user))
        if link in shown:
            return shown
        await asyncio.sleep(0.1)
    return view_text(await open_home(env.sandbox, user))


async def test_home_lists_a_review_for_its_approver_only_until_it_is_decided(
    env: SlackEnv,
) -> None:
    sandbox = env.sandbox
    thread, review = await ask(env, "Reykjavik")

    shown = await home_showing(env, ALICE, thread_link(sandbox, thread, review))
    assert "weather_search" in shown and "Reykjavik" in shown
    assert "Asked by <@U0CAROL>" in shown
    assert f"<{thread_link(sandbox, thread, review)}|Open the thread>" in shown

    for outsider in (CAROL, BOB):  # the requester and a bystander may not decide it
        theirs = view_text(await open_home(sandbox, outsider))
        assert "Reykjavik" not in theirs and "Nothing is waiting for you" in theirs

    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)]
    )
    again = view_text(await open_home(sandbox, ALICE))
    assert "Reykjavik" not in again


async def test_home_links_open_the_thread_in_the_sandbox_page(env: SlackEnv) -> None:
    """The archive link resolves: the sandbox redirects it to its page, on that thread."""
    thread, review = await ask(env, "Tromso")
    link = thread_link(env.sandbox, thread, review)
    assert link in await home_showing(env, ALICE, link)
    async with httpx.AsyncClient() as http:
        answer = await http.get(link)
    assert answer.status_code == 302
    assert answer.headers["location"] == f"/#channel=C0GENERAL&thread={thread}"


async def test_approvals_command_answers_privately_with_the_same_list(env: SlackEnv) -> None:
    sandbox = env.sandbox
    await ask(env, "Tallinn")
    response = await sandbox.run_command(ALICE, "#general", "/approvals")
    assert response.status == 200 and not response.body  # acked at once, empty
    [answer] = await sandbox.wait_for(
        lambda: [e for e in sandbox.ephemerals(ALICE, "C0GENERAL") if "Tallinn" in text_of(e)]
    )
    assert "weather_search" in text_of(answer) and "Asked by <@U0CAROL>" in text_of(answer)
    assert_valid_blocks(answer["blocks"])
    assert (
        not [  # nothing said in the channel for everyone to see
            m for m in sandbox.messages("C0GENERAL") if m.get("bot_id") and "Tallinn" in text_of(m)
        ]
    )

    await sandbox.run_command(CAROL, "#general", "/approvals", text="please")
    [empty] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL, "C0GENERAL"))
    assert "Nothing is waiting for you" in text_of(empty)
    assert not sandbox.ephemerals(BOB)


async def test_approvals_works_in_the_bots_dm(env: SlackEnv) -> None:
    sandbox = env.sandbox
    dm = sandbox.open_dm(ALICE)
    await ask(env, "Vilnius")
    await sandbox.run_command(ALICE, BOT, "/approvals")
    [answer] = await sandbox.wait_for(
        lambda: [e for e in sandbox.ephemerals(ALICE, dm) if "Vilnius" in text_of(e)]
    )
    assert answer["channel"] == dm
