"""Tools that act on the Slack workspace: each changes something people see, so each is reviewed.

The Web API client comes from the run's context (`AgentContext.slack`), never from a global, so
one process can serve several workspaces and tests can hand in a stand-in. Each call carries its
tool call id as an idempotency key in message metadata, so a retried run can tell it already
acted.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel, Field, field_validator
from pydantic.config import JsonDict

from graph.context import AgentContext, SlackWebAPI, slack_reply
from graph.receipts import Receipt

Answer = tuple[str, dict[str, Receipt]]
"""What a tool returns: the text for the model, and its receipt for people."""


def _receipt(summary: str, link: str | None = None, link_text: str = "") -> dict[str, Receipt]:
    receipt = Receipt(summary=summary)
    if link:
        receipt["link"] = link
        receipt["link_text"] = link_text or link
    return {"receipt": receipt}


async def _permalink(client: SlackWebAPI, channel: str, ts: str | None) -> str | None:
    """The posted message's permalink; None if Slack cannot say (the receipt goes without)."""
    if not ts:
        return None
    try:
        reply = await _call(client, "chat.getPermalink", channel=channel, message_ts=ts)
    except Exception:
        return None
    link = reply.get("permalink")
    return str(link) if isinstance(link, str) else None


IDEMPOTENCY_EVENT = "approval_bot_tool_call"
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # ids are upper case; names never are
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")


# What Slack would read as markup in text we send: only these references keep their meaning
# (a mention of one person, a link to one channel); everything else is shown as written.
_KEPT_REFERENCE = re.compile(r"<(?:@[UW][A-Z0-9]+|#[CGD][A-Z0-9]+(?:\|[a-z0-9_-]{0,80})?)>")


def slack_text(text: str) -> str:
    """Text exactly as the reviewer read it, encoded once for Slack (``&``, ``<``, ``>`` as
    entities), so Slack shows the same characters: no ``<!channel>`` ping, no link whose
    label hides its target. ``<@U…>`` and ``<#C…>`` stay a mention and a channel link, as the
    review card shows them. The agent reads incoming text decoded the same way
    (`bot.mrkdwn.decode_incoming`), so nothing is decoded or encoded twice."""
    out: list[str] = []
    pos = 0
    for match in _KEPT_REFERENCE.finditer(text):
        out.append(_entities(text[pos : match.start()]))
        out.append(match.group())
        pos = match.end()
    out.append(_entities(text[pos:]))
    return "".join(out)


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackToolError(RuntimeError):
    """A Slack API refusal, worded so the model (and the reviewer) can see what went wrong."""


def _client(runtime: ToolRuntime[AgentContext, Any]) -> SlackWebAPI:
    context = runtime.context
    if context is None or context.slack is None:
        raise SlackToolError("no Slack workspace is connected to this run")
    return context.slack


READ_METHODS = frozenset(
    {
        "auth.test",
        "chat.getPermalink",
        "conversations.history",
        "conversations.info",
        "conversations.list",
        "conversations.members",
        "users.info",
    }
)
"""The read methods the tools call. Slack reads a JSON body only for (most) write methods; a
read method given one answers as if no argument was sent (``users.info`` says
``user_not_found``, ``conversations.list`` ignores its cursor and would page forever), so
these go as query parameters, as ``slack_sdk``'s own methods send them."""


async def _call(client: SlackWebAPI, method: str, **args: Any) -> dict[str, Any]:
    """Call Slack and turn ``ok: false`` (or an SDK error) into a readable tool error."""
    try:
        if method in READ_METHODS:
            answer = await client.api_call(method, http_verb="GET", params=args)
        else:
            answer = await client.api_call(method, json=args)
        reply = dict(slack_reply(answer))
    except Exception as error:  # the SDK raises SlackApiError carrying the same reply
        body = getattr(getattr(error, "response", None), "data", None)
        if isinstance(body, dict) and body.get("error"):
            raise SlackToolError(f"Slack refused {method}: {body['error']}") from error
        raise
    if not reply.get("ok", False):
        raise SlackToolError(f"Slack refused {method}: {reply.get('error', 'unknown error')}")
    return reply


def _channel_ref(channel: str) -> str:
    """Accept ``#name``, ``name`` or an id; Slack resolves names for posting."""
    channel = channel.strip()
    mention = re.fullmatch(r"<#([A-Z0-9]+)(?:\|[^>]*)?>", channel)
    if mention:
        return mention.group(1)
    return channel if channel.startswith("#") or _CHANNEL_ID.fullmatch(channel) else f"#{channel}"


async def _channel_id(client: SlackWebAPI, channel: str) -> str:
    """Resolve a channel name to its id (topic and invite methods require ids)."""
    ref = _channel_ref(channel)
    if not ref.startswith("#"):
        return ref
    name = ref[1:]
    cursor = ""
    while True:
        page = await _call(
            client,
            "conversations.list",
            types="public_channel,private_channel",
            cursor=cursor,
            limit=200,
            exclude_archived=True,
        )
        for found in page.get("channels", []):
            if found.get("name") == name:
                return str(found["id"])
        cursor = page.get("response_metadata", {}).get("next_cursor", "")
        if not cursor:
            raise SlackToolError(f"no channel named #{name}")


async def _posted_before(client: SlackWebAPI, channel: str, key: str) -> str | None:
    """The ts of a message this very tool call already posted (found by its idempotency key
    in the message metadata), so a replayed call does not post twice."""
    try:
        channel_id = await _channel_id(client, channel)
        page = await _call(
            client,
            "conversations.history",
            channel=channel_id,
            limit=100,
            include_all_metadata=True,
        )
    except SlackToolError:
        return None  # e.g. a channel the bot cannot read: nothing to compare against
    for message in page.get("messages", []):
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == IDEMPOTENCY_EVENT
            and (metadata.get("event_payload") or {}).get("tool_call_id") == key
        ):
            return str(message.get("ts"))
    return None


async def _created_by_me(client: SlackWebAPI, name: str) -> str | None:
    """The id of an existing channel of this name, if this bot created it."""
    me = (await _call(client, "auth.test")).get("user_id")
    try:
        channel_id = await _channel_id(client, f"#{name.lstrip('#')}")
        info = await _call(client, "conversations.info", channel=channel_id)
    except SlackToolError:
        return None
    return channel_id if info.get("channel", {}).get("creator") == me else None


# How an argument is read (README, "Your own tools"): the JSON-schema ``format`` of a
# property tells the bot to show an id as a name and to offer Slack's own picker in Edit.
SLACK_USERS: JsonDict = {"format": "slack-users"}
SLACK_CHANNEL: JsonDict = {"format": "slack-channel"}


class PostMessageArgs(BaseModel):
    channel: str = Field(
        description="Channel to post in: #name or a channel id.",
        min_length=1,
        json_schema_extra=SLACK_CHANNEL,
    )
    text: str = Field(
        description=(
            "The message, posted exactly as written. *bold*, _italic_ and `code` work; "
            "<@U…> mentions a person and <#C…> links a channel; other <…> markup, "
            "@here/@channel and & are shown literally."
        ),
        min_length=1,
        max_length=4000,
    )


@tool(args_schema=PostMessageArgs, response_format="content_and_artifact")
async def post_message(channel: str, text: str, runtime: ToolRuntime[AgentContext, Any]) -> Answer:
    """Post a message to a Slack channel as the bot."""
    client = _client(runtime)
    key = runtime.tool_call_id
    earlier = await _posted_before(client, channel, key) if key else None
    if earlier:
        channel_id = await _channel_id(client, channel)
        return (
            f"Posted to {channel} (message ts {earlier}; already done before a restart).",
            _receipt(
                f"Posted in <#{channel_id}> (before a restart)",
                await _permalink(client, channel_id, earlier),
                "the message",
            ),
        )
    reply = await _call(
        client,
        "chat.postMessage",
        channel=_channel_ref(channel),
        text=slack_text(text),
        metadata={
            "event_type": IDEMPOTENCY_EVENT,
            "event_payload": {"tool_call_id": runtime.tool_call_id},
        },
    )
    channel_id = str(reply.get("channel") or _channel_ref(channel))
    ts = reply.get("ts")
    return (
        f"Posted to {channel} (message ts {ts}).",
        _receipt(
            f"Posted in <#{channel_id}>",
            await _permalink(client, channel_id, str(ts) if ts else None),
            "the message",
        ),
    )


class CreateChannelArgs(BaseModel):
    name: str = Field(
        description="New channel name: lowercase letters, digits, hyphens, underscores; max 80.",
    )
    is_private: bool = Field(default=False, description="Create a private channel.")

    @field_validator("name")
    @classmethod
    def _slack_channel_name(cls, name: str) -> str:
        name = name.strip().lstrip("#")
        if not _CHANNEL_NAME.fullmatch(name):
            raise ValueError("use lowercase letters, digits, '-' or '_' (at most 80 characters)")
        return name


@tool(args_schema=CreateChannelArgs, response_format="content_and_artifact")
async def create_channel(
    name: str, runtime: ToolRuntime[AgentContext, Any], is_private: bool = False
) -> Answer:
    """Create a new Slack channel."""
    client = _client(runtime)
    try:
        reply = await _call(
            client, "conversations.create", name=name.lstrip("#"), is_private=is_private
        )
    except SlackToolError as error:
        mine = await _created_by_me(client, name) if "name_taken" in str(error) else None
        if mine is None:
            raise
        return (
            f"#{name} already exists ({mine}); it was created by me, so nothing changed.",
            _receipt(f"<#{mine}> already existed (I created it before); nothing changed"),
        )
    created = reply.get("channel", {})
    return (
        f"Created #{created.get('name', name)} ({created.get('id')}).",
        _receipt(f"Created <#{created.get('id')}>"),
    )


class SetTopicArgs(BaseModel):
    channel: str = Field(
        description="Channel: #name or a channel id.", min_length=1, json_schema_extra=SLACK_CHANNEL
    )
    topic: str = Field(description="The new topic, shown exactly as written.", max_length=250)


@tool(args_schema=SetTopicArgs, response_format="content_and_artifact")
async def set_channel_topic(
    channel: str, topic: str, runtime: ToolRuntime[AgentContext, Any]
) -> Answer:
    """Set a Slack channel's topic."""
    client = _client(runtime)
    channel_id = await _channel_id(client, channel)
    await _call(client, "conversations.setTopic", channel=channel_id, topic=slack_text(topic))
    return (
        f"Set the topic of {channel} to: {topic}",
        _receipt(f"The topic of <#{channel_id}> is now: {slack_text(topic)}"),
    )


class InviteArgs(BaseModel):
    channel: str = Field(
        description="Channel: #name or a channel id.", min_length=1, json_schema_extra=SLACK_CHANNEL
    )
    users: list[str] = Field(
        description="Slack user ids to invite, e.g. U0123ABC.",
        min_length=1,
        max_length=100,
        json_schema_extra=SLACK_USERS,
    )

    @field_validator("users")
    @classmethod
    def _user_ids(cls, users: list[str]) -> list[str]:
        cleaned = [re.sub(r"^<@([A-Z0-9]+)(\|[^>]*)?>$", r"\1", user.strip()) for user in users]
        bad = [user for user in cleaned if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user)]
        if bad:
            raise ValueError(f"not Slack user ids: {', '.join(bad)}")
        return cleaned


@tool(args_schema=InviteArgs, response_format="content_and_artifact")
async def invite_users(
    channel: str, users: list[str], runtime: ToolRuntime[AgentContext, Any]
) -> Answer:
    """Invite users to a Slack channel."""
    client = _client(runtime)
    channel_id = await _channel_id(client, channel)
    people = ", ".join(f"<@{user}>" for user in users)
    try:
        await _call(client, "conversations.invite", channel=channel_id, users=",".join(users))
    except SlackToolError as error:
        if "already_in_channel" not in str(error):
            raise
        return (
            f"{', '.join(users)} already in {channel}; no change.",
            _receipt(f"{people}: already in <#{channel_id}>; nothing changed"),
        )
    return (
        f"Invited {', '.join(users)} to {channel}.",
        _receipt(f"Invited {people} to <#{channel_id}>"),
    )


def slack_tools() -> list[BaseTool]:
    """The built-in workspace tools, all of which need review by default."""
    return [post_message, create_channel, set_channel_topic, invite_users]
