"""Previews and receipts as a person sees them, in real headless Chromium on the sandbox's
chat page (the real bot behind it, real PostgreSQL): the message as it will look, old and new
topic, who is already in, the receipt's links that lead to what the call made, and a failure
in words."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.async_api import expect

from tests.support.bot_harness import BOB, BOT, SlackEnv

if TYPE_CHECKING:  # the fixtures hand it out; see tests/support/browser.py
    from tests.support.browser import ChatPage

pytest_plugins = ["tests.support.browser"]


async def test_a_post_preview_renders_as_the_message_and_its_receipt_links_to_it(
    chat: ChatPage,
) -> None:
    await chat.send('@approvals post "hello *team* & friends" to #general')
    await chat.open_thread("hello")
    _, review = await chat.pending_review("post_message")
    await expect(review).to_contain_text("Preview: Will post in #general as the bot:")
    # The message as Slack will show it: bold rendered, the ampersand as written.
    await expect(review.locator("b", has_text="team").last).to_be_visible()
    await expect(review).to_contain_text("hello team & friends")
    await expect(review.get_by_test_id("channel-link").first).to_have_text("#general")
    await review.get_by_role("button", name="Approve", exact=True).click()

    await expect(review).to_contain_text("What it did: Posted in #general")
    link = review.get_by_test_id("link").filter(has_text="the message")
    await expect(link).to_have_attribute("href", re.compile(r"/archives/C0GENERAL/p\d+$"))
    href = await link.get_attribute("href")
    assert href
    await chat.page.goto(href)  # the permalink opens the posted message
    await expect(chat.thread_pane).to_be_visible()
    await expect(chat.thread).to_contain_text("hello team & friends")


async def test_topic_and_invite_previews_then_a_channel_link_in_the_receipt(
    chat: ChatPage, env: SlackEnv
) -> None:
    env.sandbox.workspace.channel("C0GENERAL").topic = "Ship &amp; celebrate"
    await chat.send("@approvals set the topic of #general to Launch on Friday")
    await chat.open_thread("Launch on Friday")
    _, review = await chat.pending_review("set_channel_topic")
    await expect(review).to_contain_text("Now: Ship & celebrate")
    await expect(review).to_contain_text("After: Launch on Friday")
    await review.get_by_role("button", name="Approve", exact=True).click()
    await expect(review).to_contain_text(
        "What it did: The topic of #general is now: Launch on Friday"
    )

    side = env.sandbox.workspace.create_channel("side", BOT)
    env.sandbox.workspace.invite(side.id, [BOB])
    await chat.page.get_by_test_id("thread-close").click()
    await chat.send("@approvals invite @bob @carol to #side")
    await chat.open_thread("invite")
    _, invite = await chat.pending_review("invite_users")
    await expect(invite).to_contain_text("Will invite carol (U0CAROL) to #side.")
    await expect(invite).to_contain_text("bob (U0BOB) is already in #side.")
    await invite.get_by_role("button", name="Approve", exact=True).click()
    await expect(invite).to_contain_text("What it did: Invited @bob, @carol to #side")
    await invite.get_by_test_id("channel-link").filter(has_text="#side").last.click()
    await expect(chat.page.get_by_test_id("channel-title")).to_have_attribute(
        "data-channel-id", side.id
    )


async def test_a_failed_call_reads_as_words_and_the_reply_is_not_done(chat: ChatPage) -> None:
    await chat.send("@approvals set the topic of #nowhere to Hello")
    await chat.open_thread("nowhere")
    _, review = await chat.pending_review("set_channel_topic")
    await expect(review).to_contain_text("There is no channel #nowhere that I can see")
    await review.get_by_role("button", name="Approve", exact=True).click()
    await expect(review).to_contain_text("Did not work.")
    await expect(chat.thread).to_contain_text("That did not work.")
    await expect(chat.thread).not_to_contain_text("Done.")
    await expect(chat.thread).not_to_contain_text("SlackToolError")
    await expect(chat.thread).not_to_contain_text("Error: the tool failed")
