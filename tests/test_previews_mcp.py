"""An MCP tool's preview: a read-only companion tool named in the tool's ``_meta``, asked of a
real MCP server (``tests/support/mcp_servers.py``) before anyone decides, never offered to
the model, never run as the call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import StructuredTool

from graph import AgentContext, AgentSettings
from graph.previews import MCP_PREVIEW_KEY
from graph.runtime import configured_registry
from graph.tools.mcp import McpServerSpec
from graph.tools.mcp_previews import split_companions
from tests.support import mcp_servers
from tests.support.block_kit import assert_valid_blocks
from tests.support.bot_harness import ALICE, BOT, CAROL, review_messages, running_slack_env, text_of
from tests.support.mcp_servers import HttpServer, calls, environment, stdio_table
from tests.support.scripted_model import ScriptedModel, tool_calls

WAIT = 60.0  # a stdio server is a fresh Python process per call on a busy machine


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.jsonl"
    for name, value in environment(path, "tickets").items():
        monkeypatch.setenv(name, value)
    return path


@pytest.fixture
def remote(log: Path) -> Iterator[HttpServer]:
    server = HttpServer(log, "remote")
    server.start()
    yield server
    server.kill()


def test_the_test_server_spells_the_key_as_the_agent_does() -> None:
    assert mcp_servers.MCP_PREVIEW_KEY == MCP_PREVIEW_KEY


def _tool(name: str, meta: dict[str, Any] | None = None, read_only: bool = False) -> Any:
    metadata: dict[str, Any] = {"readOnlyHint": read_only}
    if meta is not None:
        metadata["_meta"] = meta
    return StructuredTool.from_function(
        func=lambda: "x", name=name, description=name, metadata=metadata
    )


def test_only_a_read_only_companion_is_a_preview_and_it_is_hidden_from_the_model() -> None:
    tools = [
        _tool("make", {MCP_PREVIEW_KEY: "preview_make"}),
        _tool("preview_make", read_only=True),
        _tool("drop", {MCP_PREVIEW_KEY: "preview_drop"}),
        _tool("preview_drop"),  # not read-only: not trusted to be free of side effects
        _tool("lost", {MCP_PREVIEW_KEY: "missing"}),
    ]
    offered, companions = split_companions(tools, "srv")
    assert companions == {"make": "preview_make"}
    assert [t.name for t in offered] == ["make", "drop", "preview_drop", "lost"]


async def test_an_mcp_preview_is_asked_of_its_companion_and_shown_on_the_card(
    database_url: str, tmp_path: Path, log: Path, remote: HttpServer
) -> None:
    table = stdio_table("tickets", log, extra='timeout = "60s"\n')
    registry = await configured_registry(AgentSettings(mcp_servers=(_spec(table, tmp_path),)))
    assert "tickets__create_ticket" in registry.names
    assert "tickets__preview_create_ticket" not in registry.names  # never offered
    assert registry.info("tickets__create_ticket").get("preview") is True
    direct = registry.preview("tickets__create_ticket")
    assert direct is not None
    said = await direct({"title": "Printer", "priority": 2}, AgentContext())
    assert said.summary == "tickets would file &lt;Printer&gt; in queue P2"

    # On the card: over HTTP, where a call needs no new process (a stdio server starts one per
    # call, which a busy machine may not do within the preview's 2 s).
    model = ScriptedModel(
        [
            tool_calls(("remote__create_ticket", {"title": "Printer", "priority": 2})),
            AIMessage("Filed."),
        ]
    )
    path = tmp_path / "policy.toml"
    path.write_text(f'[mcp.servers.remote]\nurl = "{remote.url}"\ntimeout = "60s"\n')
    async with running_slack_env(database_url, model=model, policy_file=path) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> file a ticket")
        [review] = await sandbox.wait_for(
            lambda: review_messages(sandbox, "C0GENERAL", thread), WAIT
        )

        def shown() -> dict[str, Any] | None:
            [card] = [m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == review["ts"]]
            return card if "Preview:" in text_of(card) else None

        card = await sandbox.wait_for(shown, WAIT)
        assert_valid_blocks(card["blocks"])
        assert "remote would file &lt;Printer&gt; in queue P2" in text_of(card)
        assert "Tickets open in queue P2: 3" in text_of(card)
        assert calls(log) == []  # the preview is not the call
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Filed." in text_of(m)],
            WAIT,
        )
        assert [c["tool"] for c in calls(log)] == ["create_ticket"]


def _spec(table: str, tmp_path: Path) -> McpServerSpec:
    """The server of a ``[mcp.servers.tickets]`` table, as the policy file resolves it."""
    from bot.policy import parse_policy

    policy = parse_policy(table, str(tmp_path / "p.toml"))
    [spec] = policy.mcp_servers
    return spec
