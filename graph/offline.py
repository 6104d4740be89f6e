"""A deterministic stand-in for Claude, used when no ANTHROPIC_API_KEY is configured.

It is honest about what it is: it recognises a handful of phrasings, proposes the matching tool
calls, reports tool results, handles reviewers' feedback when the feedback itself says what to
do, and otherwise explains that it is offline and how to enable Claude.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import ToolCallChunk
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from graph.protocols import DISMISSED
from graph.receipts import failure_words

OFFLINE_HELP = (
    "I'm running offline (no `ANTHROPIC_API_KEY` is set), so I understand only a few phrasings:\n"
    "• _what's the weather in Paris?_ (or _in Paris and Oslo_)\n"
    '• _post "hello team" to #general_\n'
    "• _create channel #launch-plan_\n"
    "• _set the topic of #general to Launch on Friday_\n"
    "• _invite @alice @bob to #general_\n"
    "• with the demo's notes server: _add a note buy milk_, _list my notes_, _delete note 1_\n"
    "Set `ANTHROPIC_API_KEY` (and optionally `ANTHROPIC_MODEL`) to talk to Claude instead."
)

_CHANNEL = r"(#[\w-]+|<#[A-Z0-9]+(?:\|[^>]*)?>)"
_QUOTED = r"[\"“']?(.+?)[\"”']?"
Call = tuple[str, dict[str, Any]]


def _weather(match: re.Match[str]) -> list[Call]:
    cities = re.split(r"\s+and\s+", match.group(1).strip())
    return [("weather_search", {"city": city.strip()}) for city in cities if city.strip()]


def _post(match: re.Match[str]) -> list[Call]:
    return [("post_message", {"channel": match.group(2), "text": match.group(1)})]


def _create(match: re.Match[str]) -> list[Call]:
    args: dict[str, Any] = {"name": match.group(2)}
    if match.group(1):
        args["is_private"] = True
    return [("create_channel", args)]


def _topic(match: re.Match[str]) -> list[Call]:
    return [("set_channel_topic", {"channel": match.group(1), "topic": match.group(2)})]


def _invite(match: re.Match[str]) -> list[Call]:
    users = re.findall(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", match.group(1))
    return [("invite_users", {"channel": match.group(2), "users": users})] if users else []


def _add_note(match: re.Match[str]) -> list[Call]:
    return [("notes__add_note", {"text": match.group(1).strip()})]


def _list_notes(match: re.Match[str]) -> list[Call]:
    return [("notes__list_notes", {})]


def _delete_note(match: re.Match[str]) -> list[Call]:
    return [("notes__delete_note", {"note_id": int(match.group(1))})]


_PHRASES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], list[Call]]]] = [
    (re.compile(r"weather (?:like )?(?:in|for|at) (.+?)[?.!]*$", re.I), _weather),
    (re.compile(rf"(?:post|send|say) {_QUOTED} (?:to|in|on) {_CHANNEL}\s*[.!]*$", re.I), _post),
    (
        re.compile(
            r"create (?:a )?(?:new )?(private )?channel (?:called |named )?#?([\w-]+)", re.I
        ),
        _create,
    ),
    (re.compile(rf"set (?:the )?topic (?:of|for|in) {_CHANNEL} to {_QUOTED}[.!]*$", re.I), _topic),
    (re.compile(rf"invite (.+?) (?:to|into) {_CHANNEL}", re.I), _invite),
    # The demo's MCP notes server (sandbox/mcp_notes.py), configured as [mcp.servers.notes].
    (re.compile(r"^(?:please )?add (?:a )?note:?\s+[\"“']?(.+?)[\"”']?[.!]*$", re.I), _add_note),
    (
        re.compile(r"^(?:please )?(?:list|show)(?: me)? (?:my |the |all )?notes\b", re.I),
        _list_notes,
    ),
    (re.compile(r"^(?:please )?(?:delete|remove) note (?:number |#)?(\d+)\b", re.I), _delete_note),
]
_REDIRECT = re.compile(
    r"^(?:no,?\s*)?(?:please\s+)?(?:use|try|make it|change it to|it should be)"
    r"\s+[\"“']?(.+?)[\"”']?(?:\s+instead)?[.!]*$",
    re.I,
)


_REQUESTED = re.compile(r"^\s*(?:the\s+)?user\s+requested\s+changes?\s*:\s*", re.I)
"""The seed's framing of feedback ("User requested changes: ..."), read past to the request."""
_CITY_COUNTRY = re.compile(
    r"\b(?:use|in|with)\s+(?:the\s+|a\s+)?[<\[(]?\s*city\s*,\s*country\s*[>\])]?\s+"
    r"(?:format|form)\b",
    re.I,
)
"""The seed's feedback: "use <city, country> format for location"."""

GAZETTEER = {
    "sf": "San Francisco, USA",
    "san francisco": "San Francisco, USA",
    "nyc": "New York, USA",
    "new york": "New York, USA",
    "la": "Los Angeles, USA",
    "los angeles": "Los Angeles, USA",
    "paris": "Paris, France",
    "london": "London, UK",
    "berlin": "Berlin, Germany",
    "oslo": "Oslo, Norway",
    "tokyo": "Tokyo, Japan",
}
"""A demo gazetteer: enough for the seed's "sf" and the README's examples, no more."""


def plan(text: str) -> list[Call]:
    """Map one request to tool calls, or none when no phrasing matches."""
    cleaned = re.sub(r"^\s*(?:<@[UW][A-Z0-9]+>\s*)+", "", text).strip()
    for pattern, build in _PHRASES:
        match = pattern.search(cleaned)
        if match:
            return build(match)
    return []


class OfflinePlanner:
    """Chat-model look-alike (``bind_tools`` + ``ainvoke``/``invoke``) that needs no network."""

    pace_seconds = 0.02
    """Between two streamed words: a person's reading pace, so the demo shows the stream."""

    def __init__(self, tools: Sequence[BaseTool] = ()) -> None:
        self._tool_names = {tool.name for tool in tools}

    def bind_tools(self, tools: Sequence[BaseTool]) -> OfflinePlanner:
        return OfflinePlanner(tools)

    async def ainvoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        return self.invoke(input, config)

    async def astream(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """The same reply, word by word (as a streaming model writes it), so the demo shows a
        streamed reply; the chunks joined are exactly :meth:`invoke`'s message."""
        message = self.invoke(input, config)
        words = re.findall(r"\S+\s*|\s+", message.text) or [""]
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield AIMessageChunk(
                content=word,
                id=message.id,
                tool_call_chunks=_tool_call_chunks(message) if last else [],
            )
            await asyncio.sleep(self.pace_seconds)

    def invoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        """The reply (pure: no I/O), for sync runs of the graph; ``ainvoke`` is the same."""
        messages = list(input)
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            return self._after_tools(messages)
        text = last.content if isinstance(last, HumanMessage) else ""
        calls = plan(str(text))
        return (
            self._propose(calls, len(messages))
            or _missing_tools(calls, messages)
            or AIMessage(content=OFFLINE_HELP)
        )

    def _propose(self, calls: list[Call], position: int) -> AIMessage | None:
        usable = [(name, args) for name, args in calls if name in self._tool_names]
        if not usable:
            return None
        return AIMessage(
            content="",
            tool_calls=[
                {
                    "name": name,
                    "args": args,
                    "id": _call_id(position, index, name, args),
                    "type": "tool_call",
                }
                for index, (name, args) in enumerate(usable)
            ],
        )

    def _after_tools(self, messages: list[BaseMessage]) -> AIMessage:
        results = _trailing_tool_messages(messages)
        feedback = [m for m in results if _is_feedback(m)]
        if feedback:
            return self._answer_feedback(feedback, messages)
        return AIMessage(content=outcome_words(results))

    def _answer_feedback(
        self, feedback: list[ToolMessage], messages: list[BaseMessage]
    ) -> AIMessage:
        proposals: list[Call] = []
        unresolved: list[ToolMessage] = []
        dismissed = [m for m in feedback if _artifact(m).get("feedback") == DISMISSED]
        if len(dismissed) == len(feedback):
            names = ", ".join(f"`{m.name}`" for m in dismissed)
            return AIMessage(
                content=f"Understood: the reviewer dismissed {names}, so I did not run it."
            )
        for message in feedback:
            if message in dismissed:
                continue
            words = _REQUESTED.sub("", str(_artifact(message).get("feedback", "")))
            original = _original_call(messages, message)
            retry = (
                _reformat(words, original)
                if _CITY_COUNTRY.search(words)
                else plan(words) or _redirect(words, original)
            )
            if retry:
                proposals.extend(retry)
            else:
                unresolved.append(message)
        if proposals and not unresolved:
            reply = self._propose(proposals, len(messages))
            if reply is not None:
                return reply
        names = ", ".join(f"`{m.name}`" for m in unresolved or feedback)
        return AIMessage(
            content=(
                f"Understood: I did not run {names}. I'm offline, so I can only act on feedback "
                'that says what to use instead (e.g. _use "San Francisco, USA"_) or is itself a '
                "request I understand. You can also use *Edit* to change the arguments directly."
            )
        )


def _tool_call_chunks(message: AIMessage) -> list[ToolCallChunk]:
    return [
        ToolCallChunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i)
        for i, call in enumerate(message.tool_calls)
    ]


def outcome_words(results: Sequence[ToolMessage]) -> str:
    """The reply after tools ran: "Done." only when every call worked; a failed call is said
    in plain words (``graph.receipts.failure_words``), never with the tool's error text."""
    failed = [m for m in results if m.status == "error"]
    lines = [f"• `{m.name}`: {_said(m)}" for m in results]
    if not failed:
        opening = "Done."
    elif len(failed) == len(results):
        opening = "That did not work." if len(results) == 1 else "None of that worked."
    else:
        opening = f"Partly done: {len(failed)} of {len(results)} calls failed."
    return opening + "\n" + "\n".join(lines)


def _said(message: ToolMessage) -> str:
    text = _result_text(message)
    return failure_words(text) if message.status == "error" else text


def _result_text(message: ToolMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = [b.get("text") for b in message.content if isinstance(b, dict)]
    return "\n".join(p for p in parts if isinstance(p, str)) or message.text


def _missing_tools(calls: list[Call], messages: list[BaseMessage]) -> AIMessage | None:
    """A request understood, for tools the agent does not have because their MCP server is
    down: say so, with what the system prompt says about unavailable servers (without such a
    note, the help text answers)."""
    if not calls:
        return None
    names = ", ".join(dict.fromkeys(f"`{name}`" for name, _ in calls))
    note = next(
        (
            str(m.content).rsplit("\n\n", 1)[-1]
            for m in messages
            if isinstance(m, SystemMessage) and "could not be reached" in str(m.content)
        ),
        None,
    )
    if note is None:
        return None
    return AIMessage(content=f"I can't do that right now: {names} is not available. {note}")


def _trailing_tool_messages(messages: list[BaseMessage]) -> list[ToolMessage]:
    trailing: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        trailing.insert(0, message)
    return trailing


def _artifact(message: ToolMessage) -> dict[str, Any]:
    return message.artifact if isinstance(message.artifact, dict) else {}


def _is_feedback(message: ToolMessage) -> bool:
    return _artifact(message).get("review_action") == "feedback"


def _original_call(messages: list[BaseMessage], answer: ToolMessage) -> Call | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call["id"] == answer.tool_call_id:
                    return call["name"], dict(call["args"])
    return None


def _redirect(words: str, original: Call | None) -> list[Call]:
    """'use X' on a one-string-argument call re-proposes it with X (the seed's feedback case)."""
    match = _REDIRECT.match(words.strip())
    if not match or original is None:
        return []
    name, args = original
    strings = [key for key, value in args.items() if isinstance(value, str)]
    if len(strings) != 1:
        return []
    return [(name, {**args, strings[0]: match.group(1).strip()})]


def _reformat(words: str, original: Call | None) -> list[Call]:
    """ "use <city, country> format": the call again with its ``city`` as the gazetteer writes
    it (a city already written so is kept); a city the gazetteer does not know stays
    unresolved, so the reply says what the planner can do instead of guessing."""
    if original is None or not isinstance(original[1].get("city"), str):
        return []
    name, args = original
    city = args["city"].strip()
    known = GAZETTEER.get(city.lower().rstrip("?.! "))
    if known is None and "," not in city:
        return []
    return [(name, {**args, "city": known or city})]


def _call_id(position: int, index: int, name: str, args: dict[str, Any]) -> str:
    digest = hashlib.sha256(
        json.dumps([position, index, name, args], sort_keys=True).encode()
    ).hexdigest()
    return f"toolu_offline_{digest[:20]}"
