"""The edges of the pure decision-path functions that mutation testing (``./dev mutate``,
docs/mutation.md) found untested: each test here kills a mutant that survived the first run."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from bot.review import rules, states
from graph.decisions import (
    EXPIRY_ACTOR,
    Approve,
    Edit,
    Expire,
    Feedback,
    from_stored,
    from_wire,
)


def test_a_where_with_two_statuses_allows_starting_from_either() -> None:
    sql = "UPDATE slack_reviews SET status = 'decided' WHERE status = 'pending' OR status = 'x'"
    assert states.statuses_changed(sql) == ("decided", {"pending", "x"})


def test_register_must_be_an_insert_that_sets_no_status() -> None:
    update = "UPDATE slack_reviews SET heartbeat_at = now() WHERE ref = %s"
    with pytest.raises(states.IllegalTransition, match="register"):
        states.check_sql("register", update)
    insert = "INSERT INTO slack_reviews (ref) VALUES (%s)"
    assert states.check_sql("register", insert) == insert


def test_a_refused_statement_is_named_with_what_it_would_write() -> None:
    sql = "UPDATE slack_reviews SET status = 'decided' WHERE ref = %s"
    with pytest.raises(states.IllegalTransition) as refused:
        states.check_sql("claim", sql)
    assert str(refused.value).startswith("claim: statement does not match the table (decided,")


@pytest.mark.parametrize(
    ("ttl", "span"),
    [(3600, "1 hours"), (5400, "1.5 hours"), (7200, "2 hours"), (1800, "30 minutes")],
)
def test_the_agent_is_told_how_long_the_review_waited(ttl: float, span: str) -> None:
    assert rules.expiry_words(ttl) == (
        f"No one approved this call within {span}, so it was not run. Do not try it again "
        "unless the user asks."
    )


def test_a_late_clicker_is_told_the_expiry_in_utc_whatever_the_clock_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the process's own zone is not UTC either
    time.tzset()
    try:
        oslo = timezone(timedelta(hours=1))
        at = datetime(2026, 12, 1, 13, 30, 5, tzinfo=oslo)
        assert rules.expired_text(at) == (
            "This review expired at 2026-12-01 12:30:05 UTC, so nothing was run. "
            "Ask the agent again if it is still needed."
        )
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "wire",
    [
        {"action": "feedback", "data": {"text": "a mapping is not feedback"}},
        {"action": "update", "data": "a string is not an edit"},
        {"action": "nonsense", "data": "words"},
        {"action": "nonsense", "data": {"a": 1}},
    ],
)
def test_a_resume_value_that_is_not_a_decision_is_none(wire: dict[str, object]) -> None:
    assert from_wire(wire) is None


def test_only_a_string_names_who_decided() -> None:
    assert from_wire({"action": "continue", "by": 42}) == Approve(None)
    assert from_wire({"action": "continue", "by": "U1"}) == Approve("U1")
    assert from_wire({"action": "feedback", "data": "late", "by": EXPIRY_ACTOR}) == Expire("late")


def test_a_stored_row_with_missing_columns_reads_as_empty_not_invented() -> None:
    assert from_stored("update", "U1", "not a mapping", None) == Edit({}, "U1")
    assert from_stored("update", "U1", {"a": 1}, None) == Edit({"a": 1}, "U1")
    assert from_stored("feedback", "U1", None, None) == Feedback("", "U1")
    assert from_stored("expired", None, None, None) == Expire("")
