"""The people in the sandbox: what a human does in Slack's client, as code.

Tests and the browser page both drive the bot through these methods, so a
click in the page and a click in a test produce byte-identical payloads.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sandbox.assistant import assistant_thread_started_event
from sandbox.blocks import fill_ids, validate_view
from sandbox.config import SandboxConfig
from sandbox.delivery import BotResponse, Delivery
from sandbox.errors import ApiError
from sandbox.events import (
    app_home_opened_event,
    mention_event,
    mentions_bot,
    message_event,
    rich_text_blocks,
    wire_text,
)
from sandbox.modal_state import build_state
from sandbox.workspace import (
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    Channel,
    Json,
    View,
    Workspace,
)

TROUBLE = "We had some trouble connecting. Try again?"
TEAM = {"id": TEAM_ID, "domain": TEAM_DOMAIN}


@dataclass
class ModalResult:
    """Outcome of submitting a modal, as the person would see it."""

    response: BotResponse | None
    response_action: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    view: Json | None = None

    @property
    def closed(self) -> bool:
        """True when no modal is open for the person any more."""
        return self.view is None


@dataclass
class ResponseTarget:
    """Where a response_url posts: the message (or ephemeral) that was clicked."""

    channel: str
    user: str
    message_ts: str | None
    thread_ts: str | None
    is_ephemeral: bool


def _find_element(blocks: list[Any], action_id: str, block_id: str | None) -> tuple[Json, Json]:
    """The (block, element) with `action_id`, as the client would have rendered it."""
    for block in blocks:
        if not isinstance(block, dict) or (block_id and block.get("block_id") != block_id):
            continue
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for el in candidates:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block, el
    raise ApiError("action_not_found")


def _user_obj(ws: Workspace, user_id: str) -> Json:
    user = ws.user(user_id)
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}


class Actors:
    """Simulated humans posting, clicking and filling in modals."""

    def __init__(self, config: SandboxConfig, workspace: Workspace, delivery: Delivery) -> None:
        self.config = config
        self.ws = workspace
        self.delivery = delivery
        self.response_urls: dict[str, ResponseTarget] = {}

    # ----- messages -----------------------------------------------------

    async def post_message(
        self, user: str, channel: str, text: str, thread_ts: str | None = None
    ) -> str:
        """Post as `user`; the bot gets `message` (and `app_mention`) events. Returns ts."""
        self.ws.user(user)
        chan = self.ws.channel(channel, actor=user)
        if user not in chan.members:
            raise ApiError("not_in_channel")
        parent_user = self.ws.find_message(chan.id, thread_ts).user if thread_ts else None
        msg = self.ws.post(chan, user, text, blocks=rich_text_blocks(text), thread_ts=thread_ts)
        if BOT_USER_ID in chan.members:
            self.delivery.emit_event(message_event(chan, msg, parent_user))
            if mentions_bot(text) and not chan.is_im:
                self.delivery.emit_event(mention_event(chan, msg))
        return msg.ts

    async def type_message(
        self, user: str, channel: str, typed: str, thread_ts: str | None = None
    ) -> str:
        """Type `typed` into the composer, as `user`: sent the way Slack's client sends it
        (entities encoded, @names and #channels turned into references; `wire_text`)."""
        users = {u.name: u.id for u in self.ws.users.values()}
        channels = {c.name: c.id for c in self.ws.channels.values() if not c.is_im}
        text = wire_text(typed, users, channels)
        return await self.post_message(user, channel, text, thread_ts)

    def open_dm(self, user: str) -> str:
        """The id of `user`'s DM with the bot."""
        return self.ws.open_dm(user).id

    def open_assistant_thread(self, user: str) -> str:
        """Open a new conversation with the app in its assistant view: Slack starts a thread in
        the person's DM with the app and tells the app (``assistant_thread_started``). Returns
        the thread's ts (post in it with ``thread_ts``)."""
        dm = self.ws.open_dm(user)
        root = self.ws.post(dm, BOT_USER_ID, "")
        self.delivery.emit_event(assistant_thread_started_event(user, dm.id, root.ts))
        return root.ts

    # ----- App Home and slash commands ----------------------------------

    async def open_home(self, user: str, tab: str = "home") -> None:
        """Open the app's Home tab (or ``tab="messages"``): the bot gets `app_home_opened`,
        delivered in the background like every event; its `views.publish` lands in
        `workspace.homes`."""
        self.ws.user(user)
        dm = self.ws.open_dm(user)
        current = self.ws.homes.get(user)
        view = dict(current.data) if current is not None else None
        self.delivery.emit_event(app_home_opened_event(user, dm.id, tab, view))

    async def run_command(
        self, user: str, channel: str, command: str, text: str = ""
    ) -> BotResponse:
        """Type ``/command text`` in a channel's composer, as `user`.

        Slack sends the command only if the app defines it (`config.slash_commands`); an ack
        whose body is a message (JSON ``text``/``blocks``, or plain text) is shown to the person
        only, or to the channel with ``response_type: in_channel``. Later answers go through
        `response_url`.
        """
        if command not in self.config.slash_commands:
            raise ApiError("invalid_command")
        person = self.ws.user(user)
        chan = self.ws.channel(channel, actor=user)
        if user not in chan.members:
            raise ApiError("not_in_channel")
        payload = {
            "token": self.config.verification_token,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": chan.id,
            "channel_name": "directmessage" if chan.is_im else chan.name,
            "user_id": user,
            "user_name": person.name,
            "command": command,
            "text": text,
            "api_app_id": self.config.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self._response_url(ResponseTarget(chan.id, user, None, None, True)),
            "trigger_id": self.ws.new_trigger(user),
        }
        resp = await self.delivery.deliver_command(payload)
        body = resp.json() if resp.ok else None
        if resp.ok and body is None and resp.body.strip():
            body = {"text": resp.body}  # a plain-text answer is a message too
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else None
            message = str(body.get("text") or "")
            if body.get("response_type") == "in_channel":
                self.ws.post(chan, BOT_USER_ID, message, blocks=blocks)
            else:
                self.ws.post_ephemeral(chan, user, message, blocks, None)
        return resp

    # ----- buttons ------------------------------------------------------

    async def click_button(
        self,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        block_id: str | None = None,
        value: str | None = None,
    ) -> BotResponse:
        """Click an element of a message (or of `user`'s ephemeral message).

        `value` selects an option for selects/overflow menus; buttons send their
        own value. Returns the bot's HTTP answer to the `block_actions` payload.
        """
        chan = self.ws.channel(channel, actor=user)
        payload = self._message_container(user, chan, message_ts)
        blocks = payload.pop("_blocks")
        block, element = _find_element(blocks, action_id, block_id)
        payload["actions"] = [self._action(block, element, value)]
        return await self.delivery.deliver_interaction(payload)

    async def click_in_home(
        self, user: str, action_id: str, block_id: str | None = None, value: str | None = None
    ) -> BotResponse:
        """Click an element of the Home view the bot last published for `user`: Slack sends
        `block_actions` with a `view` container (no channel, no message)."""
        view = self.ws.homes.get(user)
        if view is None:
            raise ApiError("view_not_found")
        block, element = _find_element(view.data.get("blocks") or [], action_id, block_id)
        payload: Json = {
            "type": "block_actions",
            "user": _user_obj(self.ws, user),
            "api_app_id": self.config.api_app_id,
            "token": self.config.verification_token,
            "container": {"type": "view", "view_id": view.id},
            "trigger_id": self.ws.new_trigger(user),
            "team": TEAM,
            "enterprise": None,
            "is_enterprise_install": False,
            "view": dict(view.data),
            "actions": [self._action(block, element, value)],
        }
        return await self.delivery.deliver_interaction(payload)

    def _message_container(self, user: str, chan: Channel, ts: str) -> Json:
        """The block_actions payload minus `actions`, for a normal or ephemeral message."""
        try:
            msg: Json = self.ws.find_message(chan.id, ts).to_dict()
            ephemeral = False
        except ApiError:
            msg = self.ws.find_ephemeral(chan.id, ts, user).to_dict()
            ephemeral = True
        thread_ts = msg.get("thread_ts")
        container: Json = {
            "type": "message",
            "message_ts": ts,
            "channel_id": chan.id,
            "is_ephemeral": ephemeral,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload: Json = {
            "type": "block_actions",
            "user": _user_obj(self.ws, user),
            "api_app_id": self.config.api_app_id,
            "token": self.config.verification_token,
            "container": container,
            "trigger_id": self.ws.new_trigger(user),
            "team": TEAM,
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": chan.id, "name": chan.name if not chan.is_im else "directmessage"},
            "state": {"values": {}},
            "response_url": self._response_url(
                ResponseTarget(chan.id, user, ts, thread_ts, ephemeral)
            ),
            "_blocks": msg.get("blocks") or [],
        }
        if not ephemeral:
            payload["message"] = msg
        return payload

    def _action(self, block: Json, element: Json, value: str | None) -> Json:
        """One entry of `actions`, shaped per element type."""
        action: Json = {
            "action_id": element["action_id"],
            "block_id": block["block_id"],
            "type": element["type"],
            "action_ts": self.ws.new_ts(),
        }
        if element["type"] == "button":
            action["text"] = element.get("text")
            if "value" in element:
                action["value"] = element["value"]
            if "style" in element:
                action["style"] = element["style"]
            return action
        options = element.get("options") or []
        chosen = next((o for o in options if o.get("value") == value), None)
        if chosen is not None:
            action["selected_option"] = chosen
        elif value is not None:
            action["value"] = value
        return action

    def _response_url(self, target: ResponseTarget) -> str:
        token = secrets.token_urlsafe(12)
        self.response_urls[token] = target
        base = self.config.public_url or "http://127.0.0.1"
        return f"{base}/sandbox/response/{token}"

    def respond(self, token: str, body: Json) -> Json:
        """Handle a POST to a response_url: replace, delete or post a new message."""
        target = self.response_urls.get(token)
        if target is None:
            raise ApiError("expired_url")
        blocks = body.get("blocks")
        text = str(body.get("text") or "")
        if _bool(body.get("delete_original")) and target.message_ts:
            self._delete_original(target)
        elif _bool(body.get("replace_original")) and target.message_ts:
            self._replace_original(target, text, blocks)
        elif body.get("response_type") == "in_channel":
            chan = self.ws.channel(target.channel)
            thread = body.get("thread_ts") or target.thread_ts
            self.ws.post(chan, BOT_USER_ID, text, blocks=blocks, thread_ts=thread)
        else:
            chan = self.ws.channel(target.channel)
            self.ws.post_ephemeral(chan, target.user, text, blocks, target.thread_ts)
        return {"ok": True}

    def _delete_original(self, target: ResponseTarget) -> None:
        if target.is_ephemeral:
            self.ws.ephemerals = [e for e in self.ws.ephemerals if e.ts != target.message_ts]
            self.ws.publish({"kind": "ephemeral", "channel": target.channel, "user": target.user})
        elif target.message_ts:
            self.ws.delete(target.channel, target.message_ts)

    def _replace_original(self, target: ResponseTarget, text: str, blocks: Any) -> None:
        assert target.message_ts is not None
        if target.is_ephemeral:
            eph = self.ws.find_ephemeral(target.channel, target.message_ts, target.user)
            eph.text, eph.blocks = text, blocks
            self.ws.publish({"kind": "ephemeral", "channel": target.channel, "user": target.user})
        else:
            self.ws.update(target.channel, target.message_ts, text, blocks)

    # ----- modals -------------------------------------------------------

    def open_modal(self, user: str) -> Json | None:
        """The modal on top of `user`'s stack, with `_errors` and `_banner`."""
        top = self.ws.top_modal(user)
        return top.to_dict() if top else None

    async def submit_modal(self, user: str, values: dict[str, Any] | None = None) -> ModalResult:
        """Fill the open modal with `values` (block_id -> value) and press Submit.

        Values: a string for text/number inputs, selects and radio buttons (the
        option value); a list of option values for checkboxes/multi-selects.
        Omitted inputs keep their initial value. Required inputs left empty are
        refused client-side, as Slack's client does, without calling the bot.
        """
        top = self.ws.top_modal(user)
        if top is None:
            raise ApiError("view_not_found")
        state, client_errors = build_state(top.data.get("blocks", []), values or {})
        top.data["state"] = state
        if client_errors:
            top.errors, top.banner = client_errors, None
            self.ws.publish({"kind": "view", "user": user})
            return ModalResult(None, None, client_errors, top.to_dict())
        resp = await self.delivery.deliver_interaction(self._submission(user, top))
        return self._apply_response(user, top, resp)

    def _submission(self, user: str, top: View) -> Json:
        return {
            "type": "view_submission",
            "team": TEAM,
            "user": _user_obj(self.ws, user),
            "api_app_id": self.config.api_app_id,
            "token": self.config.verification_token,
            "trigger_id": self.ws.new_trigger(user),
            "view": dict(top.data),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def _apply_response(self, user: str, top: View, resp: BotResponse) -> ModalResult:
        """Honour `response_action` (errors/update/push/clear) or close on empty ack."""
        stack = list(self.ws.modal_stack(user))
        if not resp.ok:
            top.banner = TROUBLE
            self.ws.publish({"kind": "view", "user": user})
            return ModalResult(resp, None, {}, top.to_dict())
        body = resp.json()
        action = body.get("response_action") if isinstance(body, dict) else None
        if action == "errors" and isinstance(body, dict):
            top.errors = {str(k): str(v) for k, v in (body.get("errors") or {}).items()}
            top.banner = None
            self.ws.set_modals(user, stack)
            return ModalResult(resp, action, dict(top.errors), top.to_dict())
        if action in ("update", "push") and isinstance(body, dict):
            stack = self._replace_or_push(user, stack, top, body.get("view"), action)
        elif action == "clear":
            stack = []
        else:
            stack = [v for v in stack if v.id != top.id]
        self.ws.set_modals(user, stack)
        new_top = stack[-1].to_dict() if stack else None
        return ModalResult(resp, action, {}, new_top)

    def _replace_or_push(
        self, user: str, stack: list[View], top: View, spec: Any, action: str
    ) -> list[View]:
        errors = validate_view(spec)
        if errors or not isinstance(spec, dict):
            top.banner = TROUBLE
            return stack
        fill_ids(spec.get("blocks", []))
        root = str(top.data.get("root_view_id") or top.id)
        if action == "update":
            prev = top.data.get("previous_view_id")
            new = self.ws.new_view(user, spec, view_id=top.id, previous=prev, root=root)
            return [new if v.id == top.id else v for v in stack]
        return [*stack, self.ws.new_view(user, spec, previous=top.id, root=root)]

    async def close_modal(self, user: str) -> BotResponse | None:
        """Press Cancel/X on the top modal; `view_closed` only if notify_on_close."""
        stack = list(self.ws.modal_stack(user))
        if not stack:
            raise ApiError("view_not_found")
        top = stack[-1]
        cleared = bool(top.data.get("clear_on_close"))
        self.ws.set_modals(user, [] if cleared else stack[:-1])
        if not top.data.get("notify_on_close"):
            return None
        payload = {
            "type": "view_closed",
            "team": TEAM,
            "user": _user_obj(self.ws, user),
            "api_app_id": self.config.api_app_id,
            "token": self.config.verification_token,
            "view": dict(top.data),
            "is_cleared": cleared,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self.delivery.deliver_interaction(payload)


def _bool(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")
