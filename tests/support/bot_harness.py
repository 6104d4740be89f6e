"""The bot, running for real: its HTTP app under uvicorn on loopback, talking to the Slack
sandbox over real HTTP with signed requests (verification on), and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from bot.blocks import parse_button_value
from bot.config import BotSettings
from bot.limits import TurnLimits
from bot.server import Bot, http_app, http_server, running_bot
from graph import AgentSettings
from graph.model import ChatModel
from graph.remote import RemoteSettings
from graph.tools.registry import ToolRegistry
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, running_sandbox

BOT = "U0BOT"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.setblocking(False)
    return sock


@dataclass
class SlackEnv:
    sandbox: Sandbox
    bot: Bot
    bot_url: str


@asynccontextmanager
async def running_slack_env(
    database_url: str,
    *,
    model: ChatModel | None = None,
    registry: ToolRegistry | None = None,
    approvers: Mapping[str, frozenset[str]] | None = None,
    policy_file: Path | None = None,
    sweep_seconds: float = 0,
    sandbox_options: Mapping[str, Any] | None = None,
    turn_limits: TurnLimits | None = None,
    remote: RemoteSettings | None = None,
    before_bot: Callable[[Sandbox], None] | None = None,
    stream_replies: bool = False,
    task_cards: bool = False,
    ack_process: bool = False,
) -> AsyncIterator[SlackEnv]:
    """``turn_limits``: none unless given (tests send many messages as one person quickly).
    ``remote``: drive a graph on LangGraph Server (``AGENT_URL``) instead of one in process.
    ``before_bot``: set up the workspace (channels, user groups) before the bot starts.
    ``stream_replies``: stream the agent's replies (``bot.streaming``, on in production); off
    by default so a test that reads a reply as soon as it appears never sees it half-written
    (``tests/test_streaming.py`` turns it on). ``task_cards``: each reviewed call also shown as
    a task message (``bot.task_cards``, on in production); off by default so the threads older
    tests count stay as they were (``tests/test_task_cards.py`` turns it on). ``ack_process``:
    serve as ``python -m bot`` does, with the acknowledging process in front
    (``bot.transport.acker``, on in production); off by default, so most tests need no child
    process (``tests/test_acker.py`` turns it on)."""
    sock = listening_socket()
    bot_url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    config = SandboxConfig(
        port=0, bot_url=bot_url, retry_delays=(0.2, 0.4, 0.8), **dict(sandbox_options or {})
    )
    async with running_sandbox(config) as sandbox:
        if before_bot is not None:
            before_bot(sandbox)
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret=config.signing_secret,
            api_url=sandbox.api_url,
            approvers=dict(approvers or {}),
            policy_file=policy_file,
            sweep_seconds=sweep_seconds,
            agent=AgentSettings(database_url=database_url),
            turn_limits=turn_limits or TurnLimits.unlimited(),
            remote=remote,
            stream_replies=stream_replies,
            task_cards=task_cards,
            ack_process=ack_process,
        )
        async with running_bot(settings, model=model, registry=registry) as bot:
            if ack_process:
                async with http_server(bot, sock=sock):
                    try:
                        yield SlackEnv(sandbox, bot, bot_url)
                    finally:
                        await sandbox.settle(5)
                sock.close()
                return
            server = uvicorn.Server(
                uvicorn.Config(
                    http_app(bot),
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                )
            )
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            try:
                yield SlackEnv(sandbox, bot, bot_url)
            finally:
                await sandbox.settle(5)
                server.should_exit = True
                await task
                sock.close()


def review_messages(sandbox: Sandbox, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """Messages in the thread that carry review buttons."""
    return [
        message
        for message in sandbox.replies(channel, thread_ts)
        if any(block.get("type") == "actions" for block in message.get("blocks") or [])
    ]


def review_ref(message: Mapping[str, Any]) -> str:
    """The review ref a card's buttons carry (``bot.blocks.button_value``: ref and version)."""
    for block in message.get("blocks") or []:
        if block.get("type") == "actions" and block.get("elements"):
            return parse_button_value(str(block["elements"][0]["value"]))[0]
    raise AssertionError("the message has no review buttons")


async def card_recorded(env: SlackEnv, card: Mapping[str, Any], within: float = 10.0) -> None:
    """Wait (bounded) until the bot has recorded the card's message. Slack shows a card as
    soon as it is posted, and the bot records it when the post's answer comes back: a test
    that counts the card's updates waits for this first (a decision in between is painted
    twice, by the decider and by the poster: ``ReviewEffects._paint``, ``Turns._store_card``)."""
    deadline = asyncio.get_running_loop().time() + within
    ref = review_ref(card)
    while True:
        row = await env.bot.flow.store.get(ref)
        if row is not None and card["ts"] in row.messages:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the card {card['ts']} was not recorded within {within:.0f}s")
        await asyncio.sleep(0.02)


def text_of(message: Mapping[str, Any]) -> str:
    """All visible text of a message: its fallback text and every block's text."""
    parts = [str(message.get("text") or "")]
    for block in message.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[list[T]]], within: float = 10.0) -> list[T]:
    """Poll an async probe until it finds something (bounded: TimeoutError after ``within``)."""
    deadline = asyncio.get_running_loop().time() + within
    while not (found := await probe()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing found within {within:.0f}s")
        await asyncio.sleep(0.05)
    return found
