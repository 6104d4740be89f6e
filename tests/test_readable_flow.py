"""Arguments as people read them, end to end: the real bot behind the Slack sandbox over signed
HTTP, a real PostgreSQL. Cards name people and channels (asked of the sandbox's users.info and
conversations.info); Edit offers Slack's pickers, and what is picked is what runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import registry_with
from tests.support.dated_tools import PROPOSED_AT, REMINDERS, reminder_model, set_reminder


def message(env: SlackEnv, thread: str, ts: str) -> dict[str, Any]:
    return next(m for m in env.sandbox.replies("C0GENERAL", thread) if m["ts"] == ts)


async def start_review(env: SlackEnv, text: str) -> tuple[str, dict[str, Any]]:
    ts = await env.sandbox.post_message(ALICE, "#general", f"<@{BOT}> {text}")
    [review] = await env.sandbox.wait_for(lambda: review_messages(env.sandbox, "C0GENERAL", ts))
    return ts, review


async def test_invite_names_people_and_runs_the_people_picked_in_edit(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start_review(env, "invite <@U0BOB> to #general")
    shown = text_of(review)
    assert "@bob (`U0BOB`)" in shown and "<@U0BOB>" not in shown  # named, not pinged
    assert [c.args["user"] for c in sandbox.calls_of("users.info")].count("U0BOB") == 1

    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    users = next(b for b in modal["blocks"] if b.get("block_id") == "arg:users")
    assert users["element"]["type"] == "multi_users_select"
    assert users["element"]["initial_users"] == ["U0BOB"]

    done = await sandbox.submit_modal(ALICE, {"arg:users": ["U0BOB", "U0CAROL"]})
    assert done.closed, done
    invite = await sandbox.wait_for_call("conversations.invite")
    assert invite.args["users"] == "U0BOB,U0CAROL"
    decided = await sandbox.wait_for(
        lambda: (
            text_of(m)
            if "Edited and approved by" in text_of(m := message(env, thread, review["ts"]))
            else None
        )
    )
    assert "• @bob (`U0BOB`)\n• @carol (`U0CAROL`)" in decided, decided


async def test_a_server_side_refusal_of_picked_values_keeps_the_modal(env: SlackEnv) -> None:
    sandbox = env.sandbox
    _, review = await start_review(env, "invite <@U0BOB> to #general")
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    refused = await sandbox.submit_modal(ALICE, {"arg:users": ["bob"]})
    assert "not Slack user ids" in refused.errors.get("arg:users", ""), refused
    empty = await sandbox.submit_modal(ALICE, {"arg:users": []})
    assert empty.errors.get("arg:users") and not empty.closed
    assert not sandbox.calls_of("conversations.invite")


async def test_dates_read_in_the_readers_zone_and_the_picked_moment_runs(database_url: str) -> None:
    REMINDERS.clear()
    registry = registry_with(set_reminder)
    async with running_slack_env(database_url, model=reminder_model(), registry=registry) as env:
        sandbox = env.sandbox
        thread, review = await start_review(env, "remind me")
        shown = text_of(review)
        epoch = int(datetime.fromisoformat(PROPOSED_AT).timestamp())
        assert f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|2026-12-24 08:30 UTC>" in shown
        assert f"(`{PROPOSED_AT}`)" in shown and "Thu 24 Dec 2026 (`2026-12-24`)" in shown

        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        elements = {b["block_id"]: b["element"] for b in modal["blocks"] if b["type"] == "input"}
        assert elements["arg:at"]["type"] == "datetimepicker"
        assert elements["arg:at"]["initial_date_time"] == epoch
        assert elements["arg:day"] == {**elements["arg:day"], "type": "datepicker"}

        later = epoch + 24 * 3600
        done = await sandbox.submit_modal(ALICE, {"arg:at": later, "arg:day": "2026-12-25"})
        assert done.closed, done
        await sandbox.wait_for(lambda: REMINDERS)
        moved = datetime.fromtimestamp(later, UTC).isoformat()
        assert [{"note": "ship", "at": moved, "day": "2026-12-25"}] == REMINDERS
        decided = await sandbox.wait_for(
            lambda: "Edited and approved" in text_of(message(env, thread, review["ts"]))
        )
        assert decided


async def test_an_unchanged_moment_runs_exactly_as_written(database_url: str) -> None:
    REMINDERS.clear()
    registry = registry_with(set_reminder)
    async with running_slack_env(database_url, model=reminder_model(), registry=registry) as env:
        sandbox = env.sandbox
        _, review = await start_review(env, "remind me")
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        assert (await sandbox.submit_modal(ALICE, {})).closed  # the pickers as they started
        await sandbox.wait_for(lambda: REMINDERS)
        assert REMINDERS == [{"note": "ship", "at": PROPOSED_AT, "day": "2026-12-24"}]


async def test_redacted_people_are_never_looked_up_nor_shown(
    database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[tools.invite_users]\nredact = ["users"]\n')
    async with running_slack_env(database_url, policy_file=policy) as env:
        sandbox = env.sandbox
        _, review = await start_review(env, "invite <@U0CAROL> to #general")
        shown = text_of(review)
        assert "[redacted]" in shown and "U0CAROL" not in shown and "carol" not in shown
        assert not sandbox.calls_of("users.info")
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        assert "arg:users" not in [b.get("block_id") for b in modal["blocks"]]


async def test_an_edit_submitted_before_the_card_is_recorded_still_paints_the_card(
    env: SlackEnv,
) -> None:
    """The card is on screen as soon as Slack has it; the bot records its ts only when the
    post's answer comes back. An Edit submitted in between names no message (a modal does
    not): the card must still show the decision, not keep its buttons."""
    sandbox, store = env.sandbox, env.bot.flow.store
    recorded, release = asyncio.Event(), asyncio.Event()
    add_copy = store.add_copy

    async def add_copy_later(ref: str, message_ts: str) -> bool:
        if not recorded.is_set():
            recorded.set()
            await asyncio.wait_for(release.wait(), 30)
        return await add_copy(ref, message_ts)

    store.add_copy = add_copy_later  # type: ignore[method-assign]
    thread, review = await start_review(env, "invite <@U0BOB> to #general")
    await asyncio.wait_for(recorded.wait(), 10)
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert (await sandbox.submit_modal(ALICE, {"arg:users": ["U0CAROL"]})).closed
    await sandbox.wait_for_call("conversations.invite")
    release.set()  # only now does the poster record the card
    decided = await sandbox.wait_for(
        lambda: (
            text_of(m)
            if "Edited and approved by" in text_of(m := message(env, thread, review["ts"]))
            else None
        )
    )
    assert "@carol (`U0CAROL`)" in decided and "review_approve" not in str(
        message(env, thread, review["ts"])["blocks"]
    )
