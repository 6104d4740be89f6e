"""In real headless Chromium: a person watches the thread's status line tell the truth (waiting
for whom, then cleared), the call's task move from waiting for review to done, and the agent's
reply being written, until it is the ordinary reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect

from graph.offline import OfflinePlanner
from tests.support.bot_harness import SlackEnv, running_slack_env

if TYPE_CHECKING:  # the fixtures hand it out; see tests/support/browser.py
    from tests.support.browser import ChatPage

pytest_plugins = ["tests.support.browser"]


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url, stream_replies=True, task_cards=True) as slack_env:
        yield slack_env


async def test_a_person_sees_the_status_line_and_the_reply_being_written(
    chat_page: ChatPage, env: SlackEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # slow enough for a person (and the page's live updates) to watch it being written
    monkeypatch.setattr(OfflinePlanner, "pace_seconds", 0.15)
    chat = chat_page
    await chat.open(env.sandbox.url)
    await chat.send("@approvals what's the weather in sf?")
    await chat.open_thread("what's the weather in sf?")
    _, review = await chat.pending_review("weather_search")
    status = chat.page.get_by_test_id("thread-status")
    await expect(status).to_have_text(
        "approvals is waiting for approval from anyone who can see the review"
    )
    await expect(status).to_have_attribute("data-session", "suspended")  # the agent session
    task = chat.thread.get_by_test_id("task-card")
    await expect(task).to_have_attribute("data-status", "pending")
    await expect(task).to_contain_text("weather_search: waiting for review")
    await review.get_by_role("button", name="Approve", exact=True).click()
    done = chat.thread.get_by_test_id("message").filter(has_text="Done.")
    await expect(done).to_be_visible()
    await expect(task).to_have_attribute("data-status", "complete")  # the same task, in place
    await expect(task).to_contain_text("weather_search: done")
    await expect(status).to_be_hidden()  # cleared once the agent is done
    await expect(status).to_have_attribute("data-session", "closed")

    reply_box = chat.page.get_by_test_id("thread-input")
    await reply_box.fill("tell me a story")
    await reply_box.press("Enter")
    writing = chat.thread.locator('[data-testid="message"][data-streaming="true"]')
    await expect(writing).to_have_count(1, timeout=20_000)
    await expect(writing.get_by_test_id("streaming")).to_be_visible()  # the cursor
    await expect(writing).not_to_contain_text("talk to Claude instead")  # not written yet
    written = chat.thread.get_by_test_id("message").filter(has_text="talk to Claude instead")
    await expect(written).to_have_count(1, timeout=30_000)
    await expect(writing).to_have_count(0)
    await expect(written.get_by_test_id("streaming")).to_have_count(0)


async def test_without_the_words_the_session_says_the_agent_waits(
    chat_page: ChatPage, env: SlackEnv
) -> None:
    env.sandbox.web_api.assistant.unavailable = "unknown_method"  # no status words here
    chat = chat_page
    await chat.open(env.sandbox.url)
    await chat.send("@approvals what's the weather in sf?")
    await chat.open_thread("what's the weather in sf?")
    _, review = await chat.pending_review("weather_search")
    status = chat.page.get_by_test_id("thread-status")
    await expect(status).to_have_text("approvals is waiting…")
    await expect(status).to_have_attribute("data-session", "suspended")
    await review.get_by_role("button", name="Approve", exact=True).click()
    await expect(chat.thread.get_by_test_id("message").filter(has_text="Done.")).to_be_visible()
    await expect(status).to_have_attribute("data-session", "closed")
    await expect(status).to_be_hidden()
