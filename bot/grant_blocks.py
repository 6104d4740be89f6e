"""Block Kit for standing approvals: the review card's extra button, the modal that sets a
grant's terms, the lines said in the conversation, and the App Home's list. Pure: every shape
is validated offline (``tests/test_grants.py``).

Arguments are shown as the review card shows them: redacted values masked (``[redacted]``), so
the modal and the Home never show a secret, though a grant may keep a redacted argument equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.blocks import when
from bot.grants import Grant, GrantTerms
from bot.mrkdwn import escape, show_value, truncate, user_mention
from bot.policy import GrantLimits

Block = dict[str, Any]
View = dict[str, Any]

GRANT_CALLBACK = "review_grant_submit"
REVOKE = "grant_revoke"
VALUE_ACTION = "value"
DURATION_BLOCK = "grant_duration"
USES_BLOCK = "grant_uses"
SCOPE_BLOCK = "grant_scope"
CHECKBOXES_AT_MOST = 10  # Slack's limit for checkboxes; more arguments use a multi-select
SCOPE_OPTIONS_AT_MOST = 100  # a multi-select's limit; arguments beyond it always stay equal
MAX_HOME_GRANTS = 15  # with the longest list of reviews (63 blocks), the Home stays within 100
_LADDER = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 604800, 2592000)


def duration_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def durations(limits: GrantLimits) -> list[float]:
    """The durations an approver may choose: a ladder up to the policy's maximum, and it."""
    top = limits.max_duration_seconds
    return sorted({float(s) for s in _LADDER if s < top} | {top})


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": False}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(text), "value": value}


def argument_option(index: int, name: str, value: Any) -> dict[str, Any]:
    """``name = value`` (the value as shown on the card: masked if redacted), by position."""
    return _option(f"same {name} = {show_value(value)}", str(index))


def grant_modal(
    tool: str, shown_args: Mapping[str, Any], ref: str, version: int, limits: GrantLimits
) -> View:
    """Approve this call and allow similar ones: how long, how many, which arguments stay.

    ``shown_args``: the call's arguments as the card shows them (redacted values masked), in
    the tool's order; the scope is read back by position against the same review version.
    """
    choices = [_option(duration_words(s), f"{s:g}") for s in durations(limits)]
    longest = choices[-1]
    names = list(shown_args)[:SCOPE_OPTIONS_AT_MOST]
    options = [argument_option(i, n, shown_args[n]) for i, n in enumerate(names)]
    blocks: list[Block] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": truncate(
                    f"Approve this `{escape(tool)}` call, and let later calls like it run "
                    "without a review, within the limits you set here. Four-eyes still "
                    "applies, and your standing approval can be revoked from my App Home.",
                    3000,
                ),
            },
        },
        {
            "type": "input",
            "block_id": DURATION_BLOCK,
            "label": _plain("For how long"),
            "element": {
                "type": "static_select",
                "action_id": VALUE_ACTION,
                "options": choices,
                "initial_option": longest if len(choices) == 1 else choices[0],
            },
        },
        {
            "type": "input",
            "block_id": USES_BLOCK,
            "label": _plain(f"How many later calls (at most {limits.max_uses})"),
            "element": {
                "type": "number_input",
                "action_id": VALUE_ACTION,
                "is_decimal_allowed": False,
                "min_value": "1",
                "max_value": str(limits.max_uses),
                "initial_value": str(limits.max_uses),
            },
        },
    ]
    if options:
        kind = "checkboxes" if len(options) <= CHECKBOXES_AT_MOST else "multi_static_select"
        element: Block = {"type": kind, "action_id": VALUE_ACTION, "options": options}
        element["initial_options"] = options
        blocks.append(
            {
                "type": "input",
                "block_id": SCOPE_BLOCK,
                "optional": True,
                "label": _plain("Which arguments must stay the same"),
                "element": element,
            }
        )
        more = len(shown_args) - len(names)
        note = "Arguments left unticked may differ in later calls."
        if more > 0:
            note += f" The other {more} arguments must stay the same."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {
        "type": "modal",
        "callback_id": GRANT_CALLBACK,
        "private_metadata": f"{ref} {version}",
        "title": _plain("Allow similar calls", 24),
        "submit": _plain("Approve", 24),
        "close": _plain("Cancel", 24),
        "blocks": blocks,
    }


def parse_metadata(metadata: Any) -> tuple[str, int] | None:
    """The review ref and version a grant modal was opened for."""
    if not isinstance(metadata, str):
        return None
    ref, _, version = metadata.partition(" ")
    return (ref, int(version)) if ref and version.isdigit() else None


def _entry(values: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    entry = (values.get(block) or {}).get(VALUE_ACTION)
    return entry if isinstance(entry, Mapping) else {}


def parse_grant(
    values: Mapping[str, Any], names: Sequence[str], limits: GrantLimits
) -> GrantTerms | dict[str, str]:
    """The terms submitted, checked against the policy (never trusting the form's own
    limits); or errors by block id. ``names``: the call's argument names, in order."""
    errors: dict[str, str] = {}
    chosen = (_entry(values, DURATION_BLOCK).get("selected_option") or {}).get("value")
    allowed = {f"{s:g}": s for s in durations(limits)}
    seconds = allowed.get(chosen) if isinstance(chosen, str) else None
    if seconds is None:
        errors[DURATION_BLOCK] = f"Choose at most {duration_words(limits.max_duration_seconds)}."
    raw = _entry(values, USES_BLOCK).get("value")
    uses = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else 0
    if not 1 <= uses <= limits.max_uses:
        errors[USES_BLOCK] = f"A whole number from 1 to {limits.max_uses}."
    picked = _entry(values, SCOPE_BLOCK).get("selected_options") or []
    offered = list(names)[:SCOPE_OPTIONS_AT_MOST]
    scope = {
        offered[int(o["value"])]
        for o in picked
        if isinstance(o, Mapping)
        and str(o.get("value", "")).isdigit()
        and int(o["value"]) < len(offered)
    }
    scope |= set(list(names)[SCOPE_OPTIONS_AT_MOST:])
    if errors or seconds is None:
        return errors
    return GrantTerms(seconds, uses, frozenset(scope))


# -- said in the conversation ----------------------------------------------------------------


def _people(users: Sequence[str]) -> str:
    mentions = [user_mention(u) for u in users]
    return mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]


def scope_text(shown: Mapping[str, Any]) -> str:
    """The constraints as one escaped line: ``channel = #general, token = [redacted]``."""
    if not shown:
        return "any arguments"
    text = ", ".join(f"{name} = {show_value(value)}" for name, value in shown.items())
    return escape(truncate(text, 1500))


def created_text(grant: Grant, shown: Mapping[str, Any], tool: str) -> str:
    return (
        f":repeat: Standing approval G{grant.id} by {_people(grant.created_by)}: later "
        f"`{escape(tool)}` calls with {scope_text(shown)} run without a review until "
        f"{when(grant.expires_at)}, at most {grant.max_uses} "
        f"time{'s' if grant.max_uses != 1 else ''}. Revoke it from my App Home."
    )


def ran_under_text(grant: Grant) -> str:
    """The line shown where a call ran on a grant's authority."""
    return (
        f":repeat: Ran under standing approval G{grant.id} by {_people(grant.created_by)}, "
        f"{grant.left} of {grant.max_uses} uses left."
    )


def line_blocks(text: str) -> list[Block]:
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 3000)}]}]


def used_detail(grant: Grant) -> str:
    """The audit trail's detail of a call approved by a grant."""
    return (
        f"standing approval G{grant.id} by {', '.join(grant.created_by)} "
        f"(use {grant.uses} of {grant.max_uses})"
    )


# -- the App Home ----------------------------------------------------------------------------

HOME_HEADING = "Standing approvals"


def home_blocks(
    grants: Sequence[tuple[Grant, str, Mapping[str, Any]]], notice: str | None = None
) -> list[Block]:
    """Active grants the viewer may revoke (``(grant, tool as people read it, constraints as
    shown)``), each with *Revoke*; nothing when there are none and nothing to tell. At most 34
    blocks."""
    if not grants and not notice:
        return []
    blocks: list[Block] = [
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": HOME_HEADING}},
    ]
    if notice:
        blocks.extend(line_blocks(escape(notice)))
    for grant, tool, shown in grants[:MAX_HOME_GRANTS]:
        head = f"*G{grant.id}* `{escape(truncate(tool, 80))}` with {scope_text(shown)}"
        blocks.append(
            {
                "type": "section",
                "block_id": f"grant:{grant.id}",
                "text": {"type": "mrkdwn", "text": truncate(head, 3000)},
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Revoke"},
                    "action_id": REVOKE,
                    "value": str(grant.id),
                    "style": "danger",
                    "confirm": {
                        "title": _plain("Revoke this approval?", 100),
                        "text": _plain("Later calls will need a review again.", 300),
                        "confirm": _plain("Revoke", 30),
                        "deny": _plain("Keep it", 30),
                    },
                },
            }
        )
        about = (
            f"By {_people(grant.created_by)} · {grant.left} of {grant.max_uses} uses left · "
            f"until {when(grant.expires_at)}"
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": about}]})
    if len(grants) > MAX_HOME_GRANTS:
        more = f"…and {len(grants) - MAX_HOME_GRANTS} more."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return blocks
