"""Regenerate the documentation screenshots in docs/images/ from the real thing.

Starts an embedded PostgreSQL in a temporary directory, the Slack sandbox and the real bot
(offline planner, over signed loopback HTTP, exactly as the browser tests do), then drives the
sandbox's chat page in headless Chromium through one review and saves:

* ``docs/images/review.png``: a pending review with its Approve / Edit / Feedback buttons,
  in the thread pane;
* ``docs/images/edit-modal.png``: the Edit modal with Slack's people picker, two people picked;
* ``docs/images/decided.png``: the same message after "Edited and approved by", with the
  tool's result and the agent's reply below it.

Run from anywhere (the script puts the repository root on ``sys.path`` itself, so no
``PYTHONPATH`` is needed)::

    .venv/bin/python scripts/screenshots.py [--out DIR]

Needs Debian's Chromium (``apt-get install -y chromium``; or set ``CHROMIUM_PATH``). Emoji
render as boxes unless a colour emoji font is installed
(``apt-get install -y fonts-noto-color-emoji``). Images are 2x device scale factor and at most
1120 px wide. Nothing leaves the machine: every server listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from playwright.async_api import (  # noqa: E402
    FloatRect,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from graph.db import start_embedded_postgres, stop_embedded_postgres  # noqa: E402
from tests.support.bot_harness import running_slack_env  # noqa: E402
from tests.support.browser import ChatPage, chromium_missing, launch_chromium  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "docs" / "images"
VIEWPORT: ViewportSize = {"width": 1240, "height": 900}
SCALE = 2
THREAD_WIDTH = 560  # CSS px: 1120 px in the image
PAD = 12
# Only for the pictures: a wider thread pane than the page's default 420 px.
SCREENSHOT_CSS = f".thread {{ width: {THREAD_WIDTH}px; }}"
# A fresh channel (the sandbox puts everyone in #general and #random), so the invite succeeds.
CHANNEL = "launch-plan"
REQUEST = f"@approvals invite @bob to #{CHANNEL}"


async def box(locator: Locator) -> FloatRect:
    found = await locator.bounding_box()
    if found is None:
        raise RuntimeError(f"{locator} is not visible")
    return found


async def shoot_thread(chat: ChatPage, path: Path) -> None:
    """The thread pane from its header down to just below its last message."""
    await chat.page.mouse.move(0, 0)  # no hover highlight on any message
    pane = await box(chat.thread_pane)
    last = await box(chat.thread.get_by_test_id("message").last)
    top = math.ceil(pane["y"]) + 1  # below the top bar's last pixel row
    bottom = min(last["y"] + last["height"] + PAD, pane["y"] + pane["height"])
    clip: FloatRect = {"x": pane["x"], "y": top, "width": pane["width"], "height": bottom - top}
    await chat.page.screenshot(path=path, clip=clip, animations="disabled", caret="hide")


async def shoot_modal(page: Page, path: Path) -> None:
    """The modal with a margin of the dimmed page around it."""
    modal = await box(page.get_by_test_id("modal"))
    margin = 24
    clip: FloatRect = {
        "x": modal["x"] - margin,
        "y": modal["y"] - margin,
        "width": modal["width"] + 2 * margin,
        "height": modal["height"] + 2 * margin,
    }
    await page.screenshot(path=path, clip=clip, animations="disabled", caret="hide")


async def drive(url: str, out: Path) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context(
                viewport=VIEWPORT,
                device_scale_factor=SCALE,
            )
            page = await context.new_page()
            chat = ChatPage(page)
            await chat.open(url)
            await page.add_style_tag(content=SCREENSHOT_CSS)

            await chat.send(REQUEST)
            await chat.open_thread("invite")
            _, review = await chat.pending_review("invite_users")
            await page.get_by_test_id("thread-input").blur()
            shots = [out / "review.png", out / "edit-modal.png", out / "decided.png"]
            await shoot_thread(chat, shots[0])

            await review.get_by_role("button", name="Edit", exact=True).click()
            users = chat.modal_input("arg:users")  # Slack's people picker (format slack-users)
            await users.select_option(["U0BOB", "U0CAROL"])
            await users.blur()
            await shoot_modal(page, shots[1])

            await chat.modal.get_by_test_id("modal-submit").click()
            await expect(chat.modal).to_have_count(0)
            await expect(review).to_contain_text("Edited and approved by")
            reply = chat.thread.get_by_test_id("message").filter(has_text="Done.")
            await expect(reply).to_be_visible()
            await shoot_thread(chat, shots[2])
            await context.close()
            return shots
        finally:
            await browser.close()


async def run(database_url: str, out: Path) -> list[Path]:
    async with running_slack_env(database_url) as env:
        env.sandbox.workspace.create_channel(CHANNEL, creator="U0BOT")
        return await drive(env.sandbox.url, out)


def main(out: Path) -> list[Path]:
    """Blocking set-up (directories, PostgreSQL) here; the servers and browser in one loop."""
    missing = chromium_missing()
    if missing:
        raise SystemExit(missing)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="approval-bot-screenshots-pg-"))
    data_dir.chmod(0o755)  # the server may run as another system user when we are root
    try:
        database_url = start_embedded_postgres(data_dir)
        try:
            return asyncio.run(run(database_url, out))
        finally:
            stop_embedded_postgres(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    for shot in main(parser.parse_args().out.resolve()):
        print(shot.relative_to(REPO_ROOT) if shot.is_relative_to(REPO_ROOT) else shot)
