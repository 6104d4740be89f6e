"""The review card's word on which policy rule a call is reviewed under (one context line)."""

from __future__ import annotations

from bot.mrkdwn import escape
from bot.policy_rules import CallPolicy


def policy_line(call: CallPolicy) -> str | None:
    """``Policy: refund over 1,000 (rule 1)``, in mrkdwn (the names come from the policy file,
    escaped like any text); None for a tool without rules, whose card stays as it was. A
    review that failed closed says so first, so the reviewer knows why the terms are strict."""
    if not call.has_rules:
        return None
    if call.failed:
        return f":warning: Policy: {escape(call.label)}"
    return f"Policy: {escape(call.label)}"
