"""The Web API: `/api/{method}` in Slack's wire format.

The bot's unmodified slack_sdk client points here. Arguments may arrive as
JSON, form fields or query parameters (slack_sdk mixes them per method), so
all three are merged before a method sees them. Every call is recorded.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.assistant import AssistantMethods
from sandbox.blocks import fill_ids, validate_blocks, validate_view
from sandbox.config import SandboxConfig
from sandbox.delivery import Delivery
from sandbox.errors import ApiError
from sandbox.events import message_event
from sandbox.streams import StreamMethods
from sandbox.workspace import (
    BOT_ID,
    BOT_USER_ID,
    MAX_MODAL_STACK,
    TEAM_ID,
    TEAM_NAME,
    CallRecord,
    Channel,
    Json,
    Workspace,
)

JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})  # the rest take the bot token
Handler = Callable[[Json], Json]


def _bool(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _req(args: Json, key: str, error: str) -> str:
    """A required string argument; Slack reports a missing one with `error`."""
    value = args.get(key)
    if value is None or value == "":
        raise ApiError(error)
    return str(value)


def _users(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [u.strip() for u in str(value or "").split(",") if u.strip()]


def _page(items: list[Any], args: Json, default: int = 100) -> tuple[list[Any], str]:
    """Cursor pagination: the cursor is an opaque offset, as Slack's is opaque."""
    start = int(str(args.get("cursor") or "offset_0").removeprefix("offset_") or 0)
    limit = int(args.get("limit") or default) or default
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, f"offset_{start + limit}" if more else ""


NO_JSON_BODY = frozenset(
    {
        "auth.test",
        "bots.info",
        "chat.getPermalink",
        "conversations.history",
        "conversations.info",
        "conversations.list",
        "conversations.members",
        "conversations.replies",
        "team.info",
        "usergroups.list",
        "usergroups.users.list",
        "users.conversations",
        "users.info",
        "users.list",
    }
)
"""Read methods, which Slack answers from query and form arguments only: a JSON body sent to
one is not read, so the call is answered as if it had no arguments (``users.info`` says
``user_not_found``). Only write methods read JSON bodies."""


async def parse_request(request: Request, method: str = "") -> tuple[Json, str | None]:
    """Merge query, form and JSON arguments; pull out the token like Slack does (a read
    method ignores a JSON body's arguments: :data:`NO_JSON_BODY`)."""
    args: Json = dict(request.query_params)
    raw = await request.body()
    if raw:
        if "json" in request.headers.get("content-type", ""):
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise ApiError("invalid_json") from exc
            if method not in NO_JSON_BODY:
                args.update(parsed if isinstance(parsed, dict) else {})
        else:
            args.update(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
    for key in JSON_FIELDS:
        if isinstance(args.get(key), str) and args[key]:
            try:
                args[key] = json.loads(args[key])
            except ValueError as exc:
                raise ApiError(f"invalid_{key}" if key != "view" else "invalid_arguments") from exc
    token = args.pop("token", None)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return args, token


class WebApi:
    """Slack Web API methods over the shared workspace."""

    def __init__(self, config: SandboxConfig, workspace: Workspace, delivery: Delivery) -> None:
        self.config = config
        self.ws = workspace
        self.delivery = delivery
        self.methods: dict[str, Handler] = {
            "api.test": lambda args: {"args": args},
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "chat.delete": self.chat_delete,
            "reactions.add": lambda a: self.reaction(a, True),
            "reactions.remove": lambda a: self.reaction(a, False),
            "views.open": self.views_open,
            "views.push": self.views_push,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
            "conversations.create": self.conversations_create,
            "conversations.setTopic": self.conversations_set_topic,
            "conversations.invite": self.conversations_invite,
            "conversations.info": self.conversations_info,
            "conversations.members": self.conversations_members,
            "conversations.list": self.conversations_list,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.open": self.conversations_open,
            "users.info": self.users_info,
            "users.list": self.users_list,
            "usergroups.list": self.usergroups_list,
            "usergroups.users.list": self.usergroups_users_list,
        }
        self.streams = StreamMethods(workspace)
        self.methods.update(self.streams.handlers())
        self.refused_block_types: set[str] = set()
        """Block types this workspace refuses with ``invalid_blocks`` (e.g. ``task_card``)."""
        self.assistant = AssistantMethods(workspace)
        self.methods.update(self.assistant.handlers())

        # Failures to play before serving a method, as Slack's look on the wire: HTTP 429 with
        # Retry-After (rate limited) or a 5xx (an outage). Tests use them to exercise retries.
        self.faults: dict[str, list[int]] = {}
        # Delays to play before answering a method, as a slow Slack: the answer still comes.
        self.holds: dict[str, list[float]] = {}

    def routes(self) -> list[Route]:
        return [Route("/api/{method}", self.endpoint, methods=["GET", "POST"])]

    def fail_next(self, method: str, *statuses: int) -> None:
        """Answer the next calls of ``method`` with these HTTP statuses (429 or 5xx), in order."""
        self.faults.setdefault(method, []).extend(statuses)

    def hold_next(self, method: str, *seconds: float) -> None:
        """Answer the next calls of ``method`` only after these delays, in order (the answer
        is the one Slack would give; only late)."""
        self.holds.setdefault(method, []).extend(seconds)

    def _fault(self, method: str) -> JSONResponse | None:
        queued = self.faults.get(method)
        if not queued:
            return None
        status = queued.pop(0)
        if status == 429:
            return JSONResponse(
                {"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "1"}
            )
        return JSONResponse({"ok": False, "error": "fatal_error"}, status_code=status)

    async def endpoint(self, request: Request) -> JSONResponse:
        """Authenticate, dispatch, record; always 200 except unknown methods and faults."""
        method = request.path_params["method"]
        args: Json = {}
        token: str | None = None
        if held := self.holds.get(method):
            await asyncio.sleep(held.pop(0))
        fault = self._fault(method)
        if fault is not None:
            self._record(method, args, token, json.loads(bytes(fault.body)))
            return fault
        try:
            args, token = await parse_request(request, method)
            handler = self.methods.get(method)
            if handler is None:
                raise ApiError("unknown_method")
            self._authenticate(token, method)
            body: Json = {"ok": True, **handler(args)}
        except ApiError as exc:
            body = exc.body()
        self._record(method, args, token, body)
        status = 404 if body.get("error") == "unknown_method" else 200
        return JSONResponse(body, status_code=status)

    def call(self, method: str, args: Json, token: str | None = None) -> Json:
        """Invoke a method in-process (same validation, same recording)."""
        try:
            self._authenticate(token or self.config.bot_token, method)
            body: Json = {"ok": True, **self.methods[method](args)}
        except ApiError as exc:
            body = exc.body()
        self._record(method, args, token, body)
        return body

    def _authenticate(self, token: str | None, method: str = "") -> None:
        if not token:
            raise ApiError("not_authed")
        app_level = method in APP_TOKEN_METHODS
        if app_level != token.startswith("xapp-"):
            raise ApiError("not_allowed_token_type")
        if token != (self.config.app_token if app_level else self.config.bot_token):
            raise ApiError("invalid_auth")

    def _record(self, method: str, args: Json, token: str | None, body: Json) -> None:
        ok = bool(body.get("ok"))
        error = None if ok else str(body.get("error"))
        record = CallRecord(method, args, token, ok, error, self.ws.clock(), body)
        self.ws.record_call(record)

    # ----- helpers ------------------------------------------------------

    def _member_channel(self, args: Json, key: str = "channel") -> Channel:
        """A channel the bot may act in, or `not_in_channel`."""
        chan = self.ws.channel(_req(args, key, "channel_not_found"))
        if BOT_USER_ID not in chan.members:
            raise ApiError("not_in_channel")
        return chan

    @staticmethod
    def _content(args: Json, required: bool = True) -> tuple[str | None, list[Json] | None]:
        """Validated text and blocks; Slack requires at least one for a message."""
        text = args.get("text")
        blocks = args.get("blocks")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise ApiError(
                    "invalid_blocks",
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )
            blocks = fill_ids(blocks)
        if required and not text and not blocks:
            raise ApiError("no_text")
        return (None if text is None else str(text)), blocks

    # ----- auth / chat ------------------------------------------------

    def auth_test(self, args: Json) -> Json:
        return {
            "url": (self.config.public_url or "http://127.0.0.1") + "/",
            "team": TEAM_NAME,
            "user": "approvals",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _refuse_block_types(self, args: Json) -> None:
        """A workspace without some block types answers ``invalid_blocks`` (fallback tests)."""
        body = args.get("blocks")
        kinds = (
            {b.get("type") for b in body if isinstance(b, dict)}
            if isinstance(body, list)
            else set()
        )
        if kinds & self.refused_block_types:
            raise ApiError("invalid_blocks", errors=["unsupported block type"])

    def chat_post_message(self, args: Json) -> Json:
        self._refuse_block_types(args)
        chan = self._member_channel(args)
        text, blocks = self._content(args)
        meta = args.get("metadata") if isinstance(args.get("metadata"), dict) else None
        thread_ts = args.get("thread_ts") or None
        if thread_ts:
            self.ws.find_message(chan.id, str(thread_ts))
        msg = self.ws.post(
            chan,
            BOT_USER_ID,
            text or "",
            blocks=blocks,
            thread_ts=thread_ts,
            reply_broadcast=_bool(args.get("reply_broadcast")),
            metadata=meta,
        )
        if self.config.deliver_bot_messages:
            self.delivery.emit_event(message_event(chan, msg))
        return {"channel": chan.id, "ts": msg.ts, "message": msg.to_dict()}

    def chat_update(self, args: Json) -> Json:
        chan = self.ws.channel(_req(args, "channel", "channel_not_found"))
        ts = _req(args, "ts", "message_not_found")
        text, blocks = self._content(args)
        msg = self.ws.update(chan.id, ts, text, blocks)
        return {"channel": chan.id, "ts": ts, "text": msg.text, "message": msg.to_dict()}

    def chat_post_ephemeral(self, args: Json) -> Json:
        chan = self._member_channel(args)
        user = _req(args, "user", "user_not_found")
        text, blocks = self._content(args)
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        eph = self.ws.post_ephemeral(chan, user, text or "", blocks, thread_ts)
        return {"message_ts": eph.ts}

    def chat_get_permalink(self, args: Json) -> Json:
        chan = self.ws.channel(_req(args, "channel", "channel_not_found"))
        ts = _req(args, "message_ts", "message_not_found")
        self.ws.find_message(chan.id, ts)
        base = self.config.public_url or "http://127.0.0.1"
        link = f"{base}/archives/{chan.id}/p{ts.replace('.', '')}"
        return {"channel": chan.id, "permalink": link}

    def chat_delete(self, args: Json) -> Json:
        chan = self.ws.channel(_req(args, "channel", "channel_not_found"))
        ts = _req(args, "ts", "message_not_found")
        self.ws.delete(chan.id, ts)
        return {"channel": chan.id, "ts": ts}

    def reaction(self, args: Json, add: bool) -> Json:
        chan = self.ws.channel(_req(args, "channel", "channel_not_found"))
        ts = _req(args, "timestamp", "no_item_specified")
        name = _req(args, "name", "invalid_name")
        self.ws.react(chan.id, ts, name, BOT_USER_ID, add)
        return {}

    # ----- views --------------------------------------------------------

    @staticmethod
    def _view_spec(args: Json) -> Json:
        """The view argument, validated with Slack's invalid_arguments shape."""
        spec = args.get("view")
        errors = validate_view(spec)
        if errors:
            raise ApiError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        assert isinstance(spec, dict)
        fill_ids(spec.get("blocks", []))
        return spec

    def views_open(self, args: Json) -> Json:
        trigger = _req(args, "trigger_id", "invalid_trigger_id")
        spec = self._view_spec(args)
        user = self.ws.use_trigger(trigger)
        view = self.ws.new_view(user, spec)
        self.ws.set_modals(user, [view])
        return {"view": view.data}

    def views_push(self, args: Json) -> Json:
        trigger = _req(args, "trigger_id", "invalid_trigger_id")
        spec = self._view_spec(args)
        user = self.ws.use_trigger(trigger)
        stack = list(self.ws.modal_stack(user))
        if not stack:
            raise ApiError("not_found")
        if len(stack) >= MAX_MODAL_STACK:
            raise ApiError("push_limit_reached")
        top = stack[-1]
        root = str(top.data.get("root_view_id") or top.id)
        view = self.ws.new_view(user, spec, previous=top.id, root=root)
        self.ws.set_modals(user, [*stack, view])
        return {"view": view.data}

    def views_update(self, args: Json) -> Json:
        current = self.ws.find_view(args.get("view_id"), args.get("external_id"))
        if args.get("hash") and args["hash"] != current.data["hash"]:
            raise ApiError("hash_conflict")
        spec = self._view_spec(args)
        view = self.ws.new_view(
            current.user,
            spec,
            view_id=current.id,
            previous=current.data.get("previous_view_id"),
            root=current.data.get("root_view_id"),
        )
        if current.data["type"] == "home":
            self.ws.set_home(current.user, view)
        else:
            stack = [view if v.id == current.id else v for v in self.ws.modal_stack(current.user)]
            self.ws.set_modals(current.user, stack)
        return {"view": view.data}

    def views_publish(self, args: Json) -> Json:
        user = self.ws.user(_req(args, "user_id", "user_not_found")).id
        spec = self._view_spec(args)
        if spec.get("type") != "home":
            raise ApiError("invalid_arguments")
        old = self.ws.homes.get(user)
        view = self.ws.new_view(user, spec, view_id=old.id if old else None)
        self.ws.set_home(user, view)
        return {"view": view.data}

    # ----- conversations ----------------------------------------------

    def conversations_create(self, args: Json) -> Json:
        name = str(args.get("name") or "")
        chan = self.ws.create_channel(name, BOT_USER_ID, _bool(args.get("is_private")))
        return {"channel": chan.to_dict()}

    def conversations_set_topic(self, args: Json) -> Json:
        chan = self._member_channel(args)
        chan.topic = str(args.get("topic") or "")[:250]
        self.ws.publish({"kind": "channel", "channel": chan.id})
        return {"channel": chan.to_dict()}

    def conversations_invite(self, args: Json) -> Json:
        chan = self._member_channel(args)
        users = _users(args.get("users"))
        if not users:
            raise ApiError("no_user")
        return {"channel": self.ws.invite(chan.id, users).to_dict()}

    def _readable_channel(self, args: Json) -> Channel:
        """A conversation the bot can read about: any public channel; a private channel or a
        DM only if the bot is in it (Slack answers `channel_not_found` otherwise)."""
        chan = self.ws.channel(_req(args, "channel", "channel_not_found"))
        if (chan.is_private or chan.is_im) and BOT_USER_ID not in chan.members:
            raise ApiError("channel_not_found")
        return chan

    def conversations_info(self, args: Json) -> Json:
        return {"channel": self._readable_channel(args).to_dict()}

    def conversations_members(self, args: Json) -> Json:
        """Member ids, paginated; a DM's members are its owner and the bot, as in Slack."""
        chan = self._readable_channel(args)
        page, cursor = _page(sorted(chan.members), args)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def conversations_list(self, args: Json) -> Json:
        """Public channels, and the private channels and DMs the bot is in: as in Slack, a
        private channel the caller is not in is not listed (so its name looks free)."""
        types = set(_users(args.get("types") or "public_channel"))
        wanted = [
            c
            for c in self.ws.channels.values()
            if (c.is_im and "im" in types and BOT_USER_ID in c.members)
            or (
                not c.is_im
                and c.is_private
                and "private_channel" in types
                and BOT_USER_ID in c.members
            )
            or (not c.is_im and not c.is_private and "public_channel" in types)
        ]
        page, cursor = _page([c.to_dict() for c in wanted], args)
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    def conversations_history(self, args: Json) -> Json:
        chan = self._member_channel(args)
        msgs = self.ws.history(chan.id)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 1e12)
        inclusive = _bool(args.get("inclusive"))
        msgs = [
            m
            for m in msgs
            if (oldest < float(m.ts) < latest) or (inclusive and float(m.ts) in (oldest, latest))
        ]
        meta = _bool(args.get("include_all_metadata"))
        page, cursor = _page([m.to_dict(with_metadata=meta) for m in msgs], args)
        return {
            "messages": page,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def conversations_replies(self, args: Json) -> Json:
        chan = self._member_channel(args)
        ts = _req(args, "ts", "thread_not_found")
        try:
            msgs = self.ws.thread(chan.id, ts)
        except ApiError as exc:
            raise ApiError("thread_not_found") from exc
        meta = _bool(args.get("include_all_metadata"))
        page, cursor = _page([m.to_dict(with_metadata=meta) for m in msgs], args, 1000)
        return {
            "messages": page,
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def conversations_open(self, args: Json) -> Json:
        if args.get("channel"):
            chan = self.ws.channel(str(args["channel"]))
            return {"channel": chan.to_dict() if _bool(args.get("return_im")) else {"id": chan.id}}
        users = [u for u in _users(args.get("users")) if u != BOT_USER_ID]
        if len(users) != 1:
            raise ApiError("not_implemented" if users else "users_list_not_supplied")
        existed = any(c.is_im and c.im_user == users[0] for c in self.ws.channels.values())
        chan = self.ws.open_dm(users[0])
        body: Json = {
            "channel": chan.to_dict() if _bool(args.get("return_im")) else {"id": chan.id}
        }
        if existed:
            body.update(no_op=True, already_open=True)
        return body

    # ----- users --------------------------------------------------------

    def users_info(self, args: Json) -> Json:
        return {"user": self.ws.user(_req(args, "user", "user_not_found")).to_dict()}

    def users_list(self, args: Json) -> Json:
        page, cursor = _page([u.to_dict() for u in self.ws.users.values()], args, 200)
        return {
            "members": page,
            "cache_ts": int(self.ws.clock()),
            "response_metadata": {"next_cursor": cursor},
        }

    def usergroups_list(self, args: Json) -> Json:
        groups = []
        for group in self.ws.usergroups.values():
            item = {**group, "team_id": TEAM_ID, "user_count": len(group["users"])}
            item["is_usergroup"] = True
            if not _bool(args.get("include_users")):
                item.pop("users")
            groups.append(item)
        return {"usergroups": groups}

    def usergroups_users_list(self, args: Json) -> Json:
        group = self.ws.usergroups.get(_req(args, "usergroup", "no_such_subteam"))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group["users"])}
