"""Regenerate the documentation screenshots in docs/images/ from the real thing.

Starts an embedded PostgreSQL in a temporary directory, the Slack sandbox and the real bot
(offline planner, over signed loopback HTTP, exactly as the browser tests do, but with streamed
replies and task cards on, as in production, and alice and bob named as approvers), then drives
the sandbox's chat page in headless Chromium through three threads and saves:

* ``docs/images/review.png``: a pending ``invite_users`` review (people by name, the channel as
  #name) with its preview (who will be invited, who is already in), its Approve / Edit /
  Feedback buttons, the call's task card ("waiting for review") and the thread's status line
  ("is waiting for approval from alice or bob");
* ``docs/images/edit-modal.png``: the Edit modal with Slack's people picker, two people picked;
* ``docs/images/decided.png``: the same thread after "Edited and approved by": the card's
  changes and receipt ("What it did", linking the channel), the task card done, the tool's
  result and the agent's reply;
* ``docs/images/preview.png``: a pending ``post_message`` whose preview renders the message as
  Slack will show it (bold, emoji, the mention by name);
* ``docs/images/streaming.png``: an approved ``weather_search`` and the agent's reply caught
  half-written (its cursor), with the status line saying the agent is working.

Run from anywhere (the script puts the repository root on ``sys.path`` itself, so no
``PYTHONPATH`` is needed)::

    .venv/bin/python scripts/screenshots.py [--out DIR]

Needs Debian's Chromium (``apt-get install -y chromium``; or set ``CHROMIUM_PATH``). Emoji
render as boxes unless a colour emoji font is installed
(``apt-get install -y fonts-noto-color-emoji``). Images are 2x device scale factor, at most
1120 px wide and at most 400 KB each (the script fails otherwise). Nothing leaves the machine:
every server listens on 127.0.0.1.
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
from graph.offline import OfflinePlanner  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from tests.support.bot_harness import running_slack_env  # noqa: E402
from tests.support.browser import ChatPage, chromium_missing, launch_chromium  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "docs" / "images"
VIEWPORT: ViewportSize = {"width": 1240, "height": 1600}  # tall: a decided thread fits unscrolled
SCALE = 2
THREAD_WIDTH = 560  # CSS px: 1120 px in the image
PAD = 12
MAX_BYTES = 400_000  # per picture, so the README stays light
# Only for the pictures: a wider thread pane than the page's default 420 px, and its messages
# only as tall as they are, so the status line (below them) sits right under the last one.
SCREENSHOT_CSS = f".thread {{ width: {THREAD_WIDTH}px; }} .thread .messages {{ flex: none; }}"
# A fresh channel (the sandbox puts everyone in #general and #random) where bob already is, so
# the invite's preview has something to say and the edited invite succeeds.
CHANNEL = "launch-plan"
INVITE = f"@approvals invite @bob @carol to #{CHANNEL}"
POST = '@approvals post "Launch moves to *Friday* :rocket: thanks @bob!" to #general'
WEATHER = "@approvals what's the weather in Oslo?"
# Who may approve (as production would name them), so the thread status names people.
APPROVERS = {"*": frozenset({"U0ALICE", "U0BOB"})}
STREAM_PACE = 0.4  # seconds between streamed words: slow enough to catch the reply half-written


async def box(locator: Locator) -> FloatRect:
    found = await locator.bounding_box()
    if found is None:
        raise RuntimeError(f"{locator} is not visible")
    return found


async def shoot_thread(chat: ChatPage, path: Path) -> None:
    """The thread pane from its header down to just below its last message, or below the
    thread's status line when one is shown (it sits under the messages, as in Slack)."""
    await chat.page.mouse.move(0, 0)  # no hover highlight on any message
    pane = await box(chat.thread_pane)
    status = chat.page.get_by_test_id("thread-status")
    if await status.is_visible():  # its own padding is the margin: the reply box is just below
        last, pad = await box(status), 0
    else:
        last, pad = await box(chat.thread.get_by_test_id("message").last), PAD
    top = math.ceil(pane["y"]) + 1  # below the top bar's last pixel row
    bottom = min(last["y"] + last["height"] + pad, pane["y"] + pane["height"])
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


async def start_thread(chat: ChatPage, request: str, opened_by: str) -> None:
    """A fresh request in the channel, its thread open (any other thread closed first)."""
    close = chat.page.get_by_test_id("thread-close")
    if await close.is_visible():
        await close.click()
    await chat.send(request)
    await chat.open_thread(opened_by)
    await chat.page.get_by_test_id("thread-input").blur()


async def review_and_edit(chat: ChatPage, out: Path) -> list[Path]:
    """The invite: pending (preview, task card, status), the Edit modal, then decided."""
    shots = [out / "review.png", out / "edit-modal.png", out / "decided.png"]
    await start_thread(chat, INVITE, "invite")
    _, review = await chat.pending_review("invite_users")
    await expect(review).to_contain_text("is already in")  # the preview
    await expect(chat.page.get_by_test_id("thread-status")).to_contain_text("waiting for")
    await expect(chat.thread.get_by_test_id("task-card")).to_contain_text("waiting for review")
    await shoot_thread(chat, shots[0])

    await review.get_by_role("button", name="Edit", exact=True).click()
    users = chat.modal_input("arg:users")  # Slack's people picker (format slack-users)
    await users.select_option(["U0ALICE", "U0CAROL"])
    await users.blur()
    await shoot_modal(chat.page, shots[1])

    await chat.modal.get_by_test_id("modal-submit").click()
    await expect(chat.modal).to_have_count(0)
    await expect(review).to_contain_text("Edited and approved by")
    await expect(review).to_contain_text("What it did:")  # the receipt
    await expect(chat.thread.get_by_test_id("message").filter(has_text="Done.")).to_be_visible()
    await expect(chat.page.get_by_test_id("thread-status")).to_be_hidden()
    await shoot_thread(chat, shots[2])
    return shots


async def post_preview(chat: ChatPage, out: Path) -> Path:
    """A pending ``post_message``: its preview is the message as Slack will show it."""
    shot = out / "preview.png"
    await start_thread(chat, POST, "Launch moves")
    _, review = await chat.pending_review("post_message")
    await expect(review).to_contain_text("Preview: Will post in #general as the bot:")
    await shoot_thread(chat, shot)
    return shot


async def streamed_reply(chat: ChatPage, out: Path) -> Path:
    """An approved call's task done and the agent's reply caught half-written (its cursor)."""
    shot = out / "streaming.png"
    await start_thread(chat, WEATHER, "weather in Oslo")
    _, review = await chat.pending_review("weather_search")
    await review.get_by_role("button", name="Approve", exact=True).click()
    writing = chat.thread.locator('[data-testid="message"][data-streaming="true"]')
    await expect(writing).to_contain_text("overcast", timeout=30_000)  # some words, not all
    await shoot_thread(chat, shot)
    if await writing.count() != 1:  # still writing after the picture, so during it too
        raise RuntimeError("the reply was finished before its picture; run the script again")
    await expect(writing).to_have_count(0, timeout=60_000)  # finished: nothing left running
    return shot


async def drive(url: str, out: Path) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=SCALE)
            chat = ChatPage(await context.new_page())
            await chat.open(url)
            await chat.page.add_style_tag(content=SCREENSHOT_CSS)
            shots = await review_and_edit(chat, out)
            shots.append(await post_preview(chat, out))
            shots.append(await streamed_reply(chat, out))
            await context.close()
            return shots
        finally:
            await browser.close()


def add_channel(sandbox: Sandbox) -> None:
    """#launch-plan, made by the bot, with bob already in it (alice and carol are not)."""
    channel = sandbox.workspace.create_channel(CHANNEL, creator="U0BOT")
    sandbox.workspace.invite(channel.id, ["U0BOB"])


async def run(database_url: str, out: Path) -> list[Path]:
    """The bot as production runs it: replies streamed, reviewed calls shown as tasks."""
    OfflinePlanner.pace_seconds = STREAM_PACE  # this process only; the script exits after
    async with running_slack_env(
        database_url,
        approvers=APPROVERS,
        before_bot=add_channel,
        stream_replies=True,
        task_cards=True,
    ) as env:
        return await drive(env.sandbox.url, out)


def check_sizes(shots: list[Path]) -> None:
    too_big = [f"{s.name}: {s.stat().st_size} bytes" for s in shots if s.stat().st_size > MAX_BYTES]
    if too_big:
        raise SystemExit(f"over {MAX_BYTES} bytes: " + ", ".join(too_big))


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
            shots = asyncio.run(run(database_url, out))
        finally:
            stop_embedded_postgres(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    check_sizes(shots)
    return shots


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    for shot in main(parser.parse_args().out.resolve()):
        print(shot.relative_to(REPO_ROOT) if shot.is_relative_to(REPO_ROOT) else shot)
