"""The review flow in real headless Chromium: a person at the sandbox's chat page, the real bot
behind it over signed loopback HTTP, and a real PostgreSQL.

Every test starts from the page as a person would use it and asserts on what they see; all
waiting is Playwright's auto-waiting `expect`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.async_api import expect

from tests.support.bot_harness import ALICE, BOB, BOT, SlackEnv, running_slack_env

if TYPE_CHECKING:  # the fixtures hand it out; see tests/support/browser.py
    from tests.support.browser import ChatPage

pytest_plugins = ["tests.support.browser"]


async def test_approve_updates_the_review_in_place_then_shows_result_and_reply(
    chat: ChatPage,
) -> None:
    await chat.mark_page()
    await chat.send("@approvals what's the weather in sf?")
    question = chat.channel_message("what's the weather in sf?")
    await expect(question.locator(".mention")).to_have_text("@approvals")
    await chat.open_thread("what's the weather in sf?")

    ts, review = await chat.pending_review("weather_search")
    await expect(review).to_contain_text("Approval needed")
    await expect(review).to_contain_text("sf")
    await review.get_by_role("button", name="Approve", exact=True).click()

    await expect(review).to_contain_text("Approved by @alice")
    await expect(review.get_by_role("button")).to_have_count(0)
    await expect(review.get_by_test_id("edited")).to_be_visible()
    await expect(chat.pending_reviews()).to_have_count(0)
    result = chat.thread.get_by_test_id("message").filter(has_text="weather_search returned:")
    await expect(result).to_contain_text("in sf (demo data, not a real forecast)")
    reply = chat.thread.get_by_test_id("message").filter(has_text="Done.")
    await expect(reply).to_be_visible()
    # The decided message kept its place: first bot message after the question, then the
    # result, then the reply.
    order = await chat.thread.get_by_test_id("message").evaluate_all(
        "els => els.map(el => el.dataset.ts)"
    )
    result_ts = await result.get_attribute("data-ts")
    assert result_ts in order and order.index(ts) < order.index(result_ts)
    assert await chat.still_same_page_load(), "the page reloaded; updates must arrive live"


async def test_edit_shows_inline_errors_keeps_the_modal_then_applies_the_edit(
    chat: ChatPage, env: SlackEnv
) -> None:
    # Everyone is in #general already; a fresh channel lets the edited invite succeed.
    env.sandbox.workspace.create_channel("launch-plan", creator=BOT)
    await chat.mark_page()
    await chat.send("@approvals invite @bob to #launch-plan")
    await expect(chat.channel_message("invite").locator(".mention")).to_have_text(
        ["@approvals", "@bob"]
    )
    await chat.open_thread("invite")
    _, review = await chat.pending_review("invite_users")
    await expect(review).to_contain_text("@bob (U0BOB)")  # named, with the id that runs
    await review.get_by_role("button", name="Edit", exact=True).click()

    await expect(chat.modal).to_be_visible()
    await expect(chat.modal.get_by_test_id("modal-title")).to_have_text("Edit tool call")
    users = chat.modal_input("arg:users")  # Slack's people picker: the schema says slack-users
    await expect(users).to_have_attribute("data-type", "multi_users_select")
    await expect(users).to_have_values(["U0BOB"])
    error = chat.modal_error("arg:users")
    await expect(error).to_be_hidden()

    await users.select_option([])
    await chat.modal.get_by_test_id("modal-submit").click()
    await expect(error).to_contain_text("required")
    await expect(chat.modal).to_be_visible()
    await expect(review.get_by_role("button", name="Approve", exact=True)).to_be_visible()

    await users.select_option(["U0BOB", "U0CAROL"])
    await chat.modal.get_by_test_id("modal-submit").click()
    await expect(chat.modal).to_have_count(0)

    await expect(review).to_contain_text("Edited and approved by @alice")
    await expect(review.get_by_role("button")).to_have_count(0)
    await expect(review.locator("s")).to_have_text("@bob (U0BOB)")  # old value, struck through
    await expect(review).to_contain_text("@bob (U0BOB) → @bob (U0BOB), @carol (U0CAROL)")
    await expect(review).to_contain_text("@carol (U0CAROL)")
    result = chat.thread.get_by_test_id("message").filter(has_text="invite_users returned:")
    await expect(result).to_contain_text("✅")
    await expect(result).to_contain_text("Invited U0BOB, U0CAROL to #launch-plan.")
    await expect(chat.thread.get_by_test_id("message").filter(has_text="Done.")).to_be_visible()
    assert await chat.still_same_page_load()


async def test_feedback_is_shown_and_a_new_review_arrives(chat: ChatPage) -> None:
    await chat.send("@approvals what's the weather in sf?")
    await chat.open_thread("what's the weather in sf?")
    first_ts, first = await chat.pending_review("weather_search")
    await first.get_by_role("button", name="Feedback", exact=True).click()

    await expect(chat.modal).to_be_visible()
    await expect(chat.modal.get_by_test_id("modal-title")).to_have_text("Send feedback")
    await chat.modal_input("feedback").fill('use "San Francisco, USA"')
    await chat.modal.get_by_test_id("modal-submit").click()
    await expect(chat.modal).to_have_count(0)

    await expect(first).to_contain_text("Feedback from @alice")
    await expect(first.locator("blockquote")).to_have_text('use "San Francisco, USA"')
    await expect(first.get_by_role("button")).to_have_count(0)
    second_ts, second = await chat.pending_review("San Francisco, USA")
    assert second_ts != first_ts
    await expect(second).to_contain_text("weather_search")
    await expect(chat.pending_reviews()).to_have_count(1)


async def test_non_approver_is_refused_privately_and_the_review_stays_pending(
    chat_page: ChatPage, database_url: str
) -> None:
    approvers = {"*": frozenset({ALICE, BOB})}
    async with running_slack_env(database_url, approvers=approvers) as env:
        chat = chat_page
        await chat.open(env.sandbox.url)
        await chat.send("@approvals what's the weather in Rome?")
        await chat.open_thread("what's the weather in Rome?")
        await chat.pending_review("weather_search")

        await chat.switch_user("carol")
        await chat.open_thread("what's the weather in Rome?")
        ts, review = await chat.pending_review("weather_search")
        await review.get_by_role("button", name="Approve", exact=True).click()

        refusal = chat.ephemerals()
        await expect(refusal).to_have_count(1)
        await expect(refusal.get_by_test_id("message-content")).to_have_text(
            re.compile(r"^Only @alice, @bob may decide weather_search calls, so I did nothing\.")
        )
        await expect(refusal.get_by_test_id("ephemeral-note")).to_have_text("👁 Only visible to you")
        await expect(review).to_contain_text("Approval needed")
        await expect(review).not_to_contain_text("Approved by")
        await expect(review.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

        # Alice does not see Carol's note, and can still decide.
        await chat.switch_user("alice")
        await chat.open_thread("what's the weather in Rome?")
        _, review = await chat.pending_review("weather_search")
        await expect(chat.thread.get_by_test_id("message").first).to_contain_text("Rome")
        await expect(chat.ephemerals()).to_have_count(0)
        await expect(chat.page.get_by_text("may decide")).to_have_count(0)
        await review.get_by_role("button", name="Approve", exact=True).click()
        await expect(chat.thread_message(ts)).to_contain_text("Approved by @alice")
