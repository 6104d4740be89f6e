"""Consent end to end through Slack (sandbox, signed HTTP, real PostgreSQL): the policy file can
force review, four-eyes follows everyone whose words led to a call, a NUL character in a
proposal does not wedge the thread, and a blank required field is refused in the Edit form."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, ToolMessage

from bot.audit import AuditLog
from graph.tools.registry import ToolEntry, ToolRegistry, builtin_entries
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, record_note
from tests.support.scripted_model import ScriptedModel, tool_calls


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_the_policy_file_forces_review_over_a_modules_auto(
    database_url: str, tmp_path: Path
) -> None:
    """Regression: ``mode = "review"`` in the file did not stop a tool that its module marked
    ``REVIEW_POLICY = {"record_note": "auto"}``: the call ran with nobody asked."""
    RUNS.clear()
    registry = ToolRegistry(
        [*builtin_entries(), ToolEntry(record_note, "auto", "notes_module.REVIEW_POLICY")]
    )
    model = ScriptedModel(
        [tool_calls(("record_note", {"note": "ship it"})), AIMessage(content="Noted.")]
    )
    policy = policy_file(tmp_path, '[tools.record_note]\nmode = "review"\n')
    async with running_slack_env(
        database_url, model=model, registry=registry, policy_file=policy
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        assert "record_note" in text_of(review)
        assert RUNS == []
        assert env.bot.service.registry.auto_rule("record_note") is None
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "Noted.")
        assert RUNS == ["ship it"]


async def test_four_eyes_refuses_everyone_whose_words_led_to_the_call(
    database_url: str, tmp_path: Path
) -> None:
    """Regression: Alice asks, the model asks back, Carol answers "yes" in the thread, the model
    proposes the post. The requester used to be Carol alone, so Alice could approve her own
    request under four-eyes. Now neither may; Bob, who said nothing, can."""
    model = ScriptedModel(
        [
            AIMessage(content="Shall I post 'launch at 5' to #random?"),
            tool_calls(("post_message", {"channel": "#random", "text": "launch at 5"})),
            AIMessage(content="Posted."),
        ]
    )
    policy = policy_file(tmp_path, "[tools.post_message]\nfour_eyes = true\n")
    async with running_slack_env(database_url, model=model, policy_file=policy) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(
            ALICE, "#general", f"<@{BOT}> post 'launch at 5' to #random"
        )
        await sandbox.wait_for(
            lambda: any("Shall I post" in text_of(m) for m in sandbox.replies("C0GENERAL", thread))
        )
        await sandbox.post_message(CAROL, "#general", "yes", thread_ts=thread)
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))

        for asker in (ALICE, CAROL):
            await sandbox.click_button(asker, "C0GENERAL", review["ts"], "review_approve")
            [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(asker))  # noqa: B023
            assert "four-eyes" in refusal["text"]
        assert not [
            c for c in sandbox.calls_of("chat.postMessage") if c.args.get("text") == "launch at 5"
        ]

        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        posted = await sandbox.wait_for_call(
            "chat.postMessage", lambda c: c.args.get("text") == "launch at 5"
        )
        assert posted.args["channel"] in ("#random", "C0RANDOM")
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "Posted.")
        trail = [
            row
            for row in await AuditLog(env.bot.service.pool).query(tool="post_message")
            if row["thread_id"].endswith(thread)
        ]
        assert [(r["outcome"], r["decided_by"]) for r in trail][:3] == [
            ("requested", None),
            ("refused", ALICE),
            ("refused", CAROL),
        ]
        assert trail[0]["requested_by"] == CAROL  # who started the turn that proposed it


async def test_a_nul_character_in_a_proposal_is_refused_and_the_thread_goes_on(
    database_url: str,
) -> None:
    """Regression: a NUL character in proposed arguments could not be stored with the review;
    the thread was wedged, every later message told to decide a review never posted."""
    model = ScriptedModel(
        [
            tool_calls(("post_message", {"channel": "#random", "text": "hi\x00there"})),
            AIMessage(content="That text had a stray character; I did not post it."),
            AIMessage(content="Still here."),
        ]
    )
    async with running_slack_env(database_url, model=model) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> post hi there")
        await sandbox.wait_for(
            lambda: any(
                "stray character" in text_of(m) for m in sandbox.replies("C0GENERAL", thread)
            )
        )
        errors = [m for m in model.seen[1] if isinstance(m, ToolMessage)]
        assert [m.status for m in errors] == ["error"]
        assert "`text` contains a NUL character" in str(errors[0].content)

        await sandbox.post_message(ALICE, "#general", "are you there?", thread_ts=thread)
        await sandbox.wait_for(
            lambda: any("Still here." in text_of(m) for m in sandbox.replies("C0GENERAL", thread))
        )
        assert not review_messages(sandbox, "C0GENERAL", thread)
        assert not [
            c for c in sandbox.calls_of("chat.postMessage") if c.args.get("channel") == "#random"
        ]


async def test_the_edit_form_refuses_a_blank_required_field(database_url: str) -> None:
    """Regression: a city of "   " was accepted by the Edit form and the tool ran with it."""
    async with running_slack_env(database_url) as env:  # the offline planner proposes the call
        sandbox = env.sandbox
        thread = await sandbox.post_message(
            ALICE, "#general", f"<@{BOT}> what's the weather in sf?"
        )
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))

        blank = await sandbox.submit_modal(ALICE, {"arg:city": "   "})
        assert not blank.closed
        assert "must not be blank" in blank.errors.get("arg:city", str(blank))

        done = await sandbox.submit_modal(ALICE, {"arg:city": "Paris"})
        assert done.closed
        await sandbox.wait_for(
            lambda: any(
                "Edited and approved by" in text_of(m) for m in sandbox.replies("C0GENERAL", thread)
            )
        )
