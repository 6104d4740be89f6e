"""``python -m bot`` as operators run it: a real process with JSON logs, driven through a real
review in the Slack sandbox, then stopped with SIGTERM. Its stderr is the evidence."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from bot.logs import REDACTED
from sandbox.config import SandboxConfig
from sandbox.server import running_sandbox
from tests.support.bot_harness import ALICE, BOT, review_messages, text_of
from tests.support.chaos import bot_env, free_port

ROOT = Path(__file__).resolve().parent.parent
# Looks like a real key so the secret filter has something to catch if it ever leaks.
EXTRA_SECRET = "sk-ops-test-0123456789abcdef"


def read(path: Path) -> str:
    """A finished or still-growing log file (small; read synchronously)."""
    return path.read_text()


async def wait_ready(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for _ in range(600):
            if process.returncode is not None:
                raise AssertionError(f"bot exited {process.returncode}:\n{read(log)}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the bot never became ready")


async def test_json_logs_of_a_real_review_hold_no_secret_and_sigterm_exits_cleanly(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    config = SandboxConfig(port=0, bot_url=f"http://127.0.0.1:{port}/slack/events")
    log_file = tmp_path / "bot.log"
    async with running_sandbox(config) as sandbox:
        env = bot_env(
            SLACK_BOT_TOKEN=config.bot_token,
            SLACK_SIGNING_SECRET=config.signing_secret,
            SLACK_API_URL=sandbox.api_url,
            DATABASE_URL=database_url,
            HOST="127.0.0.1",
            PORT=str(port),
            LOG_FORMAT="json",
            # DEBUG makes the Slack SDK log request bodies, which will carry a secret below.
            LOG_LEVEL="DEBUG",
            OPS_TEST_SERVICE_TOKEN=EXTRA_SECRET,
        )
        with log_file.open("w") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=log, stderr=log
            )
            try:
                await wait_ready(f"http://127.0.0.1:{port}", process, log_file)
                # Someone pastes secrets into the chat: the bot echoes them back to Slack, and
                # the SDK's debug log of that request must not show them.
                ts = await sandbox.post_message(
                    ALICE,
                    "#general",
                    f"<@{BOT}> what's the weather in {config.signing_secret} and {EXTRA_SECRET}?",
                )
                # "in A and B": the offline planner proposes two calls, so two reviews.
                [reviews] = await sandbox.wait_for(
                    lambda: (
                        [r] if len(r := review_messages(sandbox, "C0GENERAL", ts)) == 2 else None
                    ),
                    within=30,
                )
                for review in reviews:
                    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
                await sandbox.wait_for(
                    lambda: [m for m in sandbox.replies("C0GENERAL", ts) if "Done." in text_of(m)],
                    within=30,
                )
                await sandbox.settle(5)
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 60)

    output = log_file.read_text()
    assert process.returncode == 0, output
    entries: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines() if line]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    for secret in (config.signing_secret, config.bot_token, EXTRA_SECRET):
        assert secret not in output
    assert any(REDACTED in json.dumps(entry) for entry in entries), "nothing was redacted"
    thread_id = f"slack:T0SANDBOX:C0GENERAL:{ts}"
    in_thread = [e for e in entries if e.get("thread_id") == thread_id]
    assert in_thread, "no line names the conversation"
    assert any(e.get("review_ref") for e in entries), "no line names the review"
    messages = [e["message"] for e in entries]
    assert any("SIGTERM received" in m for m in messages)
    assert messages[-1] == "shut down cleanly"


async def test_migrate_command_prepares_the_database(database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "migrate",
        cwd=ROOT,
        env=bot_env(DATABASE_URL=database_url, LOG_FORMAT="json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"database is up to date" in stdout
    # Twice in a row is fine: migrations are idempotent.
    again = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "migrate",
        cwd=ROOT,
        env=bot_env(DATABASE_URL=database_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await again.wait() == 0
