"""Real headless Chromium driving the sandbox's chat page, for browser tests and screenshots.

Chromium is Debian's (``/usr/bin/chromium``, or ``$CHROMIUM_PATH``); Playwright's own browser
download is not used. Playwright's async API runs in the test session's event loop, so the
sandbox, the bot and the browser all share one loop.

Browser tests load these fixtures with ``pytest_plugins = ["tests.support.browser"]``:

* ``browser``: one Chromium per test session (skipped, or failed under ``$CI``, when it is
  not installed);
* ``page``: a fresh browser context and page per test (its own localStorage, so every test
  starts as the page's default user, alice), failing the test on any uncaught page error;
* ``chat_page``: that page wrapped in `ChatPage`, which puts the page's ``data-testid`` hooks
  into the words a person would use (not yet opened: call ``await chat_page.open(url)``);
* ``chat``: ``chat_page`` opened at the sandbox of the test's ``env`` (tests/conftest.py's
  bot with its defaults, or the module's own ``env`` fixture).

Test modules should take `ChatPage` from the fixture and import the class only under
``TYPE_CHECKING``: importing this module before pytest registers it as a plugin would stop
pytest from rewriting its asserts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.support.bot_harness import SlackEnv

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "install Debian's Chromium with `apt-get install -y chromium`"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Generous for slow CI machines; a passing run never waits this long.
EXPECT_TIMEOUT_MS = 15_000


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    return f"Chromium not found at {CHROMIUM}: {INSTALL_HINT} (or set CHROMIUM_PATH)"


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole session."""
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium in CI. {missing}", pytrace=False)
        pytest.skip(missing)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh context (cookies, localStorage) and page; uncaught page errors fail the test."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def chat_page(page: Page) -> ChatPage:
    return ChatPage(page)


@pytest.fixture
async def chat(chat_page: ChatPage, env: SlackEnv) -> ChatPage:
    """The chat page, opened at ``env``'s sandbox."""
    await chat_page.open(env.sandbox.url)
    return chat_page


class ChatPage:
    """The sandbox chat page, as a person uses it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.thread = page.get_by_test_id("thread-messages")
        self.thread_pane = page.get_by_test_id("thread-pane")
        self.modal = page.get_by_test_id("modal")

    async def open(self, url: str) -> None:
        """Load the page and wait until it is ready and receiving live updates."""
        await self.page.goto(url)
        body = self.page.locator("body")
        try:
            await expect(body).to_have_attribute("data-ready", "true")
        except AssertionError as exc:
            toasts = await self.page.get_by_test_id("toasts").inner_text()
            raise AssertionError(f"the page did not start: {toasts.strip() or exc}") from exc
        await expect(body).to_have_attribute("data-live", "true")

    async def send(self, text: str) -> None:
        """Type into the channel composer and press Enter (``@name`` becomes a mention)."""
        composer = self.page.get_by_test_id("composer-input")
        await composer.fill(text)
        await composer.press("Enter")
        await expect(composer).to_have_value("")

    def channel_message(self, text: str) -> Locator:
        messages = self.page.get_by_test_id("messages").get_by_test_id("message")
        return messages.filter(has_text=text)

    async def open_thread(self, text: str) -> None:
        """Open the thread under the channel message containing `text` ("N replies").

        Waits for the bot to finish with the message first: it marks a message it is working
        on with a reaction and removes it when done, and that moves the link under the pointer.
        """
        message = self.channel_message(text)
        link = message.get_by_test_id("open-thread")
        await expect(link).to_be_visible()
        await expect(message.get_by_test_id("reaction")).to_have_count(0)
        await link.click()
        await expect(self.thread_pane).to_be_visible()

    async def switch_user(self, name: str) -> None:
        """Pick who you are in the top bar (this closes any open thread, as Slack would)."""
        picker = self.page.get_by_test_id("user-picker")
        option = picker.get_by_test_id(f"user-option-{name}")
        value = await option.get_attribute("value")
        assert value, f"no user {name!r} in the picker"
        await picker.select_option(value)
        await expect(picker).to_have_value(value)
        await expect(self.thread_pane).to_be_hidden()

    def thread_message(self, ts: str) -> Locator:
        return self.thread.locator(f'[data-testid="message"][data-ts="{ts}"]')

    def pending_reviews(self) -> Locator:
        """Thread messages that still carry the review buttons."""
        approve = self.page.get_by_role("button", name="Approve", exact=True)
        return self.thread.get_by_test_id("message").filter(has=approve)

    def ephemerals(self) -> Locator:
        """ "Only visible to you" messages, in the channel pane or the thread pane."""
        return self.page.locator('[data-testid="message"][data-ephemeral="true"]')

    async def pending_review(self, text: str) -> tuple[str, Locator]:
        """Wait for the one pending review mentioning `text`; its ts and a stable locator.

        The ts keys the message, so the locator follows it when the bot updates it in place.
        """
        review = self.pending_reviews().filter(has_text=text)
        await expect(review).to_have_count(1)
        for label in ("Approve", "Edit", "Feedback"):
            await expect(review.get_by_role("button", name=label, exact=True)).to_be_visible()
        ts = await review.get_attribute("data-ts")
        assert ts
        return ts, self.thread_message(ts)

    def modal_input(self, block_id: str) -> Locator:
        return self.modal.locator(f'[data-testid="modal-input"][data-block-id="{block_id}"]')

    def modal_error(self, block_id: str) -> Locator:
        return self.modal.locator(f'[data-testid="modal-error"][data-error-for="{block_id}"]')

    async def mark_page(self) -> None:
        """Tag this page load, to show later that nothing reloaded it."""
        await self.page.evaluate("window.__sameLoad = true")

    async def still_same_page_load(self) -> bool:
        return bool(await self.page.evaluate("window.__sameLoad === true"))
