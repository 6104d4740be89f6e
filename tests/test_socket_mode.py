"""Socket Mode against the sandbox: the wire protocol with a raw WebSocket client, then the
real bot on Bolt's AsyncSocketModeHandler (as bot/transport runs it with SLACK_APP_TOKEN),
end to end with no HTTP delivery at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from langchain_core.messages import AIMessage
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.config import BotSettings
from bot.server import Bot, running_bot
from graph import AgentSettings
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, running_sandbox
from tests.support.bot_harness import ALICE, BOT, review_messages, text_of
from tests.support.counting_tools import registry_with
from tests.support.faults import HeldExport
from tests.support.scripted_model import ScriptedModel, tool_calls

# Nobody listens on port 9: an HTTP delivery would fail, and be recorded.
DEAD_BOT_URL = "http://127.0.0.1:9/slack/events"


def socket_config(**overrides: Any) -> SandboxConfig:
    options: dict[str, Any] = {"port": 0, "bot_url": DEAD_BOT_URL, "retry_delays": (0.1, 0.2, 0.4)}
    return SandboxConfig(**{**options, **overrides})


async def api(sandbox: Sandbox, method: str, token: str | None, **args: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sandbox.api_url + method, data=args, headers=headers) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        return body


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> dict[str, Any]:
    message = await ws.receive(timeout=within)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


async def next_envelope(
    ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 5.0
) -> dict[str, Any]:
    """The next envelope of `kind`; envelopes of other kinds on the way are acked."""
    while True:
        envelope = await receive(ws, within)
        if envelope.get("type") == kind:
            return envelope
        if "envelope_id" in envelope:
            await ws.send_json({"envelope_id": envelope["envelope_id"]})


# ----- the protocol, with a raw WebSocket client ---------------------------


async def test_apps_connections_open_wants_the_app_level_token() -> None:
    config = socket_config()
    async with running_sandbox(config) as sandbox:
        assert await api(sandbox, "apps.connections.open", None) == {
            "ok": False,
            "error": "not_authed",
        }
        with_bot_token = await api(sandbox, "apps.connections.open", config.bot_token)
        assert with_bot_token == {"ok": False, "error": "not_allowed_token_type"}
        wrong = await api(sandbox, "apps.connections.open", "xapp-1-not-this-app")
        assert wrong == {"ok": False, "error": "invalid_auth"}
        posting = await api(
            sandbox, "chat.postMessage", config.app_token, channel="C0GENERAL", text="hi"
        )
        assert posting == {"ok": False, "error": "not_allowed_token_type"}

        opened = await api(sandbox, "apps.connections.open", config.app_token)
        assert opened["ok"] is True
        assert opened["url"].startswith(f"ws://127.0.0.1:{sandbox.config.port}/sandbox/socket?")
        assert "ticket=" in opened["url"]


async def test_hello_then_tickets_are_single_use_and_checked() -> None:
    config = socket_config()
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        url = (await api(sandbox, "apps.connections.open", config.app_token))["url"]
        async with http.ws_connect(url) as ws:
            hello = await receive(ws)
            assert hello["type"] == "hello"
            assert hello["connection_info"] == {"app_id": config.api_app_id}
            assert sandbox.socket.connected
            for refused in (url, url.replace("ticket=", "ticket=forged")):
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await http.ws_connect(refused)
                assert err.value.status == 403
        await sandbox.wait_for(lambda: not sandbox.socket.connected)


async def test_unacked_events_are_retried_on_the_socket() -> None:
    config = socket_config(ack_timeout=0.3)
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        url = (await api(sandbox, "apps.connections.open", config.app_token))["url"]
        async with http.ws_connect(url) as ws:
            assert (await receive(ws))["type"] == "hello"
            await sandbox.post_message(ALICE, "#general", "anyone there?")
            first = await next_envelope(ws, "events_api")
            assert first["payload"]["type"] == "event_callback"
            assert first["payload"]["event"]["text"] == "anyone there?"
            assert first["accepts_response_payload"] is False
            assert (first["retry_attempt"], first["retry_reason"]) == (0, "")
            # No ack: after ack_timeout the same event comes again as a retry.
            retry = await next_envelope(ws, "events_api")
            assert retry["payload"]["event_id"] == first["payload"]["event_id"]
            assert retry["envelope_id"] != first["envelope_id"]
            assert (retry["retry_attempt"], retry["retry_reason"]) == (1, "timeout")
            await ws.send_json({"envelope_id": retry["envelope_id"]})
            await sandbox.settle(5)
        attempts = [(d.kind, d.attempt, d.status, d.error) for d in sandbox.socket.deliveries]
        assert attempts == [("event", 0, None, "timeout"), ("event", 1, 200, None)]
        assert sandbox.workspace.deliveries == []  # nothing went over HTTP


async def test_interaction_ack_payload_is_the_response_body() -> None:
    config = socket_config()
    button = {"type": "button", "action_id": "poke", "text": {"type": "plain_text", "text": "Poke"}}
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        url = (await api(sandbox, "apps.connections.open", config.app_token))["url"]
        async with http.ws_connect(url) as ws:
            assert (await receive(ws))["type"] == "hello"
            posted = sandbox.web_api.call(
                "chat.postMessage",
                {
                    "channel": "C0GENERAL",
                    "text": "poke me",
                    "blocks": [{"type": "actions", "elements": [button]}],
                },
            )
            click = asyncio.create_task(
                sandbox.click_button(ALICE, "C0GENERAL", posted["ts"], "poke")
            )
            envelope = await next_envelope(ws, "interactive")
            assert envelope["payload"]["type"] == "block_actions"
            assert envelope["payload"]["actions"][0]["action_id"] == "poke"
            assert "retry_attempt" not in envelope
            await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"ok": 1}})
            response = await click
        assert response.status == 200 and response.json() == {"ok": 1}
        assert sandbox.workspace.deliveries == []


# ----- the real bot in Socket Mode -------------------------------------------


@dataclass
class SocketEnv:
    sandbox: Sandbox
    bot: Bot
    handler: AsyncSocketModeHandler


@pytest.fixture
async def socket_env(database_url: str) -> AsyncIterator[SocketEnv]:
    config = socket_config()
    async with running_sandbox(config) as sandbox:
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret="",
            app_token=config.app_token,
            api_url=sandbox.api_url,
            agent=AgentSettings(database_url=database_url),
        )
        assert settings.socket_mode
        async with running_bot(settings) as bot:
            # As bot/transport builds it: the handler opens its connection through the
            # app's own client, whose base_url is the sandbox.
            handler = AsyncSocketModeHandler(bot.app, settings.app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            try:
                await sandbox.wait_for(lambda: sandbox.socket.connected)
                yield SocketEnv(sandbox, bot, handler)
                await sandbox.settle(5)
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]


def message(sandbox: Sandbox, thread_ts: str, ts: str) -> dict[str, Any]:
    return next(m for m in sandbox.replies("C0GENERAL", thread_ts) if m["ts"] == ts)


def assert_all_over_the_socket(sandbox: Sandbox, *kinds: str) -> None:
    """No HTTP delivery was even attempted, and every envelope was acked in time."""
    assert sandbox.workspace.deliveries == []
    records = sandbox.socket.deliveries
    assert all(d.status == 200 for d in records), [(d.kind, d.error) for d in records]
    assert set(kinds) <= {d.kind for d in records}


async def test_mention_review_approve_over_socket_mode(socket_env: SocketEnv) -> None:
    sandbox = socket_env.sandbox
    opened = sandbox.calls_of("apps.connections.open")
    assert [c.ok for c in opened] == [True]
    assert opened[0].token == sandbox.config.app_token

    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> what's the weather in sf?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
    assert "weather_search" in text_of(review)

    response = await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    assert response.status == 200
    await sandbox.wait_for(lambda: "Approved by" in text_of(message(sandbox, ts, review["ts"])))
    [result] = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", ts) if "returned:" in text_of(m)]
    )
    assert "`weather_search` returned" in text_of(result) and "in sf" in text_of(result)
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", ts) if "Done." in text_of(m)]
    )
    assert not review_messages(sandbox, "C0GENERAL", ts)
    await sandbox.settle(5)
    assert_all_over_the_socket(sandbox, "event", "block_actions")


async def test_edit_modal_errors_come_back_in_the_socket_ack(socket_env: SocketEnv) -> None:
    sandbox = socket_env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> invite <@U0BOB> to #general")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert modal["callback_id"] == "review_edit_submit"

    broken = await sandbox.submit_modal(ALICE, {"arg:users": ["oops"]})
    # users is a people picker now: a value that is no Slack user id is refused all the same
    assert "not Slack user ids" in broken.errors["arg:users"] and not broken.closed
    assert broken.response is not None
    ack = broken.response.json()  # the ack's payload, as the socket carried it
    assert ack["response_action"] == "errors" and "arg:users" in ack["errors"]
    [submission] = [d for d in sandbox.socket.deliveries if d.kind == "view_submission"]
    assert submission.status == 200
    assert not sandbox.calls_of("conversations.invite")

    done = await sandbox.submit_modal(ALICE, {"arg:users": ["U0BOB", "U0CAROL"]})
    assert done.closed
    invite = await sandbox.wait_for_call("conversations.invite")
    assert invite.args["users"] == "U0BOB,U0CAROL"
    await sandbox.wait_for(
        lambda: "Edited and approved by" in text_of(message(sandbox, thread, review["ts"]))
    )
    await sandbox.settle(5)
    assert_all_over_the_socket(sandbox, "event", "block_actions", "view_submission")


async def test_the_bots_exit_waits_for_a_listener_started_outside_a_request_scope(
    database_url: str,
) -> None:
    """A handler without the transport's request scope (this module's, or any Bolt adapter):
    the listener Bolt starts for a click still belongs to the bot, so leaving ``running_bot``
    waits for it (bounded) before the pools close, and no task of it is left pending. Before,
    the exit closed the pools under the running decision, which then failed with PoolClosed in
    whatever ran next on the loop (the next test's logs)."""
    export = HeldExport()
    started, release = export.started, export.release
    model = ScriptedModel([tool_calls(("slow_export", {"table": "orders"})), AIMessage("all done")])
    config = socket_config()
    before = asyncio.all_tasks()
    async with running_sandbox(config) as sandbox:
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret="",
            app_token=config.app_token,
            api_url=sandbox.api_url,
            agent=AgentSettings(database_url=database_url),
        )

        async def release_once_draining(bot: Bot) -> None:
            async with asyncio.timeout(30):
                # draining is a flag, not an event: set when the exit has begun
                while not bot.work.draining:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            release.set()

        async with running_bot(settings, model=model, registry=registry_with(export.tool)) as bot:
            handler = AsyncSocketModeHandler(bot.app, settings.app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            try:
                await sandbox.wait_for(lambda: sandbox.socket.connected)
                ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> export the orders")
                [review] = await sandbox.wait_for(
                    lambda: review_messages(sandbox, "C0GENERAL", ts), 10
                )
                await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
                await asyncio.wait_for(started.wait(), 10)
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
            releaser = asyncio.create_task(release_once_draining(bot))
        left = [
            task
            for task in asyncio.all_tasks() - before
            if not task.done() and "run_ack_function" in repr(task.get_coro())
        ]
        assert left == [], "the bot's exit left its listener running"
        assert releaser.done()
        replies = [text_of(m) for m in sandbox.replies("C0GENERAL", ts)]
        assert any("exported orders" in text for text in replies), replies
        assert any("all done" in text for text in replies), replies
