"""Builders for the Events API `event` objects Slack sends for messages."""

from __future__ import annotations

import re
import time
import uuid

from sandbox.workspace import BOT_USER_ID, TEAM_ID, Channel, Json, Message

MENTION_RE = re.compile(r"<@(U[A-Z0-9]+)(?:\|[^>]*)?>")
BROADCASTS = ("here", "channel", "everyone")


def wire_text(typed: str, users: dict[str, str], channels: dict[str, str]) -> str:
    """What Slack's client sends for text a person typed: ``&``, ``<``, ``>`` as entities,
    then ``@name`` as ``<@U…>``, ``@here``/``@channel``/``@everyone`` as ``<!here>`` …, and
    ``#name`` as ``<#C…|name>`` (``users``/``channels``: name -> id)."""
    text = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def person(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in BROADCASTS:
            return f"<!{name}>"
        return f"<@{users[name]}>" if name in users else match.group()

    def channel(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<#{channels[name]}|{name}>" if name in channels else match.group()

    text = re.sub(r"(?<![\w@])@([a-z0-9._-]+)\b", person, text)
    return re.sub(r"(?<![\w&#])#([a-z0-9_-]+)\b", channel, text)


def channel_type(channel: Channel) -> str:
    """`im` for DMs, `group` for private channels, else `channel`."""
    if channel.is_im:
        return "im"
    return "group" if channel.is_private else "channel"


def _characters(wire: str) -> str:
    """Rich text carries the characters themselves, not the wire text's entities."""
    return wire.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def rich_text_blocks(text: str) -> list[Json]:
    """The rich_text block Slack's client attaches to a typed message (``text``: wire form)."""
    elements: list[Json] = []
    pos = 0
    for match in MENTION_RE.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": _characters(text[pos : match.start()])})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": _characters(text[pos:])})
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}]


def message_event(channel: Channel, msg: Message, parent_user: str | None = None) -> Json:
    """A `message` event as delivered for a new message (user's or bot's)."""
    event: Json = {
        "type": "message",
        "channel": channel.id,
        "user": msg.user,
        "text": msg.text,
        "ts": msg.ts,
        "team": TEAM_ID,
        "event_ts": msg.ts,
        "channel_type": channel_type(channel),
    }
    if msg.blocks is not None:
        event["blocks"] = msg.blocks
    if msg.bot_id:
        event["bot_id"] = msg.bot_id
        event["app_id"] = "A0SANDBOX"
        event["bot_profile"] = {"id": msg.bot_id, "name": "approvals", "team_id": TEAM_ID}
    else:
        event["client_msg_id"] = str(uuid.uuid4())
    if msg.thread_ts:
        event["thread_ts"] = msg.thread_ts
        event["parent_user_id"] = parent_user or msg.user
    if msg.reply_broadcast:
        event["subtype"] = "thread_broadcast"
    return event


def mention_event(channel: Channel, msg: Message) -> Json:
    """The `app_mention` event Slack sends in addition to `message`."""
    event: Json = {
        "type": "app_mention",
        "user": msg.user,
        "text": msg.text,
        "ts": msg.ts,
        "team": TEAM_ID,
        "channel": channel.id,
        "event_ts": msg.ts,
        "client_msg_id": str(uuid.uuid4()),
    }
    if msg.blocks is not None:
        event["blocks"] = msg.blocks
    if msg.thread_ts:
        event["thread_ts"] = msg.thread_ts
    return event


def app_home_opened_event(user: str, dm_channel: str, tab: str, view: Json | None) -> Json:
    """`app_home_opened`: a person opened the app's Home (or Messages) tab. Slack includes the
    Home view the app last published for them, if any."""
    event: Json = {
        "type": "app_home_opened",
        "user": user,
        "channel": dm_channel,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return event


def mentions_bot(text: str) -> bool:
    return any(m.group(1) == BOT_USER_ID for m in MENTION_RE.finditer(text))
