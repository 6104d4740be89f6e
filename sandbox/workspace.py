"""In-memory model of one Slack workspace: people, channels, messages, views.

Everything the Web API, the simulated users and the browser page see lives
here, so there is exactly one source of truth. Mutations are synchronous (no
awaits inside), which makes each one atomic under asyncio; an RLock also guards
them so a test poking from another thread cannot tear state.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.clock import Clock, system_clock
from sandbox.errors import ApiError

TEAM_ID = "T0SANDBOX"
TEAM_NAME = "Sandbox"
TEAM_DOMAIN = "sandbox"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APPROVERS_GROUP = "S0APPROVERS"
CHANNEL_NAME_RE = re.compile(r"^[a-z0-9_-]{1,80}$")
MAX_MODAL_STACK = 3

Json = dict[str, Any]


@dataclass
class User:
    """A person (or the bot user) who can post, click and be mentioned."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False

    def to_dict(self) -> Json:
        """The `user` object of users.info / users.list."""
        profile: Json = {
            "real_name": self.real_name,
            "display_name": self.name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.name,
            "image_48": "",
            "team": TEAM_ID,
        }
        if self.is_bot:
            profile["bot_id"] = BOT_ID
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name,
            "tz": "UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }


@dataclass
class Channel:
    """A public channel, private channel or a DM between the bot and one person."""

    id: str
    name: str
    created: int
    creator: str
    members: set[str] = field(default_factory=set)
    is_im: bool = False
    im_user: str | None = None
    is_private: bool = False
    topic: str = ""
    purpose: str = ""

    def to_dict(self, viewer: str = BOT_USER_ID) -> Json:
        """The `channel` object of conversations.info / list / create."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": False,
            "is_general": self.id == "C0GENERAL",
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_member": viewer in self.members,
            "creator": self.creator,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
            "num_members": len(self.members),
        }


@dataclass
class Message:
    """A channel or thread message, stored in Slack's own shape."""

    channel: str
    ts: str
    text: str
    user: str
    blocks: list[Json] | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    edited: Json | None = None
    metadata: Json | None = None
    reply_broadcast: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    streaming: bool = False
    """Being written by ``chat.startStream``/``appendStream`` until ``chat.stopStream``."""

    def to_dict(self, *, with_metadata: bool = True) -> Json:
        """The message as conversations.history and interaction payloads show it; the history
        methods leave its metadata out unless asked (``include_all_metadata``), as Slack does."""
        out: Json = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        out["team"] = TEAM_ID
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = "A0SANDBOX"
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.replies:
            out["reply_count"] = len(self.replies)
            out["latest_reply"] = self.replies[-1]
        if self.edited:
            out["edited"] = self.edited
        if self.metadata and with_metadata:
            out["metadata"] = self.metadata
        if self.reply_broadcast:
            out["subtype"] = "thread_broadcast"
        if self.streaming:  # the sandbox's marker for the page (Slack shows it being written)
            out["streaming"] = True
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return out


@dataclass
class Ephemeral:
    """A message only one person sees ("Only visible to you")."""

    channel: str
    ts: str
    user: str
    visible_to: str
    text: str
    blocks: list[Json] | None = None
    thread_ts: str | None = None

    def to_dict(self) -> Json:
        """Shape used by the page and by block_actions containers."""
        out: Json = {
            "type": "message",
            "subtype": "ephemeral",
            "user": self.user,
            "bot_id": BOT_ID if self.user == BOT_USER_ID else None,
            "text": self.text,
            "ts": self.ts,
            "channel": self.channel,
            "visible_to": self.visible_to,
            "is_ephemeral": True,
        }
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class View:
    """An open modal (or a published App Home) plus what the client shows around it."""

    user: str
    data: Json
    errors: dict[str, str] = field(default_factory=dict)
    banner: str | None = None

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def to_dict(self) -> Json:
        """The view plus the sandbox-only display state (errors, banner)."""
        return {**self.data, "_errors": dict(self.errors), "_banner": self.banner}


@dataclass
class Trigger:
    """A trigger id: usable once, within `ttl` seconds of the interaction."""

    id: str
    user: str
    created: float
    used: bool = False


@dataclass
class CallRecord:
    """One Web API call, as tests inspect it."""

    method: str
    args: Json
    token: str | None
    ok: bool
    error: str | None
    time: float
    response: Json

    def to_dict(self) -> Json:
        """JSON form for GET /sandbox/api/calls."""
        return {
            "method": self.method,
            "args": self.args,
            "token": self.token,
            "ok": self.ok,
            "error": self.error,
            "time": self.time,
            "response": self.response,
        }


@dataclass
class DeliveryRecord:
    """One HTTP request the sandbox sent to the bot, for debugging and tests."""

    kind: str
    id: str
    attempt: int
    status: int | None
    error: str | None
    duration: float
    time: float
    body: Json

    def to_dict(self) -> Json:
        return {
            "kind": self.kind,
            "id": self.id,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
            "time": self.time,
            "body": self.body,
        }


class Workspace:
    """The whole mutable state, seeded with the demo team, people and channels."""

    def __init__(self, clock: Clock = system_clock, trigger_ttl: float = 3.0) -> None:
        self.clock = clock
        self.trigger_ttl = trigger_ttl
        self._lock = threading.RLock()
        # Ids must not repeat across sandbox runs: the bot's state (event de-duplication,
        # threads) outlives a restarted sandbox, exactly as it outlives nothing in real Slack.
        self._instance = secrets.token_hex(3).upper()
        self._subscribers: set[asyncio.Queue[Json]] = set()
        self._seed()

    # ----- seed and reset -------------------------------------------------

    def _seed(self) -> None:
        """Create the fixed demo workspace described in the project README."""
        self._counter = 0
        self._last_ts_micros = 0
        self.users: dict[str, User] = {
            u.id: u
            for u in (
                User(BOT_USER_ID, "approvals", "Approvals", is_bot=True),
                User("U0ALICE", "alice", "Alice Approver"),
                User("U0BOB", "bob", "Bob Approver"),
                User("U0CAROL", "carol", "Carol Requester"),
            )
        }
        everyone = set(self.users)
        self.channels: dict[str, Channel] = {
            "C0GENERAL": Channel("C0GENERAL", "general", 1_700_000_000, "U0ALICE", set(everyone)),
            "C0RANDOM": Channel("C0RANDOM", "random", 1_700_000_000, "U0ALICE", set(everyone)),
        }
        self.usergroups: dict[str, Json] = {
            APPROVERS_GROUP: {
                "id": APPROVERS_GROUP,
                "handle": "approvers",
                "name": "approvers",
                "description": "People who may approve the agent's tool calls",
                "users": ["U0ALICE", "U0BOB"],
            }
        }
        self.messages: dict[str, list[Message]] = {cid: [] for cid in self.channels}
        self.ephemerals: list[Ephemeral] = []
        self.modals: dict[str, list[View]] = {}
        self.homes: dict[str, View] = {}
        self.triggers: dict[str, Trigger] = {}
        self.calls: list[CallRecord] = []
        self.deliveries: list[DeliveryRecord] = []
        self.statuses: dict[tuple[str, str], tuple[str, list[str]]] = {}
        """Each thread's status line (``assistant.threads.setStatus``): text, loading messages."""
        self.sessions: dict[tuple[str, str], list[str]] = {}
        """Each thread's agent session states (``agents.sessions.setStatus``), in order."""
        self.suggested: dict[tuple[str, str], list[Json]] = {}
        """The prompts suggested in each assistant thread (``setSuggestedPrompts``)."""

    def reset(self) -> None:
        """Forget every message, view and recorded call; keep subscribers."""
        with self._lock:
            self._seed()
        self.publish({"kind": "reset"})

    # ----- ids and time ---------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A Slack-looking id (prefix + uppercase hex/digits), unique across sandbox runs."""
        with self._lock:
            self._counter += 1
            return f"{prefix}{self._instance}{self._counter:06d}"

    def new_ts(self) -> str:
        """A message ts from the clock, strictly increasing like Slack's."""
        with self._lock:
            micros = max(int(self.clock() * 1_000_000), self._last_ts_micros + 1)
            self._last_ts_micros = micros
            return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ----- change notification (SSE) ----------------------------------

    def subscribe(self) -> asyncio.Queue[Json]:
        """A queue receiving every change, for the page's live updates."""
        queue: asyncio.Queue[Json] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Json]) -> None:
        self._subscribers.discard(queue)

    def publish(self, change: Json) -> None:
        """Tell every subscriber; a slow one loses events rather than blocking us."""
        for queue in list(self._subscribers):
            if not queue.full():
                queue.put_nowait(change)

    # ----- people ---------------------------------------------------------

    def user(self, user_id: str) -> User:
        """The user, or Slack's `user_not_found`."""
        found = self.users.get(user_id)
        if found is None:
            raise ApiError("user_not_found")
        return found

    def is_approver(self, user_id: str) -> bool:
        return user_id in self.usergroups[APPROVERS_GROUP]["users"]

    # ----- channels -------------------------------------------------------

    def channel(self, ref: str, actor: str = BOT_USER_ID) -> Channel:
        """Resolve an id, `#name` or a user id (meaning the DM with that user)."""
        if ref.startswith("#"):
            for chan in self.channels.values():
                if chan.name == ref[1:] and not chan.is_im:
                    return chan
            raise ApiError("channel_not_found")
        if ref in self.channels:
            return self.channels[ref]
        if ref in self.users and ref != actor:
            return self.open_dm(ref if actor == BOT_USER_ID else actor)
        raise ApiError("channel_not_found")

    def open_dm(self, user_id: str) -> Channel:
        """The DM between the bot and `user_id`, created on first use."""
        self.user(user_id)
        with self._lock:
            for chan in self.channels.values():
                if chan.is_im and chan.im_user == user_id:
                    return chan
            cid = "D0" + user_id[2:]
            chan = Channel(cid, cid, int(self.clock()), user_id, {user_id, BOT_USER_ID})
            chan.is_im, chan.im_user = True, user_id
            self.channels[cid] = chan
            self.messages[cid] = []
        self.publish({"kind": "channel", "channel": cid})
        return chan

    def create_channel(self, name: str, creator: str, is_private: bool = False) -> Channel:
        """conversations.create: Slack's naming rules, creator becomes a member."""
        if not CHANNEL_NAME_RE.match(name):
            raise ApiError("invalid_name_specials" if name else "invalid_name_required")
        with self._lock:
            if any(c.name == name for c in self.channels.values()):
                raise ApiError("name_taken")
            chan = Channel(self.new_id("C"), name, int(self.clock()), creator, {creator})
            chan.is_private = is_private
            self.channels[chan.id] = chan
            self.messages[chan.id] = []
        self.publish({"kind": "channel", "channel": chan.id})
        return chan

    def invite(self, channel_id: str, user_ids: list[str]) -> Channel:
        """conversations.invite with Slack's errors for unknown or present users."""
        chan = self.channel(channel_id)
        for uid in user_ids:
            self.user(uid)
        if all(uid in chan.members for uid in user_ids):
            raise ApiError("already_in_channel")
        with self._lock:
            chan.members.update(user_ids)
        self.publish({"kind": "channel", "channel": chan.id})
        return chan

    def visible_channels(self, user_id: str) -> list[Channel]:
        """Channels shown in a person's sidebar: public ones plus their DM."""
        return [
            c
            for c in self.channels.values()
            if (not c.is_im and (not c.is_private or user_id in c.members))
            or (c.is_im and c.im_user == user_id)
        ]

    # ----- messages -------------------------------------------------------

    def post(
        self,
        channel: Channel,
        user: str,
        text: str,
        *,
        blocks: list[Json] | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        metadata: Json | None = None,
        streaming: bool = False,
    ) -> Message:
        """Store a new message (or thread reply) and announce it."""
        with self._lock:
            parent = self.find_message(channel.id, thread_ts) if thread_ts else None
            if parent is not None and parent.thread_ts and parent.thread_ts != parent.ts:
                parent = self.find_message(channel.id, parent.thread_ts)
            msg = Message(channel.id, self.new_ts(), text, user, blocks)
            msg.bot_id = BOT_ID if user == BOT_USER_ID else None
            msg.metadata, msg.reply_broadcast = metadata, reply_broadcast and parent is not None
            msg.streaming = streaming
            if parent is not None:
                parent.thread_ts = parent.ts
                msg.thread_ts = parent.ts
                parent.replies.append(msg.ts)
                if user == BOT_USER_ID:  # as in Slack: the app's reply clears its status
                    self.statuses.pop((channel.id, parent.ts), None)
            self.messages[channel.id].append(msg)
        self.publish({"kind": "message", "channel": channel.id, "ts": msg.ts})
        return msg

    def find_message(self, channel_id: str, ts: str | None) -> Message:
        """The message at `ts`, or Slack's `message_not_found`."""
        for msg in self.messages.get(channel_id, []):
            if msg.ts == ts:
                return msg
        raise ApiError("message_not_found")

    def update(
        self, channel_id: str, ts: str, text: str | None, blocks: list[Json] | None
    ) -> Message:
        """chat.update: only the bot's own messages, marked as edited."""
        with self._lock:
            msg = self.find_message(channel_id, ts)
            if msg.user != BOT_USER_ID:
                raise ApiError("cant_update_message")
            if text is not None:
                msg.text = text
            if blocks is not None:
                msg.blocks = blocks
            msg.edited = {"user": BOT_USER_ID, "ts": self.new_ts()}
        self.publish({"kind": "message_changed", "channel": channel_id, "ts": ts})
        return msg

    def append_text(
        self, msg: Message, text: str, *, stop: bool = False, blocks: list[Json] | None = None
    ) -> None:
        """A streamed message grows by ``text`` (``stop``: and ends, with ``blocks`` if any)."""
        with self._lock:
            msg.text += text
            if stop:
                msg.streaming = False
                if blocks is not None:
                    msg.blocks = blocks
        self.publish({"kind": "message_changed", "channel": msg.channel, "ts": msg.ts})

    def set_status(self, channel_id: str, thread_ts: str, text: str, loading: list[str]) -> None:
        with self._lock:
            root = self.find_message(channel_id, thread_ts)
            key = (channel_id, root.thread_ts or root.ts)
            if text:
                self.statuses[key] = (text, loading)
            else:
                self.statuses.pop(key, None)
        self.publish({"kind": "message_changed", "channel": channel_id, "ts": key[1]})

    def set_session(self, channel_id: str, thread_ts: str, state: str) -> None:
        with self._lock:
            root = self.find_message(channel_id, thread_ts)
            key = (channel_id, root.thread_ts or root.ts)
            self.sessions.setdefault(key, []).append(state)
        self.publish({"kind": "message_changed", "channel": channel_id, "ts": key[1]})

    def session_of(self, channel_id: str, thread_ts: str) -> str | None:
        """The thread's agent session state (None before any)."""
        states = self.sessions.get((channel_id, thread_ts))
        return states[-1] if states else None

    def status_of(self, channel_id: str, thread_ts: str) -> str:
        """The thread's status line as people read it ("" when there is none)."""
        return self.statuses.get((channel_id, thread_ts), ("", []))[0]

    def delete(self, channel_id: str, ts: str) -> None:
        """chat.delete: only the bot's own messages."""
        with self._lock:
            msg = self.find_message(channel_id, ts)
            if msg.user != BOT_USER_ID:
                raise ApiError("cant_delete_message")
            self.messages[channel_id].remove(msg)
            if msg.thread_ts and msg.thread_ts != msg.ts:
                parent = self.find_message(channel_id, msg.thread_ts)
                parent.replies.remove(msg.ts)
        self.publish({"kind": "message_deleted", "channel": channel_id, "ts": ts})

    def react(self, channel_id: str, ts: str, name: str, user: str, add: bool) -> None:
        """reactions.add / reactions.remove with already_reacted / no_reaction."""
        name = name.strip(":")
        if not name:
            raise ApiError("invalid_name")
        with self._lock:
            msg = self.find_message(channel_id, ts)
            users = msg.reactions.setdefault(name, [])
            if add and user in users:
                raise ApiError("already_reacted")
            if not add and user not in users:
                raise ApiError("no_reaction")
            users.append(user) if add else users.remove(user)
            if not users:
                del msg.reactions[name]
        self.publish({"kind": "reaction", "channel": channel_id, "ts": ts})

    def post_ephemeral(
        self,
        channel: Channel,
        visible_to: str,
        text: str,
        blocks: list[Json] | None,
        thread_ts: str | None,
    ) -> Ephemeral:
        """chat.postEphemeral: only for members of the channel."""
        self.user(visible_to)
        if visible_to not in channel.members:
            raise ApiError("user_not_in_channel")
        with self._lock:
            eph = Ephemeral(channel.id, self.new_ts(), BOT_USER_ID, visible_to, text, blocks)
            eph.thread_ts = thread_ts
            self.ephemerals.append(eph)
        self.publish({"kind": "ephemeral", "channel": channel.id, "user": visible_to})
        return eph

    def find_ephemeral(self, channel_id: str, ts: str, user: str) -> Ephemeral:
        for eph in self.ephemerals:
            if eph.channel == channel_id and eph.ts == ts and eph.visible_to == user:
                return eph
        raise ApiError("message_not_found")

    def history(self, channel_id: str) -> list[Message]:
        """Top-level messages (and broadcasts), newest first as Slack returns them."""
        msgs = self.messages.get(channel_id, [])
        top = [m for m in msgs if not m.thread_ts or m.thread_ts == m.ts or m.reply_broadcast]
        return list(reversed(top))

    def thread(self, channel_id: str, ts: str) -> list[Message]:
        """Parent first, then replies oldest first (conversations.replies)."""
        parent = self.find_message(channel_id, ts)
        root = parent.thread_ts or parent.ts
        msgs = self.messages.get(channel_id, [])
        return [m for m in msgs if m.ts == root or m.thread_ts == root]

    # ----- triggers and views -------------------------------------------

    def new_trigger(self, user: str) -> str:
        """A fresh trigger id for an interaction by `user`."""
        seq = int(self.new_id(""), 16)
        tid = f"{int(self.clock())}.{seq}.{secrets.token_hex(16)}"
        with self._lock:
            self.triggers[tid] = Trigger(tid, user, self.clock())
        return tid

    def use_trigger(self, trigger_id: str) -> str:
        """Consume a trigger id; Slack rejects unknown, reused and stale ones."""
        with self._lock:
            trig = self.triggers.get(trigger_id)
            if trig is None:
                raise ApiError("invalid_trigger_id")
            if trig.used or self.clock() - trig.created > self.trigger_ttl:
                raise ApiError("expired_trigger_id")
            trig.used = True
            return trig.user

    def modal_stack(self, user: str) -> list[View]:
        return self.modals.get(user, [])

    def top_modal(self, user: str) -> View | None:
        stack = self.modals.get(user)
        return stack[-1] if stack else None

    def find_view(self, view_id: str | None, external_id: str | None) -> View:
        """A view by id or external_id, or Slack's `not_found`."""
        views = [v for stack in self.modals.values() for v in stack]
        views += list(self.homes.values())
        for view in views:
            if (view_id and view.id == view_id) or (
                external_id and view.data.get("external_id") == external_id
            ):
                return view
        raise ApiError("not_found")

    def set_modals(self, user: str, stack: list[View]) -> None:
        """Replace a person's modal stack and tell the page."""
        with self._lock:
            if stack:
                self.modals[user] = stack
            else:
                self.modals.pop(user, None)
        self.publish({"kind": "view", "user": user})

    def set_home(self, user: str, view: View) -> None:
        with self._lock:
            self.homes[user] = view
        self.publish({"kind": "home", "user": user})

    # ----- recording -----------------------------------------------------

    def record_call(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)
        self.publish({"kind": "call", "method": record.method})

    def calls_of(self, method: str) -> list[CallRecord]:
        """Recorded calls of one Web API method, oldest first."""
        return [c for c in self.calls if c.method == method]

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self.deliveries.append(record)

    def new_view(
        self,
        user: str,
        spec: Json,
        *,
        view_id: str | None = None,
        previous: str | None = None,
        root: str | None = None,
    ) -> View:
        """Turn a view definition into the object views.open returns."""
        vid = view_id or self.new_id("V")
        data: Json = {
            "id": vid,
            "team_id": TEAM_ID,
            "type": spec.get("type", "modal"),
            "blocks": spec.get("blocks", []),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{secrets.token_hex(4)}",
            "title": spec.get("title"),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": spec.get("close"),
            "submit": spec.get("submit"),
            "previous_view_id": previous,
            "root_view_id": root or vid,
            "app_id": "A0SANDBOX",
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        return View(user, data)
