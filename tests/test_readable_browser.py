"""Arguments as people read them, in real headless Chromium at the sandbox's chat page: the
real bot behind it over signed loopback HTTP and a real PostgreSQL. A moment reads in the
reader's own time zone, and the moment picked in Edit's datetimepicker is the one that runs.
(People picked in Edit: tests/test_browser_flow.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect
from slack_sdk.web.async_client import AsyncWebClient

from sandbox import SandboxConfig, running_sandbox
from tests.support.bot_harness import SlackEnv, running_slack_env
from tests.support.counting_tools import registry_with
from tests.support.dated_tools import PROPOSED_AT, REMINDERS, reminder_model, set_reminder

if TYPE_CHECKING:  # the fixtures hand it out; see tests/support/browser.py
    from tests.support.browser import ChatPage

pytest_plugins = ["tests.support.browser"]


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    REMINDERS.clear()
    registry = registry_with(set_reminder)
    async with running_slack_env(database_url, model=reminder_model(), registry=registry) as env:
        yield env


async def test_a_picked_moment_runs_and_reads_in_the_readers_zone(chat: ChatPage) -> None:
    await chat.send("@approvals remind me")
    await chat.open_thread("remind me")
    _, review = await chat.pending_review("set_reminder")
    epoch = int(datetime.fromisoformat(PROPOSED_AT).timestamp())
    date = review.get_by_test_id("date").first
    await expect(date).to_have_attribute("data-epoch", str(epoch))
    local = await chat.page.evaluate(
        "s => new Date(s * 1000).toLocaleTimeString('en-US', {hour: 'numeric', minute: '2-digit'})",
        epoch,
    )
    await expect(date).to_contain_text(f"at {local}")  # the reader's zone, not UTC text
    await expect(review).to_contain_text(f"({PROPOSED_AT})")
    await expect(review).to_contain_text("Thu 24 Dec 2026 (2026-12-24)")

    await review.get_by_role("button", name="Edit", exact=True).click()
    await expect(chat.modal).to_be_visible()
    at, day = chat.modal_input("arg:at"), chat.modal_input("arg:day")
    await expect(at).to_have_attribute("data-type", "datetimepicker")
    shown = await chat.page.evaluate(
        "s => { const d = new Date(s * 1000), two = (n) => String(n).padStart(2, '0');"
        " return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T"
        "${two(d.getHours())}:${two(d.getMinutes())}`; }",
        epoch,
    )
    await expect(at).to_have_value(shown)
    await expect(day).to_have_value("2026-12-24")

    await at.fill("2026-12-25T07:45")
    await day.fill("2026-12-25")
    picked = await chat.page.evaluate("new Date('2026-12-25T07:45').getTime() / 1000")
    await chat.modal.get_by_test_id("modal-submit").click()
    await expect(chat.modal).to_have_count(0)
    await expect(review).to_contain_text("Edited and approved by @alice")
    ran = datetime.fromtimestamp(int(picked), UTC).isoformat()
    result = chat.thread.get_by_test_id("message").filter(has_text="set_reminder returned:")
    await expect(result).to_contain_text(f"reminder set for {ran} (2026-12-25)")
    assert [{"note": "ship", "at": ran, "day": "2026-12-25"}] == REMINDERS


async def test_the_sandbox_renders_slack_markup_as_slack_does(chat_page: ChatPage) -> None:
    """Without the bot: what a card is made of, posted through the sandbox's Web API, as the
    page shows it: bold code, a date token in the reader's zone, a link labelled by itself,
    people and channels by name, emoji, indented list lines; and emoji in a Home view."""
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())
    async with running_sandbox(config) as sandbox:
        client = AsyncWebClient(token=config.bot_token, base_url=sandbox.api_url)
        epoch = 1_798_099_200
        text = (
            "*`U0BOB`* :electric_plug: "
            f"<!date^{epoch}^{{date_num}} at {{time}}|2026-12-24 08:00 UTC> "
            "<https://example.com/a?b=1&amp;c=2|https://example.com/a?b=1&amp;c=2> "
            '<@U0CAROL> <#C0RANDOM>\n• *tags*:\n      ◦ `"a"`'
        )
        section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        await client.chat_postMessage(channel="C0GENERAL", text="markup", blocks=[section])
        home = {
            "type": "home",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": ":sparkles: Reviews"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": ":hourglass: *`one`*"}},
            ],
        }
        await client.views_publish(user_id="U0ALICE", view=home)

        await chat_page.open(sandbox.url)
        message = chat_page.channel_message("tags")
        await expect(message.locator("b > code")).to_have_text("U0BOB")
        await expect(message).to_contain_text("🔌")
        date = message.get_by_test_id("date")
        await expect(date).to_have_attribute("data-epoch", str(epoch))
        day = await chat_page.page.evaluate(
            "s => { const d = new Date(s * 1000), two = (n) => String(n).padStart(2, '0');"
            " return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`; }",
            epoch,
        )
        await expect(date).to_contain_text(f"{day} at ")
        link = message.get_by_role("link", name="https://example.com/a?b=1&c=2")
        await expect(link).to_have_attribute("href", "https://example.com/a?b=1&c=2")
        await expect(message.locator(".mention")).to_have_text(["@carol", "#random"])
        indent = await message.locator(".section-text").evaluate(
            "el => getComputedStyle(el).whiteSpace"
        )
        assert indent == "pre-wrap"  # the nested line keeps its indent, as in Slack

        await chat_page.page.get_by_test_id("home-bot").click()
        view = chat_page.page.get_by_test_id("home-view")
        await expect(view).to_contain_text("✨ Reviews")
        await expect(view).to_contain_text("⌛")
        await expect(view.locator("b > code")).to_have_text("one")
