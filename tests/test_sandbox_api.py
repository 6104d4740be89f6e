"""The sandbox's Web API and delivery, exercised over real loopback HTTP.

A real slack_sdk client calls the Web API, and a real Bolt app (request
verification on) receives what the sandbox delivers, so both directions are
checked against Slack's own client libraries rather than our assumptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sandbox import FakeClock, Sandbox, SandboxConfig, running_sandbox
from sandbox.signing import signature

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"

APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Approve tool call?"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*send_email* to bob"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": "call-1",
            },
            {
                "type": "button",
                "action_id": "edit",
                "text": {"type": "plain_text", "text": "Edit"},
                "value": "call-1",
            },
        ],
    },
]

EDIT_VIEW: dict[str, Any] = {
    "type": "modal",
    "callback_id": "edit_modal",
    "title": {"type": "plain_text", "text": "Edit arguments"},
    "submit": {"type": "plain_text", "text": "Save"},
    "private_metadata": "call-1",
    "blocks": [
        {
            "type": "input",
            "block_id": "args",
            "label": {"type": "plain_text", "text": "Arguments"},
            "element": {"type": "plain_text_input", "action_id": "json", "multiline": True},
        },
        {
            "type": "input",
            "block_id": "level",
            "optional": True,
            "label": {"type": "plain_text", "text": "Level"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [
                    {"text": {"type": "plain_text", "text": "Low"}, "value": "low"},
                    {"text": {"type": "plain_text", "text": "High"}, "value": "high"},
                ],
            },
        },
    ],
}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """Run an ASGI app under uvicorn on an already bound loopback socket."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Env:
    sandbox: Sandbox
    client: AsyncWebClient
    received: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["kind"] == kind]


def bolt_app(env_received: list[dict[str, Any]], api_url: str) -> AsyncApp:
    """A miniature approval bot: verification on, like production."""
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=TOKEN, base_url=api_url),
        request_verification_enabled=True,
    )

    @app.event("app_mention")
    async def mention(event: dict[str, Any], say: Any) -> None:
        env_received.append({"kind": "app_mention", "event": event})
        await say(text="on it", thread_ts=event["ts"])

    @app.event("message")
    async def message(event: dict[str, Any]) -> None:
        env_received.append({"kind": "message", "event": event})

    @app.action("approve")
    async def approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        env_received.append({"kind": "block_actions", "body": body})

    @app.action("edit")
    async def edit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        env_received.append({"kind": "block_actions", "body": body})
        await client.views_open(trigger_id=body["trigger_id"], view=EDIT_VIEW)

    @app.view("edit_modal")
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        env_received.append({"kind": "view_submission", "body": body})
        text = view["state"]["values"]["args"]["json"]["value"]
        if text == "bad":
            await ack(response_action="errors", errors={"args": "Not valid JSON"})
        else:
            await ack()

    return app


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sock = free_socket()
    bot_url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    config = SandboxConfig(
        port=0,
        bot_url=bot_url,
        signing_secret=SECRET,
        bot_token=TOKEN,
        retry_delays=(0.05, 0.05, 0.05),
        clock=FakeClock(time.time()),
    )
    async with running_sandbox(config) as sb:
        received: list[dict[str, Any]] = []
        handler = AsyncSlackRequestHandler(bolt_app(received, sb.api_url))

        async def endpoint(request: Request) -> Response:
            return await handler.handle(request)

        receiver = Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])
        async with serve(receiver, sock):
            yield Env(sb, AsyncWebClient(token=TOKEN, base_url=sb.api_url), received)
            await sb.settle(5)


# ----- Web API ---------------------------------------------------------------


async def test_auth_test_reports_bot_identity(env: Env) -> None:
    resp = await env.client.auth_test()
    assert resp["ok"] is True
    assert (resp["user_id"], resp["team_id"], resp["bot_id"]) == ("U0BOT", "T0SANDBOX", "B0BOT")
    assert resp["team"] == "Sandbox"


async def test_missing_and_wrong_token_and_unknown_method(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.sandbox.url) as http:
        missing = await http.post("/api/chat.postMessage", data={"channel": "C0GENERAL"})
        wrong = await http.post(
            "/api/auth.test", headers={"Authorization": "Bearer xoxb-nope"}, data={}
        )
        form_token = await http.post("/api/auth.test", data={"token": TOKEN})
        unknown = await http.post("/api/chat.fly", data={"token": TOKEN})
    assert missing.json() == {"ok": False, "error": "not_authed"}
    assert wrong.json() == {"ok": False, "error": "invalid_auth"}
    assert form_token.json()["ok"] is True
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error": "unknown_method"}


async def test_post_update_react_and_read_back(env: Env) -> None:
    posted = await env.client.chat_postMessage(
        channel="#general", text="Approve?", blocks=APPROVAL_BLOCKS
    )
    assert posted["channel"] == "C0GENERAL"
    ts = posted["ts"]
    assert posted["message"]["bot_id"] == "B0BOT"
    assert posted["message"]["blocks"][2]["block_id"] == "decision"
    assert posted["message"]["blocks"][0]["block_id"]  # Slack fills missing ids

    reply = await env.client.chat_postMessage(channel="C0GENERAL", text="details", thread_ts=ts)
    updated = await env.client.chat_update(channel="C0GENERAL", ts=ts, text="Approved by alice")
    assert updated["message"]["edited"]["user"] == "U0BOT"
    await env.client.reactions_add(channel="C0GENERAL", timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as dup:
        await env.client.reactions_add(channel="C0GENERAL", timestamp=ts, name="eyes")
    assert dup.value.response["error"] == "already_reacted"
    await env.client.reactions_remove(channel="C0GENERAL", timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as gone:
        await env.client.reactions_remove(channel="C0GENERAL", timestamp=ts, name="eyes")
    assert gone.value.response["error"] == "no_reaction"

    history = await env.client.conversations_history(channel="C0GENERAL")
    assert [m["text"] for m in history["messages"]] == ["Approved by alice"]
    assert history["messages"][0]["reply_count"] == 1
    replies = await env.client.conversations_replies(channel="C0GENERAL", ts=ts)
    assert [m["ts"] for m in replies["messages"]] == [ts, reply["ts"]]
    link = await env.client.chat_getPermalink(channel="C0GENERAL", message_ts=ts)
    assert link["permalink"].startswith(env.sandbox.url)
    await env.client.chat_delete(channel="C0GENERAL", ts=reply["ts"])
    assert len(env.sandbox.replies("C0GENERAL", ts)) == 1
    assert [c.method for c in env.sandbox.calls_of("chat.update")] == ["chat.update"]
    assert env.sandbox.calls_of("chat.update")[0].args["ts"] == ts


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_message_metadata_is_read_back_only_when_asked(env: Env) -> None:
    """As Slack does: history and replies leave metadata out unless include_all_metadata."""
    metadata = {"event_type": "approval_review", "event_payload": {"ref": "r1"}}
    top = await env.client.chat_postMessage(channel="C0GENERAL", text="parent")
    await env.client.chat_postMessage(
        channel="C0GENERAL", text="review", thread_ts=top["ts"], metadata=metadata
    )
    plain = await env.client.conversations_replies(channel="C0GENERAL", ts=top["ts"])
    assert [m.get("metadata") for m in plain["messages"]] == [None, None]
    full = await env.client.conversations_replies(
        channel="C0GENERAL", ts=top["ts"], include_all_metadata=True
    )
    assert [m.get("metadata") for m in full["messages"]] == [None, metadata]
    await env.client.chat_postMessage(channel="C0GENERAL", text="top", metadata=metadata)
    history = await env.client.conversations_history(channel="C0GENERAL")
    assert all("metadata" not in m for m in history["messages"])
    history = await env.client.conversations_history(channel="C0GENERAL", include_all_metadata=True)
    assert history["messages"][0]["metadata"] == metadata


async def test_message_errors(env: Env) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        ({"channel": "C0GENERAL"}, "no_text"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as err:
            await env.client.chat_postMessage(**kwargs)
        assert err.value.response["error"] == error
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_update(channel="C0GENERAL", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(value: str) -> dict[str, Any]:
    text = {"type": "plain_text", "text": "Go"}
    return {"type": "button", "action_id": "go", "text": text, "value": value}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([_section("x")] * 51, "/blocks]"),
        ([_section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "actions", "elements": [_button("v" * 2001)]}], "/blocks/0/elements/0/value"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/text/text"),
        ([{"type": "bogus"}], "/blocks/0"),
    ],
)
async def test_invalid_blocks_rejected(env: Env, blocks: list[Any], pointer: str) -> None:
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_postMessage(channel="C0GENERAL", text="x", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert any(pointer in e for e in err.value.response["errors"])
    assert env.sandbox.messages("C0GENERAL") == []


async def test_form_encoded_blocks_are_parsed(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.sandbox.url) as http:
        resp = await http.post(
            "/api/chat.postMessage",
            headers={"Authorization": f"Bearer {TOKEN}"},
            data={"channel": "C0RANDOM", "text": "hi", "blocks": json.dumps([_section("hi")])},
        )
    assert resp.json()["ok"] is True
    assert resp.json()["message"]["blocks"][0]["type"] == "section"


async def test_conversations_users_and_groups(env: Env) -> None:
    created = await env.client.conversations_create(name="approvals-demo")
    cid = created["channel"]["id"]
    for name, error in [("approvals-demo", "name_taken"), ("Bad Name!", "invalid_name_specials")]:
        with pytest.raises(SlackApiError) as err:
            await env.client.conversations_create(name=name)
        assert err.value.response["error"] == error
    await env.client.conversations_setTopic(channel=cid, topic="Pending approvals")
    await env.client.conversations_invite(channel=cid, users=["U0ALICE", "U0BOB"])
    for users, error in [("U0ALICE", "already_in_channel"), ("U0NOBODY", "user_not_found")]:
        with pytest.raises(SlackApiError) as err:
            await env.client.conversations_invite(channel=cid, users=users)
        assert err.value.response["error"] == error
    info = await env.client.conversations_info(channel=cid)
    assert info["channel"]["topic"]["value"] == "Pending approvals"
    assert info["channel"]["num_members"] == 3
    listed = await env.client.conversations_list()
    assert {"general", "random", "approvals-demo"} <= {c["name"] for c in listed["channels"]}
    dm = await env.client.conversations_open(users="U0ALICE")
    assert dm["channel"]["id"].startswith("D")
    user = await env.client.users_info(user="U0CAROL")
    assert user["user"]["name"] == "carol"
    members = await env.client.users_list()
    assert {m["id"] for m in members["members"]} >= {"U0BOT", "U0ALICE", "U0BOB", "U0CAROL"}
    groups = await env.client.usergroups_list(include_users=True)
    assert groups["usergroups"][0]["handle"] == "approvers"
    group_users = await env.client.usergroups_users_list(usergroup="S0APPROVERS")
    assert group_users["users"] == ["U0ALICE", "U0BOB"]


async def test_read_methods_do_not_read_a_json_body_as_slack_does_not(env: Env) -> None:
    """Slack reads JSON bodies only for write methods: a read method sent one answers as if
    it had no arguments, so the sandbox must too, or a tool that sends reads as JSON passes
    here and fails on Slack."""
    for method, args, error in [
        ("users.info", {"user": "U0CAROL"}, "user_not_found"),
        ("conversations.info", {"channel": "C0GENERAL"}, "channel_not_found"),
        ("conversations.members", {"channel": "C0GENERAL"}, "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as err:
            await env.client.api_call(method, json=args)
        assert err.value.response["error"] == error, method
        read = await env.client.api_call(method, http_verb="GET", params=args)
        assert read["ok"], method
    paged = await env.client.api_call("conversations.list", json={"limit": 1})
    assert len(paged["channels"]) > 1  # the limit was not read
    written = await env.client.api_call(
        "chat.postMessage", json={"channel": "C0GENERAL", "text": "hi"}
    )
    assert written["ok"]  # write methods do read JSON


async def test_ephemeral_only_for_that_user(env: Env) -> None:
    resp = await env.client.chat_postEphemeral(channel="C0GENERAL", user="U0CAROL", text="nope")
    assert resp["message_ts"]
    assert [e["text"] for e in env.sandbox.ephemerals("U0CAROL")] == ["nope"]
    assert env.sandbox.ephemerals("U0ALICE") == []
    assert env.sandbox.messages("C0GENERAL") == []


async def test_views_validation_publish_and_calls_endpoint(env: Env) -> None:
    too_long = {**EDIT_VIEW, "title": {"type": "plain_text", "text": "t" * 25}}
    with pytest.raises(SlackApiError) as err:
        await env.client.views_open(trigger_id="1.2.3", view=too_long)
    assert err.value.response["error"] == "invalid_arguments"
    assert "/view/title/text" in err.value.response["response_metadata"]["messages"][0]
    home = {"type": "home", "blocks": [_section("Pending: 0")]}
    published = await env.client.views_publish(user_id="U0ALICE", view=home)
    assert published["view"]["type"] == "home"
    async with httpx.AsyncClient(base_url=env.sandbox.url) as http:
        calls = (await http.get("/sandbox/api/calls", params={"method": "views.open"})).json()
        assert calls["calls"][0]["error"] == "invalid_arguments"
        assert (await http.post("/sandbox/api/reset")).json()["ok"] is True
    assert env.sandbox.workspace.calls == []


# ----- delivery to the bot ------------------------------------------------


async def test_mention_delivers_message_and_app_mention(env: Env) -> None:
    ts = await env.sandbox.post_message("U0ALICE", "C0GENERAL", "hey <@U0BOT> deploy please")
    await env.sandbox.wait_for(lambda: env.of("app_mention") and env.of("message"))
    mention = env.of("app_mention")[0]["event"]
    assert (mention["user"], mention["ts"], mention["channel"]) == ("U0ALICE", ts, "C0GENERAL")
    message = env.of("message")[0]["event"]
    assert message["channel_type"] == "channel"
    # Bolt answered with say(): the reply lands in the thread.
    reply = await env.sandbox.wait_for_call("chat.postMessage")
    assert reply.args["thread_ts"] == ts
    await env.sandbox.settle()
    bodies = [d.body for d in env.sandbox.workspace.deliveries if d.kind == "event"]
    assert len({b["event_id"] for b in bodies}) == len(bodies)
    # The bot's own message event is delivered too (with bot_id) and Bolt drops it.
    assert any(b["event"].get("bot_id") == "B0BOT" for b in bodies)
    assert all(e["event"].get("bot_id") is None for e in env.of("message"))


async def test_dm_and_thread_reply_events(env: Env) -> None:
    ts = await env.sandbox.post_message("U0BOB", "U0BOT", "hello bot")
    dm = env.sandbox.open_dm("U0BOB")
    reply_ts = await env.sandbox.post_message("U0BOB", dm, "more", thread_ts=ts)
    await env.sandbox.wait_for(lambda: len(env.of("message")) >= 2)
    first, second = (m["event"] for m in env.of("message")[:2])
    assert first["channel_type"] == "im"
    assert first["channel"] == dm
    assert (second["thread_ts"], second["ts"]) == (ts, reply_ts)


async def test_button_click_modal_errors_then_success(env: Env) -> None:
    posted = await env.client.chat_postMessage(
        channel="C0GENERAL", text="?", blocks=APPROVAL_BLOCKS
    )
    ts = posted["ts"]
    clicked = await env.sandbox.click_button("U0ALICE", "C0GENERAL", ts, "approve")
    assert clicked.status == 200
    body = env.of("block_actions")[0]["body"]
    assert body["actions"][0]["value"] == "call-1"
    assert body["actions"][0]["block_id"] == "decision"
    assert body["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C0GENERAL",
        "is_ephemeral": False,
    }
    assert body["user"]["id"] == "U0ALICE"
    assert body["message"]["blocks"][2]["elements"][0]["action_id"] == "approve"

    await env.sandbox.click_button("U0ALICE", "C0GENERAL", ts, "edit", block_id="decision")
    modal = await env.sandbox.wait_for(lambda: env.sandbox.open_modal("U0ALICE"))
    assert modal["callback_id"] == "edit_modal"

    refused = await env.sandbox.submit_modal("U0ALICE", {})
    assert refused.response is None
    assert refused.errors == {"args": "Please complete this required field."}

    bad = await env.sandbox.submit_modal("U0ALICE", {"args": "bad", "level": "high"})
    assert bad.response_action == "errors"
    assert bad.errors == {"args": "Not valid JSON"}
    assert not bad.closed
    still_open = env.sandbox.open_modal("U0ALICE")
    assert still_open is not None
    assert still_open["_errors"] == {"args": "Not valid JSON"}
    submission = env.of("view_submission")[0]["body"]
    level = submission["view"]["state"]["values"]["level"]["pick"]
    assert level == {
        "type": "static_select",
        "selected_option": EDIT_VIEW["blocks"][1]["element"]["options"][1],
    }

    good = await env.sandbox.submit_modal("U0ALICE", {"args": '{"to": "bob"}'})
    assert good.closed
    assert env.sandbox.open_modal("U0ALICE") is None


async def test_expired_and_reused_trigger_ids(env: Env) -> None:
    posted = await env.client.chat_postMessage(
        channel="C0GENERAL", text="?", blocks=APPROVAL_BLOCKS
    )
    clock = env.sandbox.config.clock
    assert isinstance(clock, FakeClock)
    for _ in range(2):
        await env.sandbox.click_button("U0BOB", "C0GENERAL", posted["ts"], "approve")
    fresh, stale = (b["body"]["trigger_id"] for b in env.of("block_actions"))
    await env.client.views_open(trigger_id=fresh, view=EDIT_VIEW)
    with pytest.raises(SlackApiError) as reused:
        await env.client.views_open(trigger_id=fresh, view=EDIT_VIEW)
    assert reused.value.response["error"] == "expired_trigger_id"
    clock.advance(3.1)
    with pytest.raises(SlackApiError) as expired:
        await env.client.views_open(trigger_id=stale, view=EDIT_VIEW)
    assert expired.value.response["error"] == "expired_trigger_id"


async def test_bad_signatures_are_rejected_by_bolt(env: Env) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "message"}}).encode()
    wrong_secret = await env.sandbox.send_raw(body, secret="not-the-secret")
    stale = await env.sandbox.send_raw(body, timestamp=int(time.time()) - 600)
    garbage = await env.sandbox.send_raw(body, signature="v0=deadbeef")
    assert [wrong_secret.status, stale.status, garbage.status] == [401, 401, 401]


# ----- retries and signing, with a hand-written receiver ----------------------


@dataclass
class RawReceiver:
    fail_first: int
    delay: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        if len(self.requests) <= self.fail_first:
            if self.delay:
                await asyncio.sleep(self.delay)
                return PlainTextResponse("late")
            return PlainTextResponse("boom", status_code=500)
        return PlainTextResponse("")


@pytest.mark.parametrize(("delay", "reason"), [(0.0, "http_error"), (0.5, "http_timeout")])
async def test_event_retries_carry_retry_headers(delay: float, reason: str) -> None:
    receiver = RawReceiver(fail_first=2, delay=delay)
    sock = free_socket()
    config = SandboxConfig(
        port=0,
        bot_url=f"http://127.0.0.1:{sock.getsockname()[1]}/events",
        signing_secret=SECRET,
        bot_token=TOKEN,
        ack_timeout=0.2,
        retry_delays=(0.01, 0.01, 0.01),
    )
    app = Starlette(routes=[Route("/events", receiver.endpoint, methods=["POST"])])
    async with serve(app, sock), running_sandbox(config) as sb:
        await sb.post_message("U0CAROL", "C0RANDOM", "plain message")
        await sb.settle(5)
    assert len(receiver.requests) == 3
    verifier = SignatureVerifier(SECRET)
    event_ids = set()
    for attempt, (headers, body) in enumerate(receiver.requests):
        assert verifier.is_valid_request(body, headers)
        assert headers["x-slack-signature"] == signature(
            SECRET, headers["x-slack-request-timestamp"], body
        )
        event_ids.add(json.loads(body)["event_id"])
        if attempt:
            assert headers["x-slack-retry-num"] == str(attempt)
            assert headers["x-slack-retry-reason"] == reason
        else:
            assert "x-slack-retry-num" not in headers
    assert len(event_ids) == 1
