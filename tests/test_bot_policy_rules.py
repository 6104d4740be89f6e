"""Rules on arguments end to end through Slack (the sandbox): the rule on the card and in the
audit trail, a rule's ``mode = "auto"``, failing closed, and an edit held to both rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from bot.audit import AuditLog
from bot.policy import PolicyError
from sandbox.server import Sandbox
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
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

POLICY = """\
[defaults]
approvers = ["U0ALICE", "U0BOB", "U0CAROL"]

[[tools.post_message.rules]]
name = "post to #general"
when = 'args.channel == "#general"'
four_eyes = true

[[tools.post_message.rules]]
name = "the sandbox runs freely"
when = 'args.channel == "#bot-sandbox"'
mode = "auto"

[[tools.record_note.rules]]
name = "secrets need Bob"
when = 'args.note.contains("secret")'
approvers = ["U0BOB"]
"""


async def review_in(sandbox: Sandbox, thread: str) -> dict[str, Any]:
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    return review


def current(sandbox: Sandbox, thread: str, ts: str) -> str:
    return text_of(next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts))


async def trail(env: SlackEnv, tool: str, thread: str) -> list[dict[str, Any]]:
    rows = await AuditLog(env.bot.service.pool).query(tool=tool)
    return [row for row in rows if row["thread_id"].endswith(thread)]


def env_for(database_url: str, tmp_path: Path, calls: Sequence[Any]) -> Any:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    model = ScriptedModel([*calls, AIMessage(content="done")])
    return running_slack_env(database_url, model=model, registry=registry_with(), policy_file=path)


async def test_the_matched_rule_is_on_the_card_and_in_the_audit(
    database_url: str, tmp_path: Path
) -> None:
    calls = [tool_calls(("post_message", {"channel": "#general", "text": "hi all"}))]
    async with env_for(database_url, tmp_path, calls) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> say hi in #general")
        review = await review_in(sandbox, thread)
        assert "Policy: post to #general (rule 1)" in current(sandbox, thread, review["ts"])
        # The rule's four-eyes holds: Carol asked, so Carol may not approve.
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL))
        assert "four-eyes" in refusal["text"]
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "done")
        events = await trail(env, "post_message", thread)
        assert [(e["outcome"], e["detail"]) for e in events] == [
            ("requested", "post to #general (rule 1)"),
            ("refused", "four-eyes"),
            ("approved", None),
        ]


async def test_a_rules_auto_mode_runs_the_call_without_a_person(
    database_url: str, tmp_path: Path
) -> None:
    calls = [tool_calls(("post_message", {"channel": "#bot-sandbox", "text": "testing"}))]
    async with env_for(database_url, tmp_path, calls) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> test in the sandbox")
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "done")
        assert sandbox.calls_of("chat.postMessage")[0].args.get("text") == "testing"
        assert not review_messages(sandbox, "C0GENERAL", thread)
        [event] = await trail(env, "post_message", thread)
        assert event["outcome"] == "auto_approved"
        assert event["detail"] == "policy rule: the sandbox runs freely (rule 2)"
        assert event["requested_by"] == CAROL


async def test_a_condition_failing_at_run_time_fails_closed_and_says_so(
    database_url: str, tmp_path: Path
) -> None:
    # No channel argument: the conditions cannot be evaluated, so the strictest policy applies.
    calls = [tool_calls(("post_message", {"text": "where?"}))]
    async with env_for(database_url, tmp_path, calls) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> post something")
        review = await review_in(sandbox, thread)
        shown = current(sandbox, thread, review["ts"])
        assert ":warning: Policy: strictest of every rule (failed closed: post to #general" in (
            shown
        )
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL))
        assert "four-eyes" in refusal["text"]  # four-eyes on, as the strictest policy says
        [requested, _] = await trail(env, "post_message", thread)
        assert requested["outcome"] == "requested"
        assert (
            "failed closed" in requested["detail"]
            and "no argument or key 'channel'" in (requested["detail"])
        )


async def test_an_edit_into_a_stricter_rule_needs_its_approvers(
    database_url: str, tmp_path: Path
) -> None:
    RUNS.clear()
    calls = [tool_calls(("record_note", {"note": "lunch at noon"}))]
    async with env_for(database_url, tmp_path, calls) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note lunch")
        review = await review_in(sandbox, thread)
        assert "Policy: the tool's defaults (no rule matched)" in current(
            sandbox, thread, review["ts"]
        )
        # Alice may approve the proposal, but not edit it into a call only Bob may approve.
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        refused = await sandbox.submit_modal(ALICE, {"arg:note": "the secret plan"})
        assert not refused.closed, refused
        assert refused.errors["arg:note"].startswith(
            "Only someone who is one of @alice, @bob, @carol and one of @bob may decide"
        )
        await sandbox.close_modal(ALICE)
        assert RUNS == []
        # Bob is allowed under both: his edit runs.
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        assert (await sandbox.submit_modal(BOB, {"arg:note": "the secret plan"})).closed
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "done")
        assert RUNS == ["the secret plan"]
        outcomes = [e["outcome"] for e in await trail(env, "record_note", thread)]
        assert outcomes == ["requested", "refused", "edited"]


async def test_the_running_bot_type_checks_rules_against_its_tools(
    database_url: str, tmp_path: Path
) -> None:
    """The agent's tools (here one the CLI would not know: record_note) give the schemas,
    across the seam; a typo stops the start naming the file and line."""
    path = tmp_path / "policy.toml"
    path.write_text("[[tools.record_note.rules]]\nquorum = 2\nwhen = 'args.nota == \"x\"'\n")
    with pytest.raises(PolicyError) as error:
        async with running_slack_env(database_url, registry=registry_with(), policy_file=path):
            pass
    assert f"{path}, line 3: the arguments of record_note have no 'nota' (known: note)" in str(
        error.value
    )
