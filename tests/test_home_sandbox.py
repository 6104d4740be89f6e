"""The sandbox's App Home and slash commands, checked against Slack's own libraries: a Bolt app
with request verification on receives them over signed HTTP, and the real bot receives them
over Socket Mode."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.config import BotSettings
from bot.server import running_bot
from graph import AgentSettings
from sandbox import Sandbox, SandboxConfig, running_sandbox
from sandbox.errors import ApiError
from tests.support.bot_harness import ALICE, BOT, CAROL, review_messages, text_of

SECRET = "home-test-secret"
TOKEN = "xoxb-home-test"
HOME = {
    "type": "home",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hello* from Home"}}],
}


@dataclass
class Env:
    sandbox: Sandbox
    received: list[dict[str, Any]] = field(default_factory=list)


def mini_bot(received: list[dict[str, Any]], api_url: str) -> AsyncApp:
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=TOKEN, base_url=api_url),
        request_verification_enabled=True,
    )

    @app.command("/approvals")
    async def approvals(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        received.append(body)
        if body["text"] == "ack-text":
            await ack(text="answered in the ack")
            return
        await ack()
        await respond(text=f"later, for {body['user_name']}", response_type="ephemeral")

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        received.append(event)
        if event["tab"] == "home":
            await client.views_publish(user_id=event["user"], view=HOME)

    return app


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    config = SandboxConfig(
        port=0,
        bot_url=f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events",
        signing_secret=SECRET,
        bot_token=TOKEN,
        retry_delays=(0.05,),
    )
    async with running_sandbox(config) as sandbox:
        received: list[dict[str, Any]] = []
        handler = AsyncSlackRequestHandler(mini_bot(received, sandbox.api_url))

        async def endpoint(request: Request) -> Response:
            return await handler.handle(request)

        app = Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        try:
            yield Env(sandbox, received)
            await sandbox.settle(5)
        finally:
            server.should_exit = True
            await task
            sock.close()


async def test_slash_command_is_a_signed_form_post_with_slacks_fields(env: Env) -> None:
    sandbox = env.sandbox
    response = await sandbox.run_command(ALICE, "#general", "/approvals", text="  some words ")
    assert response.status == 200  # Bolt verified the signature and acked
    [body] = env.received
    assert body["command"] == "/approvals" and body["text"] == "  some words "
    assert body["user_id"] == ALICE and body["user_name"] == "alice"
    assert body["channel_id"] == "C0GENERAL" and body["channel_name"] == "general"
    assert body["team_id"] == "T0SANDBOX" and body["api_app_id"] == "A0SANDBOX"
    assert body["trigger_id"] and body["response_url"].startswith(sandbox.url)
    [delivery] = [d for d in sandbox.workspace.deliveries if d.kind == "command"]
    assert delivery.status == 200 and delivery.id == "/approvals"
    [later] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE, "C0GENERAL"))
    assert later["text"] == "later, for alice" and later["visible_to"] == ALICE
    assert sandbox.messages("C0GENERAL") == []  # nothing public


async def test_an_ack_with_a_message_is_shown_only_to_the_person(env: Env) -> None:
    sandbox = env.sandbox
    dm = sandbox.open_dm(CAROL)
    await sandbox.run_command(CAROL, BOT, "/approvals", text="ack-text")
    [body] = env.received
    assert body["channel_id"] == dm and body["channel_name"] == "directmessage"
    [shown] = sandbox.ephemerals(CAROL, dm)
    assert shown["text"] == "answered in the ack"


async def test_unknown_commands_and_outsiders_are_refused_like_slacks_client(env: Env) -> None:
    with pytest.raises(ApiError, match="invalid_command"):
        await env.sandbox.run_command(ALICE, "#general", "/deploy")
    env.sandbox.workspace.channels["C0RANDOM"].members.discard(ALICE)
    with pytest.raises(ApiError, match="not_in_channel"):
        await env.sandbox.run_command(ALICE, "#random", "/approvals")
    assert env.received == []


async def test_opening_home_sends_app_home_opened_and_shows_the_published_view(env: Env) -> None:
    sandbox = env.sandbox
    await sandbox.open_home(ALICE)
    home = await sandbox.wait_for(lambda: sandbox.home(ALICE))
    assert home["type"] == "home" and "Hello" in home["blocks"][0]["text"]["text"]
    [first] = env.received
    assert first["type"] == "app_home_opened" and first["tab"] == "home"
    assert first["user"] == ALICE and first["channel"] == sandbox.open_dm(ALICE)
    assert "view" not in first  # nothing was published yet

    await sandbox.open_home(ALICE)  # the second time, Slack includes the current view
    second = await sandbox.wait_for(lambda: env.received[1:])
    assert second[0]["view"]["id"] == home["id"]
    await sandbox.open_home(ALICE, tab="messages")
    third = await sandbox.wait_for(lambda: env.received[2:])
    assert third[0]["tab"] == "messages"
    assert sandbox.home(CAROL) is None


async def test_the_page_opens_home_runs_commands_and_follows_message_links(env: Env) -> None:
    sandbox = env.sandbox
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        opened = await http.post("/sandbox/api/home", json={"user": ALICE})
        assert opened.json() == {"ok": True}
        await sandbox.wait_for(lambda: sandbox.home(ALICE))
        views = (await http.get(f"/sandbox/api/views/{ALICE}")).json()
        assert views["home"]["blocks"][0]["text"] == HOME["blocks"][0]["text"]

        typed = {"user": ALICE, "channel": "C0GENERAL", "text": "/approvals  ack-text"}
        ran = (await http.post("/sandbox/api/commands", json=typed)).json()
        assert ran["ok"] and ran["status"] == 200
        assert env.received[-1]["text"] == "ack-text"
        unknown = {"user": ALICE, "channel": "C0GENERAL", "text": "/nope"}
        refused = await http.post("/sandbox/api/commands", json=unknown)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_command"

        link = await http.get("/archives/C0GENERAL/p1700000000000100")
        assert link.status_code == 302
        assert link.headers["location"] == "/#channel=C0GENERAL&thread=1700000000.000100"
        page = await http.get("/")
        assert 'data-testid="home-pane"' in page.text and 'data-testid="app-list"' in page.text


# ----- the real bot, over Socket Mode ------------------------------------------------


async def test_home_and_approvals_over_socket_mode(database_url: str) -> None:
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=(0.1,))
    async with running_sandbox(config) as sandbox:
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret="",
            app_token=config.app_token,
            api_url=sandbox.api_url,
            approvers={"*": frozenset({ALICE})},
            agent=AgentSettings(database_url=database_url),
        )
        async with running_bot(settings) as bot:
            handler = AsyncSocketModeHandler(bot.app, settings.app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            try:
                await sandbox.wait_for(lambda: sandbox.socket.connected)
                started = time.time()
                ts = await sandbox.post_message(
                    CAROL, "#general", f"<@{BOT}> what's the weather in Riga?"
                )
                await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
                response = await sandbox.run_command(ALICE, "#general", "/approvals")
                assert response.status == 200
                [answer] = await sandbox.wait_for(
                    lambda: [e for e in sandbox.ephemerals(ALICE) if "Riga" in text_of(e)]
                )
                assert "weather_search" in text_of(answer)
                await sandbox.open_home(ALICE)
                home = await sandbox.wait_for(
                    lambda: (h := sandbox.home(ALICE)) and "Riga" in text_of(h) and h
                )
                assert home["type"] == "home"
                await sandbox.settle(5)
                assert sandbox.workspace.deliveries == []  # nothing went over HTTP
                kinds = {d.kind for d in sandbox.socket.deliveries if d.time >= started}
                assert {"command", "event"} <= kinds
                assert all(d.status == 200 for d in sandbox.socket.deliveries)
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
