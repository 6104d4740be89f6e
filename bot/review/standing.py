"""Standing approvals in the review flow: offered on the card, created by an approval, used
when a later call is proposed, listed and revoked in the App Home (README "Standing
approvals"; the rows and pure rules in :mod:`bot.grants`).

Creating a grant *is* an approval of the call on the card, so it goes through
:meth:`bot.review.clicks.Clicks.decide` and faces the same admission (approvers, four-eyes,
expiry, checked again at submit) and quorum:

- quorum 1: the approver's terms create the grant once their approval is claimed;
- quorum N: each approver who approves with the grant choice records their terms with their
  approval of that version of the call (:meth:`offer`). When the quorum is reached (by any
  approval), the grant is created only if at least N of the approvals counted came with the
  grant choice; its creators are exactly those approvers, and its terms are what all of them
  agreed to (:func:`bot.grants.combined`). Otherwise the call is approved and no grant made.

A later call runs on a grant (:meth:`run_granted`) only when the grant matches it, the policy
still allows grants, enough creators are still approvers to reach the quorum, and, under
four-eyes, no creator asked for the call; the use is then taken atomically and the call is
claimed and applied like a click (claim -> answer), audited as approved with the grant in the
detail. Anything else gets a normal review.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot import blocks, grant_blocks
from bot.audit import AuditEvent
from bot.blocks import Verdict
from bot.grants import (
    Grant,
    GrantStore,
    GrantTerms,
    NewGrant,
    combined,
    constraints_of,
    matches,
    refusal,
    requesters_of,
)
from bot.policy_rules import CallPolicy
from bot.review.clicks import CHANGED, Clicks
from bot.review.deps import Deps, thread_of
from bot.review.effects import Click, ReviewEffects
from bot.review.shown import current_request, shown_request
from bot.store import ReviewRow
from bot.threads import SlackThread
from bot.visibility import Audience
from graph import Approve, ReviewRequest

log = logging.getLogger(__name__)

NOT_OFFERED = "Standing approvals are not allowed for this tool."
NOT_ENOUGH = (
    "The call is approved. No standing approval was made: it needs {quorum} approvers to "
    "choose it, and {chose} did."
)


class StandingApprovals:
    def __init__(
        self,
        deps: Deps,
        effects: ReviewEffects,
        clicks: Clicks,
        store: GrantStore,
        audience: Audience,
    ) -> None:
        self.deps = deps
        self.effects = effects
        self.clicks = clicks
        self.store = store
        self.audience = audience

    # -- the card and its modal ------------------------------------------------------------

    async def open_modal(self, click: Click, trigger_id: str) -> None:
        """Open the grant modal at once (the trigger lives 3 s), after the click's admission."""
        try:
            review = await self.clicks.admissible(click, "approve")
            if isinstance(review, str):
                await self.effects.tell(review, click, None)
                return
            policy = self.deps.policy_of(review).policy
            if policy.grants is None:
                await self.effects.tell(NOT_OFFERED, click, review)
                return
            shown = shown_request(review, policy)
            view = grant_blocks.grant_modal(
                self._tool_name(review.tool_name),
                shown["tool_call"]["args"],
                review.ref,
                review.version,
                policy.grants,
            )
            await self.deps.slack.open_view(trigger_id, view)
        except Exception:
            log.exception("opening the grant modal for %s failed", click.ref)
            await self.effects.tell("I could not open that form; please try again.", click, None)

    async def check_submission(
        self, click: Click, version: int, values: Mapping[str, Any]
    ) -> tuple[ReviewRow, GrantTerms] | dict[str, str]:
        """Within Slack's 3 s: the review and the terms, or errors by block id. The review
        must still be the version the modal showed (its arguments are the scope's values)."""
        first = grant_blocks.DURATION_BLOCK
        review = await self.clicks.admissible(click, "approve")
        if isinstance(review, str):
            return {first: await self.clicks.plain(review)}
        policy = self.deps.policy_of(review).policy
        if policy.grants is None:
            return {first: NOT_OFFERED}
        if review.version != version:
            return {first: CHANGED}
        names = list(shown_request(review, policy)["tool_call"]["args"])
        terms = grant_blocks.parse_grant(values, names, policy.grants)
        return terms if isinstance(terms, dict) else (review, terms)

    # -- creating (called by Clicks) -------------------------------------------------------

    async def offer(self, review: ReviewRow, user: str, terms: GrantTerms) -> None:
        """With a quorum: ``user``'s terms go with their approval of this version."""
        await self.store.offer(review.ref, review.version, user, terms)

    async def create(
        self,
        claimed: ReviewRow,
        approvals: tuple[str, ...],
        click: Click,
        offer: GrantTerms | None,
    ) -> Grant | None:
        """After the claim: make the grant the approvals agreed to, if they did (see the
        module's docstring), and say so in the thread. A failure here is logged and told: the
        call's approval stands either way."""
        policy = self.deps.policy_of(claimed).policy
        if policy.grants is None:
            return None
        try:
            if policy.quorum <= 1:
                offers = {click.user: offer} if offer is not None else {}
            else:
                stored = await self.store.offers(claimed.ref, claimed.version)
                offers = {user: stored[user] for user in approvals if user in stored}
            if not offers:
                return None
            if len(offers) < policy.quorum:  # said in the thread: whoever offered may be away
                text = NOT_ENOUGH.format(quorum=policy.quorum, chose=len(offers))
                await self.deps.slack.say(thread_of(claimed), text)
                return None
            return await self._make(claimed, tuple(offers), combined(offers.values()))
        except Exception:
            log.exception("creating the standing approval of %s failed", claimed.ref)
            await self.effects.tell(
                "The call is approved, but I could not save the standing approval.",
                click,
                claimed,
            )
            return None

    async def _make(
        self, claimed: ReviewRow, creators: tuple[str, ...], terms: GrantTerms
    ) -> Grant | None:
        policy = self.deps.policy_of(claimed).policy
        args = current_request(claimed)["tool_call"]["args"]
        if claimed.edited_args is not None:
            args = claimed.edited_args
        constraints = constraints_of(args, terms.scope, policy.redact)
        request = claimed.request
        new = NewGrant(
            team_id=claimed.team_id,
            tool_name=claimed.tool_name,
            constraints=constraints,
            created_by=creators,
            terms=terms,
            channel_id=claimed.channel_id,
            thread_id=claimed.thread_id,
            interrupt_id=claimed.interrupt_id,
            tool_call_id=request["tool_call"]["id"],
            source_ref=claimed.ref,
        )
        shown = policy.redacted({name: args[name] for name in constraints})
        audit = AuditEvent(
            outcome="grant_created",
            thread_id=claimed.thread_id,
            interrupt_id=claimed.interrupt_id,
            tool_call_id=request["tool_call"]["id"],
            tool_name=claimed.tool_name,
            proposed_args=shown,
            requested_by=request.get("requested_by"),
            decided_by=creators[0],
            channel_id=claimed.channel_id,
            message_ts=claimed.message_ts,
            detail=(
                f"standing approval G{{grant}} by {', '.join(creators)}: at most {terms.uses} "
                f"uses for {grant_blocks.duration_words(terms.seconds)}, same "
                f"{', '.join(sorted(constraints)) or 'nothing (any arguments)'}"
            ),
        )
        grant = await self.store.create(new, audit)
        if grant is not None:
            text = grant_blocks.created_text(grant, shown, self._tool_name(grant.tool_name))
            await self.deps.slack.post(thread_of(claimed), grant_blocks.line_blocks(text), text)
        return grant

    # -- using (called by Turns) -----------------------------------------------------------

    async def run_granted(
        self, thread: SlackThread, ref: str, request: ReviewRequest, call: CallPolicy
    ) -> bool:
        """A call about to be shown for review: run it on a grant if one covers it. True if it
        was decided so (nothing more to show); False to review it as usual (also when the
        lookup fails: a grant only ever saves a review, it never decides by default)."""
        try:
            return await self._run_granted(thread, ref, request, call)
        except Exception:
            log.exception("could not check the standing approvals for %s", ref)
            row = await self.deps.storage.get(ref)
            return row is not None and row.status != "pending"

    async def _run_granted(
        self, thread: SlackThread, ref: str, request: ReviewRequest, call: CallPolicy
    ) -> bool:
        """Under the call's own policy (its rule's, when one matched): a rule may forbid
        grants, or ask more of their creators than the tool does."""
        tool, policy = request["tool_call"]["name"], call.policy
        if policy.grants is None:
            return False
        args = request["tool_call"]["args"]
        requesters = requesters_of(request)
        for grant in await self.store.candidates(tool, thread.team_id):
            if not matches(grant, tool, thread.team_id, args):
                continue
            approving = [
                u for u in grant.created_by if await self.deps.approvers.may_decide(call, u)
            ]
            why = refusal(grant, policy, requesters, approving)
            if why is not None:
                log.info("standing approval G%s does not cover %s: %s", grant.id, ref, why)
                continue
            used = await self.store.consume(grant.id)
            if used is not None:  # None: another replica took the last use, or it ended
                return await self._run(thread, ref, used)
        return False

    async def _approver(self, tool: str, user: str) -> bool:
        """Among the tool's own approvers (a grant outlives the call it came from)."""
        return await self.deps.approvers.may_decide(CallPolicy(self.deps.policy(tool)), user)

    async def _run(self, thread: SlackThread, ref: str, grant: Grant) -> bool:
        storage = self.deps.storage
        detail = grant_blocks.used_detail(grant)  # with the claim: the sweeper may finish it
        claimed = await storage.claim(ref, Approve(grant.created_by[0]), detail=detail)
        if not isinstance(claimed, ReviewRow):
            return False  # decided or expired meanwhile: the usual path says so
        await self._show_ran_under(thread, claimed, grant)
        async with storage.deciding(ref):
            await self.effects.apply(claimed)
        row = await storage.get(ref)
        return row is None or row.status != "pending"  # released: show it for review

    async def _show_ran_under(self, thread: SlackThread, claimed: ReviewRow, grant: Grant) -> None:
        """What runs, as a decided card would show it (redacted values masked), and on whose
        authority: the call is not reviewed, but it is seen."""
        shown = shown_request(claimed, self.deps.policy_of(claimed).policy)
        at = claimed.decided_at or datetime.now(UTC)
        verdict = Verdict("continue", grant.created_by[0], at, approvers=grant.created_by)
        text = grant_blocks.ran_under_text(grant)
        body = [*blocks.decided_blocks(shown, verdict), *grant_blocks.line_blocks(text)]
        await self.deps.slack.post(thread, body, text)

    # -- the App Home ----------------------------------------------------------------------

    def _tool_name(self, tool: str) -> str:
        known = self.deps.agent.mcp_tools.get(tool)
        return known[0] if known else tool

    async def may_revoke(self, grant: Grant, user: str) -> bool:
        """Its creators, and the tool's approvers."""
        return user in grant.created_by or await self._approver(grant.tool_name, user)

    async def home_blocks(self, user: str, notice: str | None = None) -> list[dict[str, Any]]:
        """The viewer's active grants (those they may revoke, from conversations they can
        see, redacted values masked); ``notice``: what their last click did."""
        shown: list[tuple[Grant, str, Mapping[str, Any]]] = []
        for grant in await self.store.active():
            if not await self.may_revoke(grant, user):
                continue
            if user not in grant.created_by and not await self.audience.can_see(
                grant.channel_id, user
            ):
                continue
            policy = self.deps.policy(grant.tool_name)
            shown.append((grant, self._tool_name(grant.tool_name), grant.shown_constraints(policy)))
        return grant_blocks.home_blocks(shown, notice)

    async def revoke(self, user: str, grant_id: int) -> str:
        """Revoke a grant (creators and the tool's approvers only); what to tell ``user``."""
        grant = await self.store.get(grant_id)
        if grant is None:
            return "I don't know that standing approval."
        if not await self.may_revoke(grant, user):
            return "Only its creators and the tool's approvers may revoke it."
        audit = AuditEvent(
            outcome="grant_revoked",
            thread_id=grant.thread_id,
            interrupt_id=grant.interrupt_id,
            tool_call_id=grant.tool_call_id,
            tool_name=grant.tool_name,
            proposed_args=grant.shown_constraints(self.deps.policy(grant.tool_name)),
            decided_by=user,
            channel_id=grant.channel_id,
            detail=f"standing approval G{{grant}} revoked ({grant.uses} of {grant.max_uses} used)",
        )
        revoked = await self.store.revoke(grant_id, user, audit)
        if revoked is None:
            return f"Standing approval G{grant_id} was already revoked."
        return f"Standing approval G{grant_id} is revoked: later calls need a review again."
