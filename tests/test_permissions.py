"""Who may decide (``bot.permissions.Approvers``), against the Slack sandbox's Web API over real
HTTP, without a bot: every approvers condition must admit the decider, groups are read from
``usergroups.users.list`` (an unreadable group admits nobody), escalation targets join only
once a review escalated, four-eyes follows the call's policy, lookups are cached for
``cache_seconds`` (failures of names and handles too), and the refusal names who may decide.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.permissions import Approvers
from bot.policy import Policy, ToolPolicy
from bot.policy_rules import CallPolicy
from bot.store import ReviewRow
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, running_sandbox
from sandbox.workspace import APPROVERS_GROUP, User
from tests.support.bot_harness import ALICE, BOB, CAROL

DAVE, ERIN, FRANK = "U0DAVE", "U0ERIN", "U0FRANK"
ONCALL = "S0ONCALL"
UNKNOWN_GROUP = "S0NOSUCH"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A workspace where Alice and Bob are in ``approvers`` and Carol alone in ``oncall``;
    Dave has no display name, only a real name."""
    async with running_sandbox(SandboxConfig(port=0)) as running:
        workspace = running.workspace
        workspace.usergroups[ONCALL] = {"id": ONCALL, "handle": "on<call>", "users": [CAROL]}
        workspace.usergroups["S0NAMELESS"] = {"id": "S0NAMELESS", "handle": "", "users": []}
        workspace.users[DAVE] = User(DAVE, "", "Dave Real")
        yield running


@dataclasses.dataclass
class Profiled(User):
    """A person whose display name differs from their user name, as in Slack (the sandbox's
    own people show their user name as their display name)."""

    display_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        user = super().to_dict()
        user["profile"]["display_name"] = self.display_name
        return user


def warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings logged so far, each required to carry its traceback; then forgotten."""
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert all(r.exc_info for r in records), records
    caplog.clear()
    return [r.getMessage() for r in records]


def approvers(sandbox: Sandbox, cache_seconds: float = 60.0) -> Approvers:
    client = AsyncWebClient(token=sandbox.config.bot_token, base_url=sandbox.api_url)
    return Approvers(Policy(), client, cache_seconds=cache_seconds)


def call(*conditions: frozenset[str] | None, four_eyes: bool = False) -> CallPolicy:
    """A call under these approvers conditions (the first is the policy's own)."""
    policy = ToolPolicy(approvers=conditions[0] if conditions else None, four_eyes=four_eyes)
    return CallPolicy(policy, approver_sets=conditions[1:] and conditions)


def calls(sandbox: Sandbox, method: str) -> int:
    return len(sandbox.workspace.calls_of(method))


def review(escalate_to: tuple[str, ...], escalated: bool) -> ReviewRow:
    """A pending review whose escalation goes to ``escalate_to``, escalated already or not."""
    request: Any = {}
    at = datetime(2026, 12, 1, tzinfo=UTC) if escalated else None
    return ReviewRow(
        *("r", "t", "i", "T1", "C1", "1.0", "2.0", "record_note", request, "pending"),
        *(None, None, None),
        escalated_at=at,
        escalate_to=escalate_to,
    )


async def test_every_approvers_condition_must_admit_the_decider(sandbox: Sandbox) -> None:
    who = approvers(sandbox)
    admitted = {
        "anyone": call(None),
        "nobody": call(frozenset()),
        "Alice": call(frozenset({ALICE})),
        "the approvers group": call(frozenset({APPROVERS_GROUP})),
        "Bob and a group he is not in": call(frozenset({BOB}), frozenset({ONCALL})),
        "anyone and Bob": call(None, frozenset({BOB})),
        "the group and Bob": call(frozenset({APPROVERS_GROUP}), frozenset({BOB, CAROL})),
    }
    seen = {
        name: [user for user in (ALICE, BOB, CAROL) if await who.may_decide(rule, user)]
        for name, rule in admitted.items()
    }
    assert seen == {
        "anyone": [ALICE, BOB, CAROL],
        "nobody": [],
        "Alice": [ALICE],
        "the approvers group": [ALICE, BOB],
        "Bob and a group he is not in": [],
        "anyone and Bob": [BOB],
        "the group and Bob": [BOB],
    }


async def test_an_unreadable_group_admits_nobody_and_is_read_again(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    who = approvers(sandbox)
    assert not await who.is_among(frozenset({UNKNOWN_GROUP}), ALICE)
    assert warned(caplog) == [f"could not read members of user group {UNKNOWN_GROUP}"]
    sandbox.web_api.fail_next("usergroups.users.list", 500)
    assert not await who.is_among(frozenset({APPROVERS_GROUP}), ALICE)
    assert await who.is_among(frozenset({APPROVERS_GROUP}), ALICE)  # the failure was not kept
    assert not await who.is_among(frozenset({APPROVERS_GROUP, ONCALL}), DAVE)
    assert await who.is_among(frozenset({APPROVERS_GROUP, ONCALL}), CAROL)  # the second group


async def test_escalation_targets_join_the_approvers_once_it_escalated(sandbox: Sandbox) -> None:
    who = approvers(sandbox)
    only_alice = call(frozenset({ALICE}))
    for targets in ((CAROL,), (ONCALL,)):
        waiting, escalated = review(targets, False), review(targets, True)
        assert not await who.may_decide_review(only_alice, waiting, CAROL)
        assert await who.may_decide_review(only_alice, escalated, CAROL)
        assert await who.may_decide_review(only_alice, waiting, ALICE)
        assert not await who.may_decide_review(only_alice, escalated, BOB)
    assert not await who.may_decide_with(only_alice, BOB, frozenset())
    assert await who.may_decide_with(only_alice, BOB, frozenset({APPROVERS_GROUP}))


async def test_four_eyes_follows_the_calls_policy(sandbox: Sandbox) -> None:
    who = approvers(sandbox)
    strict, relaxed = call(four_eyes=True), call(four_eyes=False)
    assert who.own_call_forbidden(strict, CAROL, CAROL)
    assert who.own_call_forbidden(strict, BOB, CAROL, [ALICE, BOB])
    assert not who.own_call_forbidden(strict, ALICE, CAROL, [BOB])
    assert not who.own_call_forbidden(strict, ALICE, None)
    assert not who.own_call_forbidden(relaxed, CAROL, CAROL, [CAROL])


async def test_members_are_cached_per_group_for_cache_seconds(sandbox: Sandbox) -> None:
    cached, uncached = approvers(sandbox), approvers(sandbox, cache_seconds=0)
    group = frozenset({APPROVERS_GROUP})
    assert await cached.is_among(group, BOB) and await uncached.is_among(group, BOB)
    assert calls(sandbox, "usergroups.users.list") == 2
    sandbox.workspace.usergroups[APPROVERS_GROUP]["users"] = [ALICE]
    assert await cached.is_among(group, BOB)  # until the cache runs out
    assert calls(sandbox, "usergroups.users.list") == 2
    assert not await uncached.is_among(group, BOB)
    assert await cached.is_among(frozenset({ONCALL}), CAROL)  # another group: its own entry
    assert calls(sandbox, "usergroups.users.list") == 4


async def test_group_handles_are_listed_once_and_a_failure_is_cached_too(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    who = approvers(sandbox)
    handles = {APPROVERS_GROUP: "approvers", ONCALL: "on<call>"}  # none for a group without
    assert await who.group_handles() == handles
    assert await who.group_handles() == handles
    assert calls(sandbox, "usergroups.list") == 1
    failing = approvers(sandbox)
    sandbox.web_api.fail_next("usergroups.list", 500)
    assert await failing.group_handles() == {}
    assert await failing.group_handles() == {}  # a missing scope costs one call, not one a click
    assert warned(caplog) == ["could not list user groups"]
    assert calls(sandbox, "usergroups.list") == 2
    fresh = approvers(sandbox, cache_seconds=0)
    assert await fresh.group_handles() == await fresh.group_handles() == handles
    assert calls(sandbox, "usergroups.list") == 4


async def test_names_are_display_names_else_user_names_else_real_names_and_cached(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    who = approvers(sandbox)
    sandbox.workspace.users[ERIN] = Profiled(ERIN, "erin.w", "Erin Real", display_name="Erin")
    sandbox.workspace.users[FRANK] = Profiled(FRANK, "frank", "Frank Real", display_name="")
    assert await who.user_name(ERIN) == "Erin"
    assert await who.user_name(FRANK) == "frank"
    assert await who.user_name(DAVE) == "Dave Real"
    assert await who.user_name("U0GHOST") is None
    assert warned(caplog) == ["could not read the name of U0GHOST"]
    assert await who.user_names([ERIN, "U0GHOST", DAVE]) == {ERIN: "Erin", DAVE: "Dave Real"}
    assert calls(sandbox, "users.info") == 4  # each read once, the unreadable one too
    fresh = approvers(sandbox, cache_seconds=0)
    assert await fresh.user_name(BOB) == await fresh.user_name(BOB) == "bob"
    assert calls(sandbox, "users.info") == 6


async def test_who_may_decide_is_said_with_mentions_and_handles(sandbox: Sandbox) -> None:
    who = approvers(sandbox)
    assert await who.describe(call(frozenset({BOB, ALICE}))) == "<@U0ALICE>, <@U0BOB>"
    assert await who.describe(call(frozenset())) == "nobody"
    assert calls(sandbox, "usergroups.list") == 0  # no group named: no lookup
    groups = call(frozenset({APPROVERS_GROUP, ONCALL, UNKNOWN_GROUP}))
    assert await who.describe(groups) == (
        f"@approvers, user group `{UNKNOWN_GROUP}`, @on&lt;call&gt;"  # sorted by id
    )
    assert await who.describe(call(frozenset({ALICE}), frozenset({BOB}))) == (
        "someone who is one of <@U0ALICE> and one of <@U0BOB>"
    )
    escalated = await who.describe(call(frozenset({ALICE}), frozenset({BOB})), frozenset({CAROL}))
    assert escalated == (
        "someone who is one of <@U0ALICE>, <@U0CAROL> and one of <@U0BOB>, <@U0CAROL>"
    )
    assert await who.describe(call(None), frozenset({CAROL})) == "<@U0CAROL>"


async def test_a_name_or_handle_slack_holds_back_is_given_up_on_not_waited_for(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Names and handles only make words nicer, and a modal error must answer within Slack's
    3 s: a lookup Slack answers only after 5 s is given up after ``LOOKUP_SECONDS`` (no name,
    no handle, logged), and the person still decides by id."""
    who = approvers(sandbox)
    sandbox.web_api.hold_next("users.info", 5)
    sandbox.web_api.hold_next("usergroups.list", 5)
    assert await who.user_name(BOB) is None
    assert await who.group_handles() == {}
    assert warned(caplog) == ["could not read the name of U0BOB", "could not list user groups"]
    assert await who.may_decide(call(frozenset({BOB})), BOB)
