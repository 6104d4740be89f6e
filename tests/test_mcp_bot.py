"""MCP tools through the real bot and the Slack sandbox (signed HTTP, real PostgreSQL), with
real MCP servers configured in the policy file: a stdio server (a subprocess per call) and a
streamable-HTTP server on a loopback port.

Reviewed by default with the server's hints on the card; approved, edited (typed fields from
the input schema, invalid edits refused inline) and given feedback; a read-only rule runs
without review and is audited ``auto_approved`` with the rule; a destructive tool needs the
configured quorum; a server down at start is named in ``/readyz`` and told to the person; a
huge result is cut for display and whole for the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ToolMessage

from bot.audit import AuditLog
from bot.config import parse_approvers
from bot.logs import RedactSecrets
from sandbox.demo import DEMO_APPROVERS, demo_policy
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)
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
def remote(log: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpServer]:
    server = HttpServer(log, "remote")
    server.start()
    monkeypatch.setenv("REMOTE_AUTH", "Bearer remote-token-123456")
    yield server
    server.kill()


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def remote_table(server: HttpServer, extra: str = "") -> str:
    return (
        "[mcp.servers.remote]\n"
        f'url = "{server.url}"\n'
        'headers = { Authorization = { from_env = "REMOTE_AUTH" } }\n'
        'timeout = "60s"\n'
        f"{extra}"
    )


async def review_in(sandbox: Sandbox, thread: str) -> dict[str, Any]:
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread), WAIT)
    return review


def said(sandbox: Sandbox, thread: str, words: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies("C0GENERAL", thread) if words in text_of(m)]


def current(sandbox: Sandbox, thread: str, ts: str) -> str:
    return text_of(next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts))


async def trail(env: SlackEnv, tool: str, thread: str) -> list[dict[str, Any]]:
    rows = await AuditLog(env.bot.service.pool).query(tool=tool)
    return [r for r in rows if r["thread_id"].endswith(thread)]


async def test_a_stdio_tool_is_reviewed_with_its_hints_and_approved(
    database_url: str, tmp_path: Path, log: Path
) -> None:
    model = ScriptedModel(
        [
            tool_calls(("tickets__create_ticket", {"title": "Printer", "priority": 2})),
            AIMessage("Filed."),
        ]
    )
    path = policy(tmp_path, stdio_table("tickets", log, extra='timeout = "60s"\n'))
    async with running_slack_env(database_url, model=model, policy_file=path) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> file a ticket")
        review = await review_in(sandbox, thread)
        shown = text_of(review)
        assert "`tickets.create_ticket`" in shown
        assert (
            "MCP server *tickets* says “Create a ticket”: changes things, not destructive, "
            "not idempotent, reaches outside systems"
        ) in shown
        assert_valid_blocks(review["blocks"])
        assert calls(log) == []

        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, thread, "Filed."), WAIT)
        assert said(sandbox, thread, "tickets: created 'Printer' (priority 2, urgent False)")
        # The result names the tool as the card did, not by the model's name for it.
        assert said(sandbox, thread, "`tickets.create_ticket` returned:")
        assert not said(sandbox, thread, "tickets__create_ticket")
        [ran] = calls(log)
        assert ran["key"] and ran["key"].startswith("toolu_")
        outcomes = [
            (r["outcome"], r["decided_by"])
            for r in await trail(env, "tickets__create_ticket", thread)
        ]
        assert outcomes == [("requested", None), ("approved", ALICE)]


async def test_an_http_tool_edited_with_typed_fields_and_bad_edits_refused_inline(
    database_url: str, tmp_path: Path, remote: HttpServer
) -> None:
    model = ScriptedModel(
        [tool_calls(("remote__create_ticket", {"title": "Door", "priority": 1})), AIMessage("ok")]
    )
    path = policy(tmp_path, remote_table(remote))
    async with running_slack_env(database_url, model=model, policy_file=path) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> file a ticket")
        review = await review_in(sandbox, thread)
        assert "`remote.create_ticket`" in text_of(review)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        elements = {
            b["block_id"]: b["element"]["type"] for b in modal["blocks"] if b["type"] == "input"
        }
        assert elements["arg:priority"] == "number_input"  # from the server's JSON schema
        assert elements["arg:title"] == "plain_text_input"

        wrong = await sandbox.submit_modal(ALICE, {"arg:priority": "1.5"})  # an integer field
        assert not wrong.closed and "valid number" in wrong.errors.get("arg:priority", "")
        blank = await sandbox.submit_modal(ALICE, {"arg:title": "   ", "arg:priority": "2"})
        assert not blank.closed and "must not be blank" in blank.errors.get("arg:title", "")
        assert calls(remote.log) == []

        done = await sandbox.submit_modal(ALICE, {"arg:title": "Back door", "arg:priority": "4"})
        assert done.closed
        await sandbox.wait_for(lambda: said(sandbox, thread, "Edited and approved by"), WAIT)
        await sandbox.wait_for(lambda: said(sandbox, thread, "ok"), WAIT)
        [ran] = calls(remote.log)
        assert ran["args"] == {"title": "Back door", "priority": 4, "urgent": False}
        assert "remote-token-123456" not in str([c.args for c in sandbox.workspace.calls])
        masked = RedactSecrets(()).redact("sent Authorization: Bearer remote-token-123456")
        assert masked == "sent Authorization: [REDACTED]"  # a header from_env, in any log line


async def test_feedback_on_an_mcp_call_runs_nothing_and_reaches_the_model(
    database_url: str, tmp_path: Path, remote: HttpServer
) -> None:
    model = ScriptedModel(
        [
            tool_calls(("remote__remove_ticket", {"ticket_id": 7})),
            AIMessage("Understood, kept it."),
        ]
    )
    path = policy(tmp_path, remote_table(remote))
    async with running_slack_env(database_url, model=model, policy_file=path) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> remove ticket 7")
        review = await review_in(sandbox, thread)
        assert "destructive" in text_of(review)
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_feedback")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        sent = await sandbox.submit_modal(BOB, {"feedback": "keep ticket 7"})
        assert sent.closed
        await sandbox.wait_for(lambda: said(sandbox, thread, "Understood, kept it."), WAIT)
        assert calls(remote.log) == []
        answer = [m for m in model.seen[-1] if isinstance(m, ToolMessage)][-1]
        assert "keep ticket 7" in str(answer.content)


async def test_read_only_auto_runs_unreviewed_audited_with_the_rule_and_review_wins(
    database_url: str, tmp_path: Path, log: Path, remote: HttpServer
) -> None:
    """``read_only = "auto"`` on both servers; the file says ``mode = "review"`` for
    ``remote.*``: the hint never lowers it."""
    model = ScriptedModel(
        [tool_calls(("tickets__lookup", {"city": "Oslo"})), AIMessage("Oslo looked up.")]
    )
    text = (
        stdio_table("tickets", log, extra='read_only = "auto"\ntimeout = "60s"\n')
        + remote_table(remote, 'read_only = "auto"\n')
        + '[tools."remote.*"]\nmode = "review"\n'
    )
    async with running_slack_env(
        database_url, model=model, policy_file=policy(tmp_path, text)
    ) as env:
        registry = env.bot.service.registry
        assert registry.policy("remote__lookup") == "review"
        assert registry.policy("remote__create_ticket") == "review"
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> look up Oslo")
        await sandbox.wait_for(lambda: said(sandbox, thread, "Oslo looked up."), WAIT)
        assert review_messages(sandbox, "C0GENERAL", thread) == []
        [row] = await trail(env, "tickets__lookup", thread)
        assert row["outcome"] == "auto_approved"
        assert '[mcp.servers.tickets] read_only = "auto"' in row["detail"]
        assert row["executed_args"] == {"city": "Oslo"}


async def test_a_destructive_tool_needs_the_configured_quorum(
    database_url: str, tmp_path: Path, remote: HttpServer
) -> None:
    model = ScriptedModel(
        [tool_calls(("remote__remove_ticket", {"ticket_id": 3})), AIMessage("Removed.")]
    )
    text = remote_table(remote, "destructive_quorum = 2\n")
    async with running_slack_env(
        database_url, model=model, policy_file=policy(tmp_path, text)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> remove ticket 3")
        review = await review_in(sandbox, thread)
        assert "0 of 2 approvals" in text_of(review)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: "1 of 2 approvals" in current(sandbox, thread, review["ts"]))
        assert calls(remote.log) == []
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, thread, "Removed."), WAIT)
        [ran] = calls(remote.log)
        assert ran["tool"] == "remove_ticket" and ran["args"] == {"ticket_id": 3}


async def test_a_server_down_at_start_is_named_in_readyz_and_told_to_the_person(
    database_url: str, tmp_path: Path
) -> None:
    """The offline planner understands "add a note ..." but the notes server never started."""
    text = '[mcp.servers.notes]\ncommand = "/no/such/mcp-server"\n'
    async with running_slack_env(database_url, policy_file=policy(tmp_path, text)) as env:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            ready = await client.get(env.bot_url.replace("/slack/events", "/readyz"))
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert body["mcp"]["notes"]["status"] == "unavailable"
        assert "No such file" in body["mcp"]["notes"]["error"]
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> add a note buy milk")
        [reply] = await sandbox.wait_for(lambda: said(sandbox, thread, "not available"), WAIT)
        assert "notes (FileNotFoundError" in text_of(reply)


async def test_a_huge_result_is_cut_for_people_and_whole_for_the_model(
    database_url: str, tmp_path: Path, remote: HttpServer
) -> None:
    model = ScriptedModel([tool_calls(("remote__big", {})), AIMessage("Read it all.")])
    text = remote_table(remote, 'read_only = "auto"\n')
    async with running_slack_env(
        database_url, model=model, policy_file=policy(tmp_path, text)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> big")
        await sandbox.wait_for(lambda: said(sandbox, thread, "Read it all."), WAIT)
        [shown] = said(sandbox, thread, "line 00000")
        assert_valid_blocks(shown["blocks"])
        assert "THE END" not in text_of(shown)
        [result] = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
        assert "THE END" in str(result.content)


async def test_the_demo_notes_server_with_the_offline_planner(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What ``./dev demo`` shows a newcomer: a start without warnings, adding a note is
    reviewed, listing runs without review, deleting needs two approvals."""
    monkeypatch.setenv("DEMO_NOTES_FILE", str(tmp_path / "notes.json"))
    path = demo_policy(tmp_path)
    approvers = parse_approvers(DEMO_APPROVERS)  # as the demo runs
    with caplog.at_level(logging.WARNING, logger="bot"):
        async with running_slack_env(database_url, policy_file=path, approvers=approvers) as routed:
            # carol may not approve: her DM review waits in #general, where alice and bob are
            sandbox = routed.sandbox
            sandbox.open_dm(CAROL)
            await sandbox.post_message(CAROL, BOT, "add a note buy milk")
            await sandbox.wait_for(
                lambda: [
                    m
                    for m in sandbox.messages("C0GENERAL")
                    if m.get("bot_id") and "`notes.add_note`" in text_of(m)
                ],
                WAIT,
            )
    warnings = [r for r in caplog.records if r.name.startswith("bot")]
    assert [r.getMessage() for r in warnings] == []
    async with running_slack_env(database_url, policy_file=path) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> add a note buy milk")
        review = await review_in(sandbox, thread)
        assert "`notes.add_note`" in text_of(review) and "“Add a note”" in text_of(review)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, thread, "Added note 1: buy milk"), WAIT)

        listing = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> list my notes")
        await sandbox.wait_for(lambda: said(sandbox, listing, "1. buy milk"), WAIT)
        assert review_messages(sandbox, "C0GENERAL", listing) == []

        deleting = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> delete note 1")
        review = await review_in(sandbox, deleting)
        assert "0 of 2 approvals" in text_of(review) and "destructive" in text_of(review)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: "1 of 2" in current(sandbox, deleting, review["ts"]))
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, deleting, "Deleted note 1."), WAIT)


def test_the_hints_line_is_escaped_valid_block_kit_and_absent_for_other_tools() -> None:
    from bot.blocks import review_blocks, review_fallback_text
    from bot.modals import edit_modal
    from graph.types import ReviewRequest
    from tests.support.block_kit import assert_valid_view

    request: ReviewRequest = {
        "question": "Is this correct?",
        "tool_call": {"name": "evil__wipe", "args": {"target": "all"}, "id": "toolu_1"},
        "tool": {
            "name": "evil__wipe",
            "description": "Wipe things.",
            "args_schema": {"properties": {"target": {"type": "string"}}, "required": ["target"]},
            "server": "evil",
            "display_name": "evil.wipe",
            "annotations": {"title": "<!channel> safe!", "readOnlyHint": False},
        },
        "requested_by": "U0CAROL",
    }
    blocks = review_blocks(request, "ref-1")
    assert_valid_blocks(blocks)
    texts = str(blocks)
    assert "`evil.wipe`" in texts and "evil__wipe" not in texts
    assert "&lt;!channel&gt; safe!" in texts and "<!channel>" not in texts
    assert "changes things" in texts
    assert review_fallback_text(request) == "Approval needed: evil.wipe"
    modal = edit_modal(request, "ref-1")
    assert_valid_view(modal)
    assert "evil.wipe" in str(modal)

    plain: ReviewRequest = {**request, "tool": {**request["tool"]}}  # type: ignore[typeddict-item]
    for key in ("server", "display_name", "annotations"):
        plain["tool"].pop(key)  # type: ignore[misc]
    assert "MCP server" not in str(review_blocks(plain, "ref-1"))
