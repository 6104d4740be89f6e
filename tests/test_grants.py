"""Standing approvals without Slack: the policy setting, the pure rules, the Block Kit (validated
against Slack's limits), and the grant rows in real PostgreSQL, including two replicas racing
for the last use on separate pools."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import blocks, grant_blocks, home
from bot.audit import AuditEvent, AuditLog
from bot.grants import (
    Grant,
    GrantStore,
    GrantTerms,
    NewGrant,
    canonical,
    combined,
    constraints_of,
    matches,
    refusal,
    requesters_of,
)
from bot.migrations import migrate_bot
from bot.policy import GrantLimits, PolicyError, ToolPolicy, parse_policy
from graph import ReviewRequest
from graph.db import open_pool
from tests.support.block_kit import assert_valid_blocks, assert_valid_view

LIMITS = GrantLimits(3600.0, 10)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


BASE = Grant(
    id=7,
    team_id="T1",
    tool_name="send",
    constraints={"channel": canonical("#ops")},
    created_by=("U0ALICE",),
    created_at=NOW,
    expires_at=NOW + timedelta(hours=1),
    max_uses=10,
    uses=3,
    channel_id="C1",
    thread_id="t",
    interrupt_id="i",
    tool_call_id="c",
)


def grant(**changes: Any) -> Grant:
    return dataclasses.replace(BASE, **changes)


# -- the policy ------------------------------------------------------------------------------


def test_the_policy_sets_grant_limits_per_tool_and_refuses_bad_ones() -> None:
    policy = parse_policy(
        '[tools.send]\ngrants = { max_duration = "1h", max_uses = 10 }\n[tools.other]\n'
    )
    assert policy.for_tool("send").grants == GrantLimits(3600.0, 10)
    assert policy.for_tool("other").grants is None
    for bad in (
        'grants = { max_duration = "1h" }',
        'grants = { max_duration = "1h", max_uses = 0 }',
        'grants = { max_duration = "soon", max_uses = 3 }',
        "grants = true",
    ):
        with pytest.raises(PolicyError, match="line 2"):
            parse_policy(f"[tools.send]\n{bad}\n")


# -- the pure rules --------------------------------------------------------------------------


def test_a_grant_matches_on_canonical_json_of_the_constrained_arguments_only() -> None:
    g = grant(constraints=constraints_of({"channel": "#ops", "opts": {"b": 1, "a": [1]}}, {"opts"}))
    assert matches(g, "send", "T1", {"opts": {"a": [1], "b": 1}, "channel": "#anything"})
    assert not matches(g, "send", "T1", {"opts": {"a": [1, 2], "b": 1}})  # not containment
    assert not matches(g, "send", "T1", {"opts": {"a": [1], "b": 1.0}})
    assert not matches(g, "send", "T1", {})  # a constrained argument must be there
    assert not matches(g, "other", "T1", {"opts": {"a": [1], "b": 1}})
    assert not matches(g, "send", "T2", {"opts": {"a": [1], "b": 1}})


def test_a_redacted_argument_is_kept_equal_by_its_digest_never_its_value() -> None:
    stored = constraints_of({"token": "s3cret", "channel": "#ops"}, {"token"}, {"token"})
    assert "s3cret" not in json.dumps(stored) and stored["token"].startswith("sha256:")
    g = grant(constraints=stored)
    assert matches(g, "send", "T1", {"token": "s3cret"})
    assert not matches(g, "send", "T1", {"token": "other"})
    assert g.shown_constraints(ToolPolicy()) == {"token": "[redacted]"}  # even if unredacted


def test_a_grant_never_allows_more_than_its_creators_could_approve() -> None:
    policy = ToolPolicy(grants=LIMITS)
    g = grant(created_by=("U0ALICE", "U0BOB"))
    assert refusal(g, policy, {"U0CAROL"}, ["U0ALICE"]) is None
    assert refusal(g, ToolPolicy(), {"U0CAROL"}, ["U0ALICE"]) is not None  # grants turned off
    four_eyes = ToolPolicy(grants=LIMITS, four_eyes=True)
    assert "four-eyes" in str(refusal(g, four_eyes, {"U0BOB"}, ["U0ALICE", "U0BOB"]))
    assert refusal(g, four_eyes, {"U0CAROL"}, ["U0ALICE", "U0BOB"]) is None
    quorum = ToolPolicy(grants=LIMITS, quorum=2)
    assert refusal(g, quorum, {"U0CAROL"}, ["U0ALICE", "U0BOB"]) is None
    assert refusal(g, quorum, {"U0CAROL"}, ["U0ALICE"]) is not None  # Bob is no approver now
    assert requesters_of({"requested_by": "U0A", "requesters": ["U0B"]}) == {"U0A", "U0B"}


def test_combined_terms_are_what_every_creator_agreed_to() -> None:
    terms = combined(
        [GrantTerms(3600, 5, frozenset({"channel"})), GrantTerms(600, 9, frozenset({"text"}))]
    )
    assert terms == GrantTerms(600, 5, frozenset({"channel", "text"}))


# -- Block Kit -------------------------------------------------------------------------------


def test_the_card_offers_the_grant_button_only_where_the_policy_allows() -> None:
    request = ReviewRequest(
        question="",
        tool_call={"name": "send", "args": {"channel": "#ops"}, "id": "c1"},
        tool={"name": "send", "description": "Send", "args_schema": {}},
    )
    plain = blocks.review_blocks(request, "ref")
    offered = blocks.review_blocks(request, "ref", grantable=True)
    assert_valid_blocks(offered)
    ids = [e["action_id"] for e in offered[-1]["elements"]]
    assert ids == [blocks.APPROVE, blocks.EDIT, blocks.FEEDBACK, blocks.GRANT]
    assert blocks.GRANT not in json.dumps(plain)


def test_the_grant_modal_masks_redacted_values_and_reads_back_within_the_policy() -> None:
    shown = ToolPolicy(redact=frozenset({"token"})).redacted(
        {"channel": "#ops", "token": "s3cret", "text": "x" * 500}
    )
    view = grant_blocks.grant_modal("send", shown, "ref", 2, LIMITS)
    assert_valid_view(view)
    assert "s3cret" not in json.dumps(view) and "token = [redacted]" in json.dumps(view)
    assert grant_blocks.parse_metadata(view["private_metadata"]) == ("ref", 2)
    durations = [o["value"] for o in view["blocks"][1]["element"]["options"]]
    assert durations[-1] == "3600" and all(float(d) <= 3600 for d in durations)

    names = list(shown)
    values = {
        grant_blocks.DURATION_BLOCK: {"value": {"selected_option": {"value": "1800"}}},
        grant_blocks.USES_BLOCK: {"value": {"value": "4"}},
        grant_blocks.SCOPE_BLOCK: {"value": {"selected_options": [{"value": "0"}, {"value": "1"}]}},
    }
    terms = grant_blocks.parse_grant(values, names, LIMITS)
    assert terms == GrantTerms(1800.0, 4, frozenset({"channel", "token"}))
    too_much = {
        **values,
        grant_blocks.DURATION_BLOCK: {"value": {"selected_option": {"value": "86400"}}},
        grant_blocks.USES_BLOCK: {"value": {"value": "11"}},
    }
    errors = grant_blocks.parse_grant(too_much, names, LIMITS)
    assert set(errors) == {grant_blocks.DURATION_BLOCK, grant_blocks.USES_BLOCK}


def test_many_arguments_use_a_multi_select_and_the_rest_always_stay_equal() -> None:
    args = {f"a{i}": i for i in range(105)}
    view = grant_blocks.grant_modal("send", args, "ref", 0, LIMITS)
    assert_valid_view(view)
    scope = next(b for b in view["blocks"] if b.get("block_id") == grant_blocks.SCOPE_BLOCK)
    assert scope["element"]["type"] == "multi_static_select"
    values = {
        grant_blocks.DURATION_BLOCK: {"value": {"selected_option": {"value": "3600"}}},
        grant_blocks.USES_BLOCK: {"value": {"value": "1"}},
    }
    terms = grant_blocks.parse_grant(values, list(args), LIMITS)
    assert isinstance(terms, GrantTerms) and terms.scope == {"a100", "a101", "a102", "a103", "a104"}


def test_home_blocks_are_valid_and_masked() -> None:
    policy = ToolPolicy(redact=frozenset({"token"}))
    g = grant(constraints={"channel": canonical("#ops"), "token": canonical("s3cret")})
    many = [grant(id=i, constraints=g.constraints) for i in range(25)]
    shown = grant_blocks.home_blocks(
        [(one, "send", one.shown_constraints(policy)) for one in many], notice="Revoked <G1>"
    )
    assert_valid_blocks(shown, 100)
    ids = [b["block_id"] for b in shown if "block_id" in b]
    assert len(ids) == len(set(ids)) == grant_blocks.MAX_HOME_GRANTS
    text = json.dumps(shown, ensure_ascii=False)
    assert "s3cret" not in text and "[redacted]" in text and "Revoked &lt;G1&gt;" in text
    assert "7 of 10 uses left" in text and "…and 10 more." in text
    assert grant_blocks.home_blocks([]) == []
    line = grant_blocks.ran_under_text(g)
    assert line.endswith("by <@U0ALICE>, 7 of 10 uses left.")
    assert_valid_blocks(grant_blocks.line_blocks(line))


def test_the_longest_home_with_the_longest_list_of_grants_is_one_valid_view() -> None:
    reviews = [
        home.WaitingReview(
            ref=f"r{i}",
            tool_name="send",
            args={"channel": "#ops"},
            requested_by="U0CAROL",
            channel_id="C1",
            thread_ts="1.2",
            message_ts="1.3",
            created_at=NOW,
        )
        for i in range(40)
    ]
    view = home.home_view(home.waiting_from(reviews), now=NOW, workspace_url="https://x.slack.com/")
    many = [grant(id=i) for i in range(40)]
    view["blocks"].extend(
        grant_blocks.home_blocks([(g, "send", {"channel": "#ops"}) for g in many], "Revoked.")
    )
    assert_valid_view(view)


# -- the rows ----------------------------------------------------------------------------------


def new_grant(ref: str, uses: int = 1) -> tuple[NewGrant, AuditEvent]:
    new = NewGrant(
        team_id="T1",
        tool_name="send",
        constraints={"channel": canonical("#ops")},
        created_by=("U0ALICE",),
        terms=GrantTerms(3600, uses, frozenset({"channel"})),
        channel_id="C1",
        thread_id=f"thread-{ref}",
        interrupt_id="i",
        tool_call_id="c",
        source_ref=ref,
    )
    audit = AuditEvent(
        outcome="grant_created",
        thread_id=f"thread-{ref}",
        interrupt_id="i",
        tool_call_id="c",
        tool_name="send",
        detail="standing approval G{grant}",
    )
    return new, audit


async def test_two_replicas_racing_for_the_last_use_exactly_one_wins(database_url: str) -> None:
    async with (
        open_pool(database_url, max_size=4) as one,
        open_pool(database_url, max_size=4) as two,
    ):
        await migrate_bot(one)
        first, second = GrantStore(one), GrantStore(two)
        for round_ in range(5):
            made = await first.create(*new_grant(f"race-{round_}-{id(one)}", uses=1))
            assert made is not None
            won = await asyncio.gather(first.consume(made.id), second.consume(made.id))
            assert sum(g is not None for g in won) == 1
            after = await second.get(made.id)
            assert after is not None and after.uses == 1
            assert await first.consume(made.id) is None  # exhausted: nothing more


async def test_creation_is_once_per_review_and_revocation_is_audited_and_final(
    database_url: str,
) -> None:
    async with open_pool(database_url, max_size=2) as pool:
        await migrate_bot(pool)
        store = GrantStore(pool)
        ref = f"revoke-{id(pool)}"
        made = await store.create(*new_grant(ref, uses=5))
        assert made is not None
        assert await store.create(*new_grant(ref, uses=5)) is None  # a repeated apply
        assert made.id in [g.id for g in await store.candidates("send", "T1")]
        audit = AuditEvent(
            outcome="grant_revoked",
            thread_id=made.thread_id,
            interrupt_id="i",
            tool_call_id="c",
            tool_name="send",
            decided_by="U0BOB",
            detail="standing approval G{grant} revoked",
        )
        assert await store.revoke(made.id, "U0BOB", audit) is not None
        assert await store.revoke(made.id, "U0BOB", audit) is None
        assert await store.consume(made.id) is None
        assert made.id not in [g.id for g in await store.candidates("send", "T1")]
        events = [
            (e["outcome"], e["detail"])
            for e in await AuditLog(pool).query(tool="send")
            if e["thread_id"] == made.thread_id
        ]
        assert events == [
            ("grant_created", f"standing approval G{made.id}"),
            ("grant_revoked", f"standing approval G{made.id} revoked"),
        ]


def test_canonical_json_is_one_spelling_keys_sorted_no_spaces_unicode_kept() -> None:
    assert (
        canonical({"b": [1, "é"], "a": {"y": 2, "x": None}}) == '{"a":{"x":null,"y":2},"b":[1,"é"]}'
    )


def test_plain_constraints_are_stored_and_shown_as_their_values() -> None:
    stored = constraints_of({"channel": "#ops", "text": "hi"}, {"channel"})
    assert stored == {"channel": '"#ops"'}
    assert grant(constraints=stored).shown_constraints(ToolPolicy()) == {"channel": "#ops"}


def test_each_refusal_of_a_grant_says_which_rule_stops_it() -> None:
    g = grant(created_by=("U0ALICE",))
    assert refusal(g, ToolPolicy(), set(), ["U0ALICE"]) == (
        "the policy allows no standing approvals for this tool"
    )
    four_eyes = ToolPolicy(grants=LIMITS, four_eyes=True)
    assert refusal(g, four_eyes, {"U0ALICE"}, ["U0ALICE"]) == (
        "four-eyes: a creator of the grant asked for this call"
    )
    quorum = ToolPolicy(grants=LIMITS, quorum=2)
    assert refusal(g, quorum, set(), ["U0ALICE"]) == (
        "fewer of its creators than the quorum may approve this tool"
    )
