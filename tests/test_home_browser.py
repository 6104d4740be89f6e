"""App Home and ``/approvals`` in real headless Chromium: a person opens the bot's Home tab in
the sandbox page and types the command in the composer; the real bot answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect

from tests.support.bot_harness import (
    ALICE,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    running_slack_env,
)

if TYPE_CHECKING:  # the fixtures hand it out; see tests/support/browser.py
    from tests.support.browser import ChatPage

pytest_plugins = ["tests.support.browser"]


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url, approvers={"*": frozenset({ALICE})}) as slack_env:
        yield slack_env


async def test_home_tab_and_slash_command_in_the_page(chat_page: ChatPage, env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> what's the weather in Bergen?")
    await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
    await chat_page.open(sandbox.url)  # as alice, the page's default person
    page = chat_page.page

    await page.get_by_test_id("home-bot").click()
    home = page.get_by_test_id("home-view")
    await expect(page.get_by_test_id("home-pane")).to_be_visible()
    await expect(page.get_by_test_id("channel-pane")).to_be_hidden()
    await expect(home).to_contain_text("Reviews waiting for you")
    await expect(home).to_contain_text("Bergen")
    link = re.compile(re.escape(f"{sandbox.url}/archives/C0GENERAL/p") + r"\d+\?thread_ts=")
    await expect(home.get_by_role("link", name="Open the thread").first).to_have_attribute(
        "href", link
    )

    await page.get_by_test_id("channel-general").click()
    await expect(page.get_by_test_id("home-pane")).to_be_hidden()
    await chat_page.send("/approvals")
    answer = chat_page.ephemerals().filter(has_text="Bergen")
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("Only visible to you")

    composer = page.get_by_test_id("composer-input")
    await composer.fill("/nope")
    await composer.press("Enter")  # Slack keeps what you typed and says why
    await expect(
        page.get_by_test_id("toast").filter(has_text="/nope is not a valid command")
    ).to_be_visible()
    await expect(composer).to_have_value("/nope")
