"""Previews of the built-in Slack tools: what each call would do, asked of the same workspace
(read-only Web API methods only: ``conversations.info``, ``.members``, ``.list``).

Each gets the arguments as proposed (or edited), checked against the tool's own schema first
(``graph.service``), so a name Slack's rules refuse is said before anyone approves it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graph.context import AgentContext, SlackWebAPI
from graph.previews import Preview, PreviewFn, plain
from graph.tools.slack import (
    _CHANNEL_NAME,
    SlackToolError,
    _call,
    _channel_id,
    _channel_ref,
    slack_text,
)

MEMBER_PAGES = 20
"""conversations.members pages read (200 each) before saying "could not check them all"."""


def _client(context: AgentContext) -> SlackWebAPI:
    if context.slack is None:
        raise SlackToolError("no Slack workspace is connected to this run")
    return context.slack


async def _channel(client: SlackWebAPI, channel: str) -> dict[str, Any] | None:
    """The channel's ``conversations.info`` object, or None when there is none the bot sees."""
    try:
        channel_id = await _channel_id(client, channel)
        info = await _call(client, "conversations.info", channel=channel_id)
    except SlackToolError as error:
        if _absent(error):
            return None
        raise  # Slack could not say (e.g. a missing scope): no preview rather than a guess
    found = info.get("channel")
    return dict(found) if isinstance(found, dict) else None


def _absent(error: SlackToolError) -> bool:
    return "no channel named" in str(error) or "channel_not_found" in str(error)


def _missing(channel: str) -> Preview:
    return Preview(
        summary=f":warning: There is no channel {plain(_channel_ref(channel))} that I can see: "
        "Slack would refuse this call.",
        ok=False,
    )


def _link(info: dict[str, Any]) -> str:
    return f"<#{info['id']}>"


async def preview_post_message(args: dict[str, Any], context: AgentContext) -> Preview:
    """The message as it will appear in the channel (the same encoding the tool sends)."""
    client = _client(context)
    info = await _channel(client, str(args["channel"]))
    if info is None:
        return _missing(str(args["channel"]))
    return Preview(
        summary=f"Will post in {_link(info)} as the bot:", message=slack_text(str(args["text"]))
    )


async def preview_set_channel_topic(args: dict[str, Any], context: AgentContext) -> Preview:
    """The topic now and the topic after."""
    client = _client(context)
    info = await _channel(client, str(args["channel"]))
    if info is None:
        return _missing(str(args["channel"]))
    old = str((info.get("topic") or {}).get("value") or "")
    old = old.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    new = str(args["topic"])
    summary = (
        f"The topic of {_link(info)} stays as it is."
        if old == new
        else f"Will change the topic of {_link(info)}:"
    )
    return Preview(summary=summary, before=old or "(no topic)", after=new or "(no topic)")


async def _members(client: SlackWebAPI, channel_id: str) -> tuple[set[str], bool]:
    """The channel's members, and whether all of them were read."""
    members: set[str] = set()
    cursor = ""
    for _ in range(MEMBER_PAGES):
        page = await _call(
            client, "conversations.members", channel=channel_id, cursor=cursor, limit=200
        )
        members.update(str(user) for user in page.get("members", []))
        cursor = (page.get("response_metadata") or {}).get("next_cursor", "")
        if not cursor:
            return members, True
    return members, False


async def _person(client: SlackWebAPI, user: str) -> str:
    """A person as words, never a mention: a card naming someone must not ping them before
    anyone approved (``users.info``; the id alone when Slack cannot say)."""
    try:
        found = (await _call(client, "users.info", user=user)).get("user") or {}
    except SlackToolError:
        return f"`{user}`"
    profile = found.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or found.get("name")
    return f"{plain(str(name))} (`{user}`)" if name else f"`{user}`"


async def _people(client: SlackWebAPI, users: list[str]) -> str:
    return ", ".join(await asyncio.gather(*(_person(client, user) for user in users)))


async def preview_invite_users(args: dict[str, Any], context: AgentContext) -> Preview:
    """Who would be invited, and who is a member already."""
    client = _client(context)
    info = await _channel(client, str(args["channel"]))
    if info is None:
        return _missing(str(args["channel"]))
    members, complete = await _members(client, str(info["id"]))
    users = [str(user) for user in args["users"]]
    already = [user for user in users if user in members]
    new = [user for user in users if user not in members]
    notes: list[str] = []
    if already:
        verb = "is" if len(already) == 1 else "are"
        notes.append(f"{await _people(client, already)} {verb} already in {_link(info)}.")
    if not complete:
        notes.append("The channel is too big to check every member.")
    summary = (
        f"Will invite {await _people(client, new)} to {_link(info)}."
        if new
        else f"Everyone named is already in {_link(info)}: nothing would change."
    )
    return Preview(summary=summary, notes=tuple(notes))


async def preview_create_channel(args: dict[str, Any], context: AgentContext) -> Preview:
    """Whether the name follows Slack's rules and is free."""
    client = _client(context)
    name = str(args["name"]).strip().lstrip("#")
    kind = "private" if args.get("is_private") else "public"
    if not _CHANNEL_NAME.fullmatch(name):
        return Preview(
            summary=f":warning: `{plain(name)}` is not a valid channel name: use lowercase "
            "letters, digits, '-' or '_' (at most 80 characters).",
            ok=False,
        )
    try:
        await _channel_id(client, f"#{name}")
    except SlackToolError as error:
        if not _absent(error):
            raise
        return Preview(
            summary=f"#{name} is free: a {kind} channel will be created, with me in it.",
            notes=("A private channel I am not in could still hold the name.",),
        )
    return Preview(summary=f":warning: #{name} is taken: Slack would refuse.", ok=False)


SLACK_PREVIEWS: dict[str, PreviewFn] = {
    "post_message": preview_post_message,
    "set_channel_topic": preview_set_channel_topic,
    "invite_users": preview_invite_users,
    "create_channel": preview_create_channel,
}
