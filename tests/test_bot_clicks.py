"""What a click does (``bot.review.clicks``), called on the running bot's own ``Clicks`` with
reviews of the real store: the sentences a clicker is told, the metrics a click counts, and the
paths the sandbox's buttons rarely take (a review gone, a review that lapsed between being
read and being claimed). The bot is the real one behind the Slack sandbox, on PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.audit import AuditLog
from bot.failures import BROKEN
from bot.grants import GrantTerms
from bot.metrics import REGISTRY
from bot.review.binding import proposal_digest
from bot.review.clicks import CHANGED, ELSEWHERE, FOUR_EYES, UNKNOWN, stale_words
from bot.review.effects import Click
from bot.store import ReviewRow
from graph import Approve, Edit
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    eventually,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)

POLICY = """\
[tools.invite_users]
quorum = 2
grants = { max_duration = "1h", max_uses = 1 }

[tools.weather_search]
four_eyes = true

[tools.post_message]
redact = ["text"]

[tools.create_channel]
grants = { max_duration = "1h", max_uses = 2 }

[[tools.set_channel_topic.rules]]
name = "secret topics need Carol"
when = 'args.topic == "secret"'
approvers = ["U0CAROL"]

[[tools.set_channel_topic.rules]]
name = "a launch-day topic needs two"
when = 'args.topic == "launch-day"'
quorum = 2
"""
"""For the demo model and tools: invitations need two approvals (and may be approved with a
standing approval), the weather another's eyes than its requester's, a post's text is
redacted, a new channel may be approved with a standing approval, a secret topic needs Carol's
approval and a launch-day topic two approvals."""


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[SlackEnv]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    async with running_slack_env(database_url, policy_file=policy) as slack_env:
        yield slack_env


def decisions(action: str, result: str) -> float:
    """``approval_bot_decisions_total`` for one action and result (0 before the first)."""
    value = REGISTRY.get_sample_value(
        "approval_bot_decisions_total", {"action": action, "result": result}
    )
    return value or 0.0


async def open_review(sandbox: Sandbox, text: str = "what's the weather in sf?") -> str:
    """A pending review asked for by Alice in #general; its ref."""
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {text}")
    [card] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    return review_ref(card)


async def read(env: SlackEnv, ref: str) -> ReviewRow:
    row = await env.bot.flow.store.get(ref)
    assert row is not None
    return row


def told(env: SlackEnv, user: str) -> list[str]:
    """What ``user`` was told privately, oldest first."""
    return [str(note["text"]) for note in env.sandbox.ephemerals(user)]


INVITE = f"invite <@{CAROL}> to #general"


async def lapse_now(env: SlackEnv, ref: str) -> None:
    """Let a review's time run out now (the database's clock decides, as the claim does)."""
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )


def test_a_review_that_is_gone_was_decided_by_someone() -> None:
    assert stale_words(None) == "This review was already decided by someone."


async def test_a_modal_error_names_people_by_their_slack_names(env: SlackEnv) -> None:
    clicks = env.bot.flow.clicks
    assert await clicks.plain(f"Only <@{BOB}> may decide") == "Only @bob may decide"


async def test_a_review_lapsed_after_it_was_read_is_refused_counted_and_expired_at_once(
    env: SlackEnv,
) -> None:
    """The claim finds the review expired (it was read in time): the refusal is counted as
    ``expired`` once, and the review is expired before ``decide`` returns (not later)."""
    store, clicks = env.bot.flow.store, env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    review = await store.get(ref)
    assert review is not None
    await lapse_now(env, ref)
    before = decisions("continue", "expired"), decisions("continue", "rejected")
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB), review)
    assert (decisions("continue", "expired"), decisions("continue", "rejected")) == (
        before[0] + 1,
        before[1],
    )
    row = await store.get(ref)
    assert row is not None and row.status == "decided" and row.action == "expired"
    [note] = told(env, BOB)
    assert note.startswith("This review expired at")
    events = await AuditLog(env.bot.service.pool).query(outcome="refused")
    assert [(e["decided_by"], e["detail"]) for e in events if e["thread_id"] == row.thread_id] == [
        (BOB, "expired")
    ]


@pytest.mark.parametrize(
    ("decision", "metric"),
    [
        (Edit({"channel": "C0GENERAL", "users": [BOB]}, BOB), "update"),
        (Approve(BOB), "continue"),
    ],
    ids=["edit", "approval"],
)
async def test_a_quorum_decision_lapsed_after_it_was_read_is_refused_at_once(
    env: SlackEnv, decision: Edit | Approve, metric: str
) -> None:
    """With a quorum an edit is first proposed and an approval first counted as a vote: either
    finds the review expired, is counted ``expired`` under its own metric, and leaves neither a
    proposed edit nor a vote behind."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, INVITE)
    review = await read(env, ref)
    await lapse_now(env, ref)
    before = decisions(metric, "expired")
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), decision, review)
    assert decisions(metric, "expired") == before + 1
    [note] = told(env, BOB)
    assert note.startswith("This review expired at")
    row = await read(env, ref)
    assert row.status == "decided" and row.action == "expired" and row.proposed_edit is None
    assert await env.bot.flow.store.approvals(ref, row.version) == []


async def test_a_vote_short_of_the_quorum_is_stored_audited_and_counted(env: SlackEnv) -> None:
    """Each vote is stored and audited with the digest of what it approved, and counted."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, INVITE)
    review = await read(env, ref)
    counted = decisions("continue", "approval_recorded")
    await clicks.decide(Click(ALICE, ref, "C0GENERAL"), Approve(ALICE), review)
    async with env.bot.service.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT user_id, args_digest FROM slack_review_approvals WHERE ref = %s", (ref,)
            )
        ).fetchall()
    assert [(r["user_id"], r["args_digest"]) for r in rows] == [(ALICE, proposal_digest(review))]
    assert told(env, ALICE) == ["Your approval is recorded: 1 of 2."]
    assert decisions("continue", "approval_recorded") == counted + 1
    events = await AuditLog(env.bot.service.pool).query(outcome="approval_recorded")
    [event] = [e for e in events if e["thread_id"] == review.thread_id]
    assert (event["decided_by"], event["detail"], event["args_digest"]) == (
        ALICE,
        "1 of 2",
        proposal_digest(review),
    )
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


async def test_a_click_on_a_card_behind_an_edit_is_told_the_review_changed(
    env: SlackEnv,
) -> None:
    """Alice's edit is the new proposal; Bob's edit or approval of the card he read before it
    records nothing, and he is told to look again (not that the review was decided)."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, INVITE)
    review = await read(env, ref)
    invite_bob = {"channel": "C0GENERAL", "users": [BOB]}
    await clicks.decide(Click(ALICE, ref, "C0GENERAL"), Edit(invite_bob, ALICE), review)
    edited = await read(env, ref)
    assert edited.version == review.version + 1 and edited.proposed_edit == invite_bob

    invite_carol = {"channel": "C0GENERAL", "users": [CAROL]}
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Edit(invite_carol, BOB), review)
    assert told(env, BOB) == [CHANGED]
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL), review)
    assert told(env, CAROL) == [CHANGED]
    now = await read(env, ref)
    assert now.status == "pending" and now.proposed_edit == invite_bob
    assert await env.bot.flow.store.approvals(ref, now.version) == [ALICE]
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))  # leave it decided


async def test_an_approval_after_the_quorum_was_reached_is_told_who_decided(
    env: SlackEnv,
) -> None:
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, INVITE)
    review = await read(env, ref)
    for user in (ALICE, CAROL):
        await clicks.decide(Click(user, ref, "C0GENERAL"), Approve(user), review)
    assert (await read(env, ref)).status == "decided"
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB), review)
    [note] = told(env, BOB)
    assert note.startswith(f"This review was already approved by <@{CAROL}>")


async def open_form(env: SlackEnv, text: str, button: str) -> tuple[str, str]:
    """Alice asks for a call and opens its Edit or Feedback form: the thread and the ref."""
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {text}")
    [card] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    await sandbox.click_button(ALICE, "C0GENERAL", card["ts"], button)
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    return thread, review_ref(card)


async def test_a_requester_held_to_four_eyes_may_still_send_feedback(env: SlackEnv) -> None:
    sandbox = env.sandbox
    await open_form(env, "what's the weather in Oslo?", "review_feedback")
    sent = await sandbox.submit_modal(ALICE, {"feedback": "use Paris"})
    assert sent.closed, sent.errors
    assert not told(env, ALICE)


async def test_an_edit_is_held_to_the_rule_of_the_edited_arguments(env: SlackEnv) -> None:
    """Anyone may set a topic, only Carol a secret one: Alice's edit to it is refused under
    the form's input, in plain words, and nothing runs."""
    sandbox = env.sandbox
    await open_form(env, "set the topic of #general to 'launch'", "review_edit")
    refused = await sandbox.submit_modal(ALICE, {"arg:topic": "secret"})
    assert not refused.closed
    assert list(refused.errors.values()) == [
        "Only @carol may decide set_channel_topic calls, so I did nothing. "
        "Ask one of them to take a look."
    ]
    assert not sandbox.calls_of("conversations.setTopic")


async def test_an_edit_keeps_a_redacted_argument_nobody_replaced(env: SlackEnv) -> None:
    """The redacted text has no input; the edit runs it as proposed, as Alice's edit."""
    sandbox = env.sandbox
    _, ref = await open_form(env, "post 'the launch code' to #general", "review_edit")
    done = await sandbox.submit_modal(ALICE, {"arg:channel": "#random"})
    assert done.closed, done.errors
    posted = await sandbox.wait_for_call(
        "chat.postMessage", lambda call: call.args.get("channel") == "#random"
    )
    assert posted.args["text"] == "the launch code"
    row = await read(env, ref)
    assert (row.action, row.decided_by) == ("update", ALICE)


async def test_the_agents_refusal_of_a_redacted_argument_is_shown_under_a_visible_input(
    env: SlackEnv,
) -> None:
    """The model proposed a blank (redacted) text; the agent refuses any edit keeping it, and
    the refusal goes under the first input the form has (the text has none)."""
    sandbox = env.sandbox
    await open_form(env, "post ' ' to #general", "review_edit")
    refused = await sandbox.submit_modal(ALICE, {"arg:channel": "#random"})
    assert not refused.closed
    assert refused.errors == {"arg:channel": "text: must not be blank"}
    assert not [c for c in sandbox.calls_of("chat.postMessage") if c.args["channel"] == "#random"]


@pytest.fixture
async def broken_ref(env: SlackEnv) -> AsyncIterator[str]:
    """A review whose stored request has no arguments (as a row another version wrote might
    not): reading its policy raises. Deleted afterwards, so no other bot's sweeper finds it."""
    request: Any = {"question": "?", "tool_call": {"name": "record_note", "id": "call-1"}}
    store = env.bot.flow.store
    ref = await store.add_review(
        f"broken-{uuid.uuid4().hex}", "int-1", "T0SANDBOX", "C0GENERAL", "1.0", request
    )
    assert ref is not None
    try:
        yield ref
    finally:
        async with store.pool.connection() as conn:
            await conn.execute("DELETE FROM slack_reviews WHERE ref = %s", (ref,))


async def test_a_submission_that_cannot_be_checked_is_logged_and_answered(
    env: SlackEnv, broken_ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    checked = await env.bot.flow.clicks.check_submission(
        Click(ALICE, broken_ref, "C0GENERAL"), "feedback", {}, "feedback"
    )
    assert checked == {"feedback": BROKEN}
    [logged] = [r for r in caplog.records if r.name == "bot.review.clicks"]
    assert logged.getMessage() == f"checking a feedback submission for {broken_ref} failed"
    assert logged.exc_info is not None


async def test_a_click_that_cannot_be_handled_is_logged_and_told(
    env: SlackEnv, broken_ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    clicks = env.bot.flow.clicks
    await clicks.open_modal(Click(ALICE, broken_ref, "C0GENERAL"), "trigger", "edit")
    await clicks.decide(Click(BOB, broken_ref, "C0GENERAL"), Approve(BOB))
    logged = [r for r in caplog.records if r.name == "bot.review.clicks"]
    assert [r.getMessage() for r in logged] == [
        f"opening the edit modal for {broken_ref} failed",
        f"deciding approve on {broken_ref} failed",
    ]
    assert all(r.exc_info is not None for r in logged)
    assert told(env, ALICE) == told(env, BOB) == [BROKEN]


async def test_an_edit_form_opened_after_an_edit_is_bound_to_the_new_proposal(
    env: SlackEnv,
) -> None:
    """Alice's edit is the proposal (version 1); Bob's form, opened after it, is bound to
    that version: his edit is taken (the proposal's version 2, his approval its first),
    not refused as made on an earlier proposal."""
    sandbox, clicks = env.sandbox, env.bot.flow.clicks
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {INVITE}")
    [card] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    ref = review_ref(card)
    invite_bob = {"channel": "#general", "users": [BOB]}
    await clicks.decide(Click(ALICE, ref, "C0GENERAL"), Edit(invite_bob, ALICE))
    assert (await read(env, ref)).version == 1
    await sandbox.click_button(BOB, "C0GENERAL", card["ts"], "review_edit")
    await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
    done = await sandbox.submit_modal(BOB, {"arg:users": [BOB, CAROL]})
    assert done.closed, done.errors
    # the form is acknowledged first; the edit, then its editor's vote, are stored after it
    assert await eventually(lambda: env.bot.flow.store.approvals(ref, 2), within=15) == [BOB]
    row = await read(env, ref)
    assert row.version == 2 and row.proposed_edit == {"channel": "#general", "users": [BOB, CAROL]}
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


async def test_an_approval_offering_a_standing_approval_creates_it(env: SlackEnv) -> None:
    """The channel's name is this test's own, so the grant matches no other test's call."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, f"create channel called c-{uuid.uuid4().hex[:8]}")
    terms = GrantTerms(seconds=60, uses=1, scope=frozenset({"name"}))
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB), offer=terms)
    async with env.bot.service.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT created_by, max_uses FROM standing_grants WHERE source_ref = %s", (ref,)
            )
        ).fetchall()
    assert [(r["created_by"], r["max_uses"]) for r in rows] == [([BOB], 1)]


async def test_the_agents_refusal_of_an_argument_is_shown_under_that_arguments_input(
    env: SlackEnv,
) -> None:
    """A blank topic passes the form (it has text) but not the agent's check: the refusal goes
    under the topic's input, not the form's first (the channel's)."""
    sandbox = env.sandbox
    await open_form(env, "set the topic of #general to 'launch'", "review_edit")
    refused = await sandbox.submit_modal(ALICE, {"arg:topic": "   "})
    assert not refused.closed
    assert refused.errors == {"arg:topic": "topic: must not be blank"}
    assert not sandbox.calls_of("conversations.setTopic")


async def test_a_form_refused_at_opening_is_not_opened_and_its_refusal_is_told(
    env: SlackEnv,
) -> None:
    """Alice asked for the weather, which needs another's eyes: her Edit opens no form, and
    she is told why (once)."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    opened = len(env.sandbox.calls_of("views.open"))
    await clicks.open_modal(Click(ALICE, ref, "C0GENERAL"), "trigger", "edit")
    assert told(env, ALICE) == [FOUR_EYES]
    assert len(env.sandbox.calls_of("views.open")) == opened


async def test_an_edit_that_reaches_its_quorum_is_recorded_as_its_last_approvers(
    env: SlackEnv,
) -> None:
    """Alice's edit is the proposal and her vote; Bob's approval completes the quorum. The
    edit runs, and the row, the audit trail and the decided card name Bob as who decided it
    (the proposer stays on the row as ``proposed_by``)."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, INVITE)
    invite_bob = {"channel": "C0GENERAL", "users": [BOB]}
    await clicks.decide(Click(ALICE, ref, "C0GENERAL"), Edit(invite_bob, ALICE))
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    row = await read(env, ref)
    assert (row.status, row.action, row.decided_by, row.proposed_by) == (
        "decided",
        "update",
        BOB,
        ALICE,
    )
    events = await AuditLog(env.bot.service.pool).query(tool="invite_users")
    assert [
        (e["outcome"], e["decided_by"], e["detail"])
        for e in events
        if e["thread_id"] == row.thread_id
    ] == [
        ("requested", None, None),
        ("approval_recorded", ALICE, "1 of 2"),
        ("edited", BOB, f"{ALICE}, {BOB}"),
    ]
    [card] = [
        m for m in env.sandbox.replies("C0GENERAL", row.thread_ts) if m["ts"] == row.message_ts
    ]
    assert f"Edited and approved by <@{ALICE}> and <@{BOB}>" in text_of(card)


@pytest.mark.parametrize(
    ("requested_by", "requesters"),
    [(ALICE, [ALICE, CAROL]), (ALICE, None), (None, [CAROL])],
    ids=["answered-in-the-thread", "a-row-naming-only-who-asked", "a-row-naming-only-requesters"],
)
async def test_four_eyes_holds_everyone_the_row_names_as_asking(
    env: SlackEnv, requested_by: str | None, requesters: list[str] | None
) -> None:
    """Whoever the review names as asking (``requested_by``) and everyone whose words led to
    the call (``requesters``) is refused Approve and Edit; each list alone is enough, as rows
    written before ``requesters`` existed name only who asked."""
    clicks = env.bot.flow.clicks
    review = await read(env, await open_review(env.sandbox))
    request = {k: v for k, v in review.request.items() if k not in ("requested_by", "requesters")}
    if requested_by is not None:
        request["requested_by"] = requested_by
    if requesters is not None:
        request["requesters"] = requesters
    asked = dataclasses.replace(review, request=request)
    forbidden = {requested_by, *(requesters or ())} - {None}
    for user in (ALICE, BOB, CAROL):
        for kind in ("approve", "edit"):
            admitted = await clicks.admit(asked, Click(user, review.ref, "C0GENERAL"), kind)
            assert (admitted == FOUR_EYES) == (user in forbidden), (user, kind)
    await clicks.decide(Click(BOB, review.ref, "C0GENERAL"), Approve(BOB))  # leave it decided


async def test_a_click_from_another_channel_is_refused_and_changes_nothing(
    env: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's ref carried into another conversation: the clicker is told there, the
    refusal is logged and counted, and the review stays pending (it is not expired)."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    rejected = decisions("continue", "rejected")
    await clicks.decide(Click(BOB, ref, "C0RANDOM"), Approve(BOB))
    assert [n["text"] for n in env.sandbox.ephemerals(BOB, "C0RANDOM")] == [ELSEWHERE]
    assert decisions("continue", "rejected") == rejected + 1
    assert (await read(env, ref)).status == "pending"
    assert f"click on review {ref} from another channel ({BOB})" in [
        r.getMessage() for r in caplog.records if r.name == "bot.review.clicks"
    ]
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))  # leave it decided


async def test_each_refusal_is_in_the_audit_trail_with_its_reason(env: SlackEnv) -> None:
    """Alice may not approve her own weather call (four-eyes); Bob may not approve a secret
    topic (only Carol may); Carol may not approve a card painted before Alice's edit."""
    clicks = env.bot.flow.clicks
    weather = await open_review(env.sandbox)
    await clicks.decide(Click(ALICE, weather, "C0GENERAL"), Approve(ALICE))
    secret = await open_review(env.sandbox, "set the topic of #general to 'secret'")
    await clicks.decide(Click(BOB, secret, "C0GENERAL"), Approve(BOB))
    invite = await open_review(env.sandbox, INVITE)
    edit = Edit({"channel": "C0GENERAL", "users": [BOB]}, ALICE)
    await clicks.decide(Click(ALICE, invite, "C0GENERAL"), edit)
    behind = Click(CAROL, invite, "C0GENERAL", shown_version=0)
    assert await clicks.admit(await read(env, invite), behind, "approve") == CHANGED
    refs = {(await read(env, ref)).thread_id: ref for ref in (weather, secret, invite)}
    events = await AuditLog(env.bot.service.pool).query(outcome="refused")
    assert sorted(
        (refs[e["thread_id"]], e["decided_by"], e["detail"])
        for e in events
        if e["thread_id"] in refs
    ) == sorted(
        [
            (weather, ALICE, "four-eyes"),
            (secret, BOB, "not an approver"),
            (invite, CAROL, "approved an earlier proposal"),
        ]
    )
    for ref in (weather, secret, invite):
        await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


async def test_a_click_on_an_unknown_review_is_told_logged_and_counted(
    env: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    rejected = decisions("continue", "rejected")
    await env.bot.flow.clicks.decide(Click(BOB, "no-such-review", "C0GENERAL"), Approve(BOB))
    assert told(env, BOB) == [UNKNOWN]
    assert decisions("continue", "rejected") == rejected + 1
    assert "click with unknown review ref from U0BOB" in [
        r.getMessage() for r in caplog.records if r.name == "bot.review.clicks"
    ]


async def test_an_edit_decided_on_a_review_not_yet_read_is_held_to_the_edited_call(
    env: SlackEnv,
) -> None:
    """An Edit handed to ``decide`` without the review (the store reads it) is admitted under
    the edited arguments' rule as a form's is: only Carol may set a secret topic."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, "set the topic of #general to 'launch'")
    row = await read(env, ref)
    secret = {**row.request["tool_call"]["args"], "topic": "secret"}
    await clicks.decide(Click(ALICE, ref, "C0GENERAL"), Edit(secret, ALICE))
    assert told(env, ALICE) == [
        f"Only <@{CAROL}> may decide `set_channel_topic` calls, so I did nothing. "
        "Ask one of them to take a look."
    ]
    assert (await read(env, ref)).status == "pending"
    assert not env.sandbox.calls_of("conversations.setTopic")
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))  # leave it decided


async def test_a_refusal_after_an_escalation_names_its_targets_too(env: SlackEnv) -> None:
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, "set the topic of #general to 'secret'")
    row = await read(env, ref)
    escalated = dataclasses.replace(row, escalate_to=("U0ERIN",), escalated_at=row.created_at)
    refused = await clicks.admit(escalated, Click(BOB, ref, "C0GENERAL"), "approve")
    assert refused == (
        f"Only <@{CAROL}>, <@U0ERIN> may decide `set_channel_topic` calls, so I did nothing. "
        "Ask one of them to take a look."
    )
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


@pytest.mark.parametrize(
    ("read_before", "counted"),
    [(False, "rejected"), (True, "stale")],
    ids=["read-after-the-decision", "read-before-it"],
)
async def test_a_click_on_a_review_already_decided_is_told_who_decided_it(
    env: SlackEnv, read_before: bool, counted: str
) -> None:
    """Read after Bob's decision, Carol's click is refused at admission (``rejected``); read
    while it was pending, it loses the claim to Bob's (``stale``). Either way she is told who
    decided."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    review = await read(env, ref) if read_before else None
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    before = decisions("continue", counted)
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL), review)
    [note] = told(env, CAROL)
    assert note.startswith(f"This review was already approved by <@{BOB}>")
    assert decisions("continue", counted) == before + 1


async def test_a_click_on_a_review_past_its_time_is_refused_and_the_review_expired(
    env: SlackEnv,
) -> None:
    """Read after its deadline (no sweep yet): the click is refused and counted once, as
    ``rejected`` (not also ``expired``), and the review is expired right after the answer."""
    store, clicks = env.bot.flow.store, env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    await lapse_now(env, ref)
    before = decisions("continue", "rejected"), decisions("continue", "expired")
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    [note] = told(env, BOB)
    assert note.startswith("This review expired at")
    assert (decisions("continue", "rejected"), decisions("continue", "expired")) == (
        before[0] + 1,
        before[1],
    )

    async def expired() -> list[ReviewRow]:
        row = await store.get(ref)
        return [row] if row is not None and row.action == "expired" else []

    await eventually(expired, within=15)


async def test_an_applied_decision_is_timed_from_its_click(env: SlackEnv) -> None:
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    timed = REGISTRY.get_sample_value("approval_bot_decision_apply_seconds_count") or 0.0
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    assert REGISTRY.get_sample_value("approval_bot_decision_apply_seconds_count") == timed + 1


async def test_a_click_on_a_copy_never_stored_records_it_and_paints_it(env: SlackEnv) -> None:
    """A copy of the card posted by a process that died before storing it: Bob's vote from a
    surface naming no message (the App Home) records no copy; Carol's approval from the copy
    records it, and the decision is painted on both."""
    sandbox, clicks = env.sandbox, env.bot.flow.clicks
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {INVITE}")
    [card] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    ref = review_ref(card)
    posted = await env.bot.app.client.chat_postMessage(
        channel="C0GENERAL", thread_ts=thread, text=card["text"], blocks=card["blocks"]
    )
    copy = str(posted["ts"])
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    assert (await read(env, ref)).messages == (card["ts"],)
    await clicks.decide(Click(CAROL, ref, "C0GENERAL", message_ts=copy), Approve(CAROL))
    row = await read(env, ref)
    assert (row.status, row.messages) == ("decided", (card["ts"], copy))
    painted = [m["ts"] for m in sandbox.replies("C0GENERAL", thread) if "Approved by" in text_of(m)]
    assert sorted(painted) == sorted([card["ts"], copy])


async def test_an_edit_into_a_rule_with_a_quorum_is_counted_as_a_vote_under_it(
    env: SlackEnv,
) -> None:
    """A topic anyone may approve alone, edited into one that needs two: the edit is the
    editor's vote towards the edited call's quorum, and nothing runs yet."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox, "set the topic of #general to 'launch'")
    review = await read(env, ref)
    edited = {**review.request["tool_call"]["args"], "topic": "launch-day"}
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Edit(edited, BOB), review)
    assert told(env, BOB) == ["Your approval is recorded: 1 of 2."]
    row = await read(env, ref)
    assert (row.status, row.proposed_edit) == ("pending", edited)
    assert not env.sandbox.calls_of("conversations.setTopic")
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


async def test_a_standing_approval_under_a_quorum_is_made_from_each_approvers_offer(
    env: SlackEnv,
) -> None:
    """Alice's and Carol's approvals each offer terms with their vote: the grant is made when
    the quorum is reached, created by both."""
    clicks = env.bot.flow.clicks
    # a channel of this test's own: the grant matches no other test's invitation
    ref = await open_review(env.sandbox, f"invite <@{BOB}> to #c-{uuid.uuid4().hex[:8]}")
    terms = GrantTerms(seconds=60, uses=1, scope=frozenset({"channel"}))
    for user in (ALICE, CAROL):
        await clicks.decide(Click(user, ref, "C0GENERAL"), Approve(user), offer=terms)
    assert (await read(env, ref)).status == "decided"
    async with env.bot.service.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT created_by, max_uses FROM standing_grants WHERE source_ref = %s", (ref,)
            )
        ).fetchall()
    assert [(sorted(r["created_by"]), r["max_uses"]) for r in rows] == [(sorted([ALICE, CAROL]), 1)]


async def test_a_vote_from_a_copy_never_stored_is_shown_on_every_copy(env: SlackEnv) -> None:
    """Bob's vote, short of the quorum, comes from a copy of the card no process stored: the
    copy is recorded and both it and the stored card show his vote."""
    sandbox, clicks = env.sandbox, env.bot.flow.clicks
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {INVITE}")
    # the card once its preview is on it: the preview's own repaint (which reads the row
    # afresh) must not be what paints the vote on the copy
    [card] = await sandbox.wait_for(
        lambda: [
            m for m in review_messages(sandbox, "C0GENERAL", thread) if "*Preview:*" in text_of(m)
        ],
        within=15,
    )
    ref = review_ref(card)
    posted = await env.bot.app.client.chat_postMessage(
        channel="C0GENERAL", thread_ts=thread, text=card["text"], blocks=card["blocks"]
    )
    copy = str(posted["ts"])
    await clicks.decide(Click(BOB, ref, "C0GENERAL", message_ts=copy), Approve(BOB))
    assert told(env, BOB) == ["Your approval is recorded: 1 of 2."]
    assert (await read(env, ref)).messages == (card["ts"], copy)
    shown = [
        m["ts"]
        for m in sandbox.replies("C0GENERAL", thread)
        if f"1 of 2 approvals (<@{BOB}>)" in text_of(m)
    ]
    assert sorted(shown) == sorted([card["ts"], copy])
    await clicks.decide(Click(CAROL, ref, "C0GENERAL"), Approve(CAROL))  # leave it decided


async def test_a_decision_the_agent_already_has_is_told_to_the_clicker_with_who_decided(
    env: SlackEnv,
) -> None:
    """The agent took Carol's approval by another way (another bot's claim, say) while the
    row still reads pending: Bob's claim succeeds, the agent refuses it as answered, and Bob
    alone is told who decided."""
    clicks = env.bot.flow.clicks
    ref = await open_review(env.sandbox)
    row = await read(env, ref)
    approved = Approve(CAROL, proposal_digest(row))
    await env.bot.service.answer(row.thread_id, row.interrupt_id, approved)
    await clicks.decide(Click(BOB, ref, "C0GENERAL"), Approve(BOB))
    [note] = told(env, BOB)
    assert note.startswith(f"This review was already approved by <@{CAROL}>")
