"""The pure rules of a review, its transition table and its decision vocabulary: no database,
no Slack, microseconds each."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import store
from bot.review import rules, states, vocabulary
from bot.review.rules import ClickFacts
from graph.decisions import (
    EXPIRY_ACTOR,
    Approve,
    Edit,
    Expire,
    Feedback,
    from_stored,
    from_wire,
    stored_action,
    to_wire,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def facts(**changes: object) -> ClickFacts:
    base: dict[str, object] = dict(
        kind="approve",
        clicked_in="C1",
        review_channel="C1",
        is_approver=True,
        four_eyes_forbidden=False,
        status="pending",
        lapsed=False,
    )
    return ClickFacts(**{**base, **changes})  # type: ignore[arg-type]


# -- who may decide ------------------------------------------------------------------------


def test_nobody_configured_means_anyone_decides() -> None:
    assert rules.named_approver(None, "U1")
    assert not rules.named_approver(frozenset({"U2"}), "U1")
    assert rules.named_approver(frozenset({"U1"}), "U1")


def test_only_groups_are_looked_up() -> None:
    assert rules.approver_groups(frozenset({"U1", "S2", "S1"})) == ["S1", "S2"]
    assert rules.approver_groups(None) == []


def test_four_eyes_covers_every_requester() -> None:
    assert rules.four_eyes_forbids(True, "U1", "U1", None)
    assert rules.four_eyes_forbids(True, "U2", "U1", ["U2"])
    assert not rules.four_eyes_forbids(True, "U3", "U1", ["U2"])
    assert not rules.four_eyes_forbids(False, "U1", "U1", ["U1"])


def test_a_requester_may_still_send_feedback() -> None:
    assert not rules.four_eyes_applies("feedback")
    assert rules.four_eyes_applies("approve") and rules.four_eyes_applies("edit")


# -- what a click may do -------------------------------------------------------------------


def test_approve_and_edit_are_bound_to_what_their_card_or_form_showed() -> None:
    """An Approve runs what its card showed and an Edit what its form showed (and kept as
    proposed), so each counts only if that is still the proposal; Feedback runs nothing."""
    assert rules.admission(facts(kind="edit", card_is_current=False)) == "changed"
    assert rules.admission(facts(kind="feedback", card_is_current=False)) == "admitted"
    assert rules.admission(facts(kind="approve", card_is_current=False)) == "changed"
    assert rules.REFUSAL_DETAIL["changed"]


def test_a_live_click_by_an_approver_is_admitted() -> None:
    assert rules.admission(facts()) == "admitted"
    assert rules.admission(facts(clicked_in=None)) == "admitted"  # a modal names no channel


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"clicked_in": "C2"}, "wrong_channel"),
        ({"clicked_in": "C2", "is_approver": False}, "wrong_channel"),
        ({"is_approver": False, "four_eyes_forbidden": True}, "not_approver"),
        ({"four_eyes_forbidden": True, "status": "decided"}, "four_eyes"),
        ({"status": "deciding", "lapsed": True}, "stale"),
        ({"lapsed": True}, "expired"),
        ({"lapsed": True, "card_is_current": False}, "expired"),
        ({"card_is_current": False}, "changed"),
    ],
)
def test_refusals_come_in_the_order_people_are_told(
    changes: dict[str, object], expected: str
) -> None:
    assert rules.admission(facts(**changes)) == expected


def test_feedback_from_a_requester_is_admitted() -> None:
    assert rules.admission(facts(kind="feedback", four_eyes_forbidden=True)) == "admitted"


# -- quorum --------------------------------------------------------------------------------


def test_quorum_counts_approvals_and_edits_only() -> None:
    assert rules.counts_towards_quorum(2, "approve") and rules.counts_towards_quorum(2, "edit")
    assert not rules.counts_towards_quorum(2, "feedback")
    assert not rules.counts_towards_quorum(1, "approve")


def test_quorum_arithmetic() -> None:
    assert not rules.quorum_reached(["U1"], 2)
    assert rules.quorum_reached(["U1", "U2"], 2)
    assert rules.approval_progress(["U1"], 3) == "1 of 3"


# -- expiry --------------------------------------------------------------------------------


def test_reminder_time() -> None:
    assert rules.remind_after(3600, 600) == 3000
    assert rules.remind_after(None, 600) is None
    assert rules.remind_after(3600, None) is None


def test_lapsed_only_while_pending() -> None:
    past = NOW - timedelta(seconds=1)
    assert rules.is_lapsed("pending", past, NOW)
    assert rules.is_lapsed("pending", NOW, NOW)
    assert not rules.is_lapsed("pending", NOW + timedelta(seconds=1), NOW)
    assert not rules.is_lapsed("deciding", past, NOW)
    assert not rules.is_lapsed("pending", None, NOW)


def test_expiry_words() -> None:
    assert "within 2 hours" in rules.expiry_words(7200)
    assert "within 30 minutes" in rules.expiry_words(1800)
    assert rules.expired_text(NOW).startswith("This review expired at 2026-01-01 12:00:00 UTC")


# -- the vocabulary ------------------------------------------------------------------------


def test_wire_words_at_the_resume_boundary() -> None:
    assert to_wire(Approve("U1")) == {"action": "continue", "by": "U1"}
    assert to_wire(Edit({"a": 1}, "U1")) == {"action": "update", "data": {"a": 1}, "by": "U1"}
    assert to_wire(Feedback("no", "U1")) == {"action": "feedback", "data": "no", "by": "U1"}
    # The model reads an expiry as feedback from "expiry", as it always did.
    assert to_wire(Expire("late")) == {"action": "feedback", "data": "late", "by": EXPIRY_ACTOR}


@pytest.mark.parametrize(
    "decision", [Approve("U1"), Edit({"a": 1}, "U1"), Feedback("no", "U1"), Expire("late")]
)
def test_wire_and_stored_words_round_trip(decision: object) -> None:
    assert from_wire(to_wire(decision)) == decision  # type: ignore[arg-type]
    kind = decision.kind  # type: ignore[attr-defined]
    args = decision.args if isinstance(decision, Edit) else None
    text = decision.text if isinstance(decision, Feedback | Expire) else None
    by = decision.by  # type: ignore[attr-defined]
    assert from_stored(stored_action(kind), by, args, text) == decision


def test_an_expiry_is_not_feedback_inside_the_bot() -> None:
    assert from_stored("expired", None, None, "late") == Expire("late")
    assert vocabulary.outcome_of_action("expired") == "expired"
    assert vocabulary.outcome_of_action("feedback") == "feedback"
    assert vocabulary.outcome_of_action(None) == "approved"


def test_buttons_name_decision_kinds() -> None:
    from bot.blocks import APPROVE, EDIT, FEEDBACK

    assert vocabulary.KIND_OF_BUTTON == {APPROVE: "approve", EDIT: "edit", FEEDBACK: "feedback"}


# -- the transition table ------------------------------------------------------------------


def test_the_table_starts_at_registration_and_ends_decided() -> None:
    assert states.TRANSITIONS["register"].sources == {None}
    assert states.TRANSITIONS["finish"].target == "decided"
    assert not any(
        "decided" in t.sources for t in states.TRANSITIONS.values() if t.target is not None
    )
    assert states.allowed("release", "deciding") and not states.allowed("release", "pending")


def test_a_status_change_outside_the_table_is_refused() -> None:
    with pytest.raises(states.IllegalTransition):
        states.check_sql("release", "UPDATE slack_reviews SET status = 'pending' WHERE ref = %s")
    with pytest.raises(states.IllegalTransition):
        states.check_sql(
            "claim", "UPDATE slack_reviews SET status = 'deciding' WHERE status = 'decided'"
        )


def string_constants(source: str) -> list[str]:
    """Every string literal (and f-string's literal parts) of a module."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
    return found


def test_every_status_change_in_the_store_is_in_the_table() -> None:
    """Every statement of bot/store.py that writes a review's status is one of the store's
    named transitions, and each of those matches the table."""
    source = Path(store.__file__).read_text()
    writes = [
        text
        for text in string_constants(source)
        if re.search(r"SET\s+status\s*=", text, re.IGNORECASE) and "slack_events" not in text
    ]
    assert writes, "the store writes statuses somewhere"
    named = [sql for statements in store.TRANSITION_SQL.values() for sql in statements]
    for text in writes:
        assert any(text.strip() in sql for sql in named), f"unnamed status change: {text!r}"
    for name, statements in store.TRANSITION_SQL.items():
        for sql in statements:
            assert states.check_sql(name, sql) == sql
    assert set(store.TRANSITION_SQL) == set(states.TRANSITIONS)


def test_each_named_statement_is_written_by_the_store() -> None:
    """Every transition's statement is used by a BotStore method (none is dead, none is
    composed elsewhere)."""
    source = Path(store.__file__).read_text()
    tree = ast.parse(source)
    constants = {
        target.id: node
        for node in tree.body
        if isinstance(node, ast.AnnAssign | ast.Assign)
        for target in ([node.target] if isinstance(node, ast.AnnAssign) else node.targets)
        if isinstance(target, ast.Name)
    }
    [bot_store] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BotStore"]
    used = {n.id for n in ast.walk(bot_store) if isinstance(n, ast.Name)}
    by_value = {id(sql): name for name, sql in vars(store).items() if isinstance(sql, str)}
    for statements in store.TRANSITION_SQL.values():
        for sql in statements:
            name = by_value[id(sql)]
            assert name in constants
            users = {name} | {
                other
                for other, node in constants.items()
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))
            }
            assert users & used, f"{name} is not written by any BotStore method"


def test_store_methods_are_named_by_their_transition() -> None:
    """A method that changes a review's row is called by the transition it writes (``register``
    is ``add_review``, ``beat`` the ``deciding`` heartbeat, ``remind`` ``remind_due``)."""
    aliases = {"register": "add_review", "beat": "deciding", "remind": "remind_due"}
    aliases |= {"claim_expiry": "claim"}  # one method: the decision's kind picks the statement
    for name in states.TRANSITIONS:
        assert callable(getattr(store.BotStore, aliases.get(name, name), None)), name
