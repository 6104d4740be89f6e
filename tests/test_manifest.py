"""manifest.yml asks for exactly what the code uses: the events its listeners handle and the
scopes of the Web API methods it calls."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from bot.listeners import register_all

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())

# What Slack requires for each event the code listens to, and for each method it calls.
EVENT_SUBSCRIPTIONS = {
    "app_home_opened": {"app_home_opened"},
    "app_mention": {"app_mention"},
    "message": {"message.channels", "message.groups", "message.im"},
    "assistant_thread_started": {"assistant_thread_started"},
    "assistant_thread_context_changed": {"assistant_thread_context_changed"},
}
EVENT_SCOPES = {
    "app_home_opened": set(),
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "assistant_thread_started": {"assistant:write"},
    "assistant_thread_context_changed": {"assistant:write"},
}
COMMAND_SCOPES = {"commands"}  # any slash command
METHOD_SCOPES = {
    "chat.postMessage": {"chat:write", "chat:write.public"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history", "mpim:history"},
    "conversations.info": {"channels:read", "groups:read", "im:read"},
    "conversations.members": {"channels:read", "groups:read", "im:read", "mpim:read"},
    "auth.test": set(),
    "chat.update": {"chat:write"},
    # streamed replies (bot.streaming); Slack's reference pages name chat:write for each
    "chat.startStream": {"chat:write"},
    "chat.appendStream": {"chat:write"},
    "chat.stopStream": {"chat:write"},
    "assistant.threads.setStatus": {"chat:write"},
    "agents.sessions.setStatus": {"chat:write"},  # the session lifecycle (bot.status)
    "assistant.threads.setSuggestedPrompts": {
        "assistant:write"
    },  # chat:write since 2026-03 (changelog)
    "chat.postEphemeral": {"chat:write"},
    "chat.getPermalink": set(),  # routed reviews' links, a receipt's link; no scope needed
    "reactions.add": {"reactions:write"},
    "reactions.remove": {"reactions:write"},
    "views.open": set(),
    "views.publish": set(),
    "conversations.create": {"channels:manage", "groups:write"},
    "conversations.setTopic": {"channels:manage", "groups:write"},
    "conversations.invite": {"channels:manage", "groups:write"},
    "conversations.list": {"channels:read", "groups:read"},
    "usergroups.users.list": {"usergroups:read"},
    "usergroups.list": {"usergroups:read"},
    "users.info": {"users:read"},
}


class SpyApp:
    """Records what each listener group registers, without building a Bolt app."""

    def __init__(self) -> None:
        self.events: set[str] = set()
        self.actions: set[str] = set()
        self.views: set[str] = set()
        self.commands: set[str] = set()

    def _record(self, into: set[str], name: str) -> Callable[[Any], Any]:
        into.add(name)
        return lambda function: function

    def event(self, name: str, **_: Any) -> Callable[[Any], Any]:
        return self._record(self.events, name)

    def action(self, name: str) -> Callable[[Any], Any]:
        return self._record(self.actions, name)

    def view(self, name: str) -> Callable[[Any], Any]:
        return self._record(self.views, name)

    def command(self, name: str) -> Callable[[Any], Any]:
        return self._record(self.commands, name)


def registered() -> SpyApp:
    spy = SpyApp()
    parts = SimpleNamespace(turns=None, clicks=None, lister=None, standing=None)  # none read
    register_all(spy, parts)  # type: ignore[arg-type]
    return spy


def methods_called() -> set[str]:
    """Web API methods named in the code: SDK calls (chat_postMessage) and api_call strings."""
    found: set[str] = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("graph/**/*.py")]:
        source = path.read_text()
        for snake in re.findall(r"client\.(?!api_call)([a-z]+_[a-zA-Z_]+)\(", source):
            family, _, rest = snake.partition("_")
            found.add(f"{family}.{rest.replace('_', '.')}")
        found.update(re.findall(r'_call\(\s*[^,]+,\s*"([a-z]+\.[a-zA-Z.]+)"', source))
    return found


def test_events_match_the_registered_listeners() -> None:
    spy = registered()
    expected = set().union(*(EVENT_SUBSCRIPTIONS[name] for name in spy.events))
    assert set(MANIFEST["settings"]["event_subscriptions"]["bot_events"]) == expected
    assert spy.actions == {
        "review_approve",
        "review_edit",
        "review_feedback",
        "review_grant",
        "grant_revoke",
    }
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True


def test_scopes_are_exactly_those_the_code_needs() -> None:
    methods = methods_called()
    unknown = methods - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes of {unknown} to METHOD_SCOPES and manifest.yml"
    needed = set().union(*(METHOD_SCOPES[m] for m in methods))
    needed |= set().union(
        *(EVENT_SCOPES[e] for e in MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    )
    if registered().commands:
        needed |= COMMAND_SCOPES
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == needed


def test_socket_mode_and_dm_tab_are_on() -> None:
    assert MANIFEST["settings"]["socket_mode_enabled"] is True
    assert MANIFEST["features"]["app_home"]["messages_tab_enabled"] is True
    assert MANIFEST["features"]["bot_user"]["display_name"]


def test_slash_commands_match_the_registered_ones() -> None:
    declared = MANIFEST["features"].get("slash_commands") or []
    assert {c["command"] for c in declared} == registered().commands == {"/approvals"}
    for command in declared:
        assert "url" not in command, "Socket Mode: Slack delivers commands over the socket"
        assert command["description"]


def test_home_tab_is_on_exactly_when_app_home_opened_is_handled() -> None:
    handles_home = "app_home_opened" in registered().events
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is handles_home is True


def test_the_agent_view_says_what_the_code_says() -> None:
    from bot.assistant_view import ASSISTANT_DESCRIPTION, SUGGESTED_PROMPTS

    assert "assistant_view" not in MANIFEST["features"]  # retired by Slack: agent_view instead
    view = MANIFEST["features"]["agent_view"]
    assert view["agent_description"] == ASSISTANT_DESCRIPTION
    assert view["suggested_prompts"] == [dict(p) for p in SUGGESTED_PROMPTS]
    assert 0 < len(SUGGESTED_PROMPTS) <= 4  # Slack's limit
