"""The name cache (bot.names) against the sandbox's real HTTP Web API: names are asked once and
kept (bounded, with a time to live), refusals and silence show the id, and redacted values are
never looked up."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.names import NameCache
from bot.readable import Names
from graph import ReviewRequest
from graph.tools.registry import build_registry
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, running_sandbox

REGISTRY = build_registry()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def invite(users: list[str], channel: str = "C0GENERAL") -> ReviewRequest:
    return ReviewRequest(
        question="Is this correct?",
        tool_call={"name": "invite_users", "args": {"channel": channel, "users": users}, "id": "t"},
        tool=REGISTRY.info("invite_users"),
        requested_by="U0ALICE",
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(SandboxConfig(port=0)) as running:
        yield running


def client_for(sandbox: Sandbox) -> AsyncWebClient:
    return AsyncWebClient(token=sandbox.config.bot_token, base_url=sandbox.api_url)


def asked(sandbox: Sandbox, method: str) -> list[Any]:
    return [call.args.get("user") or call.args.get("channel") for call in sandbox.calls_of(method)]


async def test_names_are_asked_once_and_kept_until_they_expire(sandbox: Sandbox) -> None:
    clock = Clock()
    cache = NameCache(client_for(sandbox), hit_seconds=600, miss_seconds=60, clock=clock)
    request = invite(["U0BOB", "U0NOBODY", "U0CAROL"])
    names = await cache.names_for(request)
    assert names == Names(
        users={"U0BOB": "bob", "U0CAROL": "carol"}, channels={"C0GENERAL": "general"}
    )
    assert sorted(asked(sandbox, "users.info")) == ["U0BOB", "U0CAROL", "U0NOBODY"]
    assert asked(sandbox, "conversations.info") == ["C0GENERAL"]

    # Hits and misses are both kept: a second card asks Slack nothing.
    assert await cache.names_for(request) == names
    assert len(sandbox.calls_of("users.info")) == 3

    # A miss expires first (someone may have joined), then the names (someone may rename).
    clock.now += 61
    await cache.names_for(request)
    assert asked(sandbox, "users.info")[3:] == ["U0NOBODY"]
    clock.now += 600
    sandbox.workspace.user("U0BOB").name = "bobby"
    renamed = await cache.names_for(request)
    assert renamed.users["U0BOB"] == "bobby"
    assert (
        len(sandbox.calls_of("users.info")) == 7
        and len(sandbox.calls_of("conversations.info")) == 2
    )


async def test_the_card_shows_the_id_when_slack_refuses(sandbox: Sandbox) -> None:
    sandbox.workspace.create_channel("secret-plans", creator="U0ALICE", is_private=True)
    hidden = next(c.id for c in sandbox.workspace.channels.values() if c.name == "secret-plans")
    cache = NameCache(client_for(sandbox))
    request = invite(["U0NOBODY"], channel=hidden)
    names = await cache.names_for(request)
    assert names == Names()
    errors = [call.error for call in sandbox.calls_of("conversations.info")]
    assert errors == ["channel_not_found"]  # the bot is not in it, as Slack answers
    text = "\n".join(
        b["text"]["text"]
        for b in blocks.review_blocks(request, "r", names=names)
        if b["type"] == "section"
    )
    assert f"`{hidden}`" in text and "• `U0NOBODY`" in text


async def test_a_rate_limit_or_outage_shows_the_id_and_is_not_asked_again_at_once(
    sandbox: Sandbox,
) -> None:
    sandbox.web_api.fail_next("users.info", 500)
    cache = NameCache(client_for(sandbox))
    assert await cache.names_for(invite(["U0BOB"])) == Names(channels={"C0GENERAL": "general"})
    assert await cache.names_for(invite(["U0BOB"])) == Names(channels={"C0GENERAL": "general"})
    assert len(sandbox.calls_of("users.info")) == 1


async def test_redacted_values_are_never_looked_up(sandbox: Sandbox) -> None:
    cache = NameCache(client_for(sandbox))
    masked = invite(["U0BOB"])
    masked["tool_call"]["args"] = {"channel": "[redacted]", "users": "[redacted]"}
    assert await cache.names_for(masked) == Names()
    assert not sandbox.calls_of("users.info") and not sandbox.calls_of("conversations.info")


async def test_a_slack_that_never_answers_is_waited_for_a_bounded_time() -> None:
    """A loopback server that accepts and never replies: each lookup gives up after its
    timeout, all of them at once, and the card shows ids."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.setblocking(False)
    held: list[socket.socket] = []

    async def accept() -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(server)
            held.append(conn)

    acceptor = asyncio.create_task(accept())
    try:
        port = server.getsockname()[1]
        client = AsyncWebClient(token="xoxb-x", base_url=f"http://127.0.0.1:{port}/api/")
        cache = NameCache(client, timeout=0.3)
        request = invite([f"U0P{i}" for i in range(10)])
        names = await asyncio.wait_for(cache.names_for(request), 30)
        assert names == Names()
        assert cache.calls == 11
        # known unknown for a while: the next card does not wait again
        assert await asyncio.wait_for(cache.names_for(request), 30) == Names()
        assert cache.calls == 11
    finally:
        acceptor.cancel()
        for conn in held:
            conn.close()
        server.close()


async def test_the_cache_is_bounded(sandbox: Sandbox) -> None:
    cache = NameCache(client_for(sandbox), max_entries=2)
    for users in (["U0ALICE"], ["U0BOB"], ["U0CAROL"], ["U0CAROL"], ["U0ALICE"]):
        await cache.names_for(invite(users, channel="#general"))  # a name: nothing to ask
    # two entries at most: alice, least recently used, was forgotten and is asked again;
    # carol, kept, is not
    assert asked(sandbox, "users.info") == ["U0ALICE", "U0BOB", "U0CAROL", "U0ALICE"]
