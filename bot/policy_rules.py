"""Rules on arguments: per tool, an ordered list of conditions, each with the policy it applies.

A tool table (or an MCP pattern table) of the policy file may hold ``[[tools.<name>.rules]]``
entries: ``when`` (a CEL condition over ``args``, ``tool``, ``requester``, ``channel`` and
``time``), an optional ``name`` (default "rule N of tool T") and any setting a tool table takes,
which overrides the tool's resolved policy when the condition holds. The first rule that holds
applies; if none does, the tool's own policy does.

Conditions are compiled with ``cel-python`` and type-checked at start-up against the tool's
argument schema (:mod:`bot.cel_check`), so a typo stops the bot naming the file and line. A
condition that still fails when a call arrives (a missing optional argument, a value of an
unexpected type) **fails closed**: the review gets :func:`strictest` of the tool's policy and
every one of its rules, and says so on the card and in the audit trail.

One review, one policy: the rule is chosen once, when the review is registered, and stored with
the review row (:meth:`CallPolicy.stored`); every later step (clicks, modals, quorum, expiry,
reminders, App Home) rebuilds the policy from that record, never by evaluating ``time`` anew.
An Edit changes the arguments, so the edited arguments are resolved too (at the review's
creation time) and, if they fall under another rule, the review is governed by **both**
(:func:`conjoined`): a decider must satisfy each, so an edit can never move a call to laxer
terms than the ones it was proposed under, nor avoid the terms of what will now run.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Token, Tree

from bot.cel_check import CelType, CelTypeError, check

if TYPE_CHECKING:
    from bot.policy import ToolPolicy

log = logging.getLogger(__name__)

_ENVIRONMENT = celpy.Environment()
"""The interpreted runner: ``CompiledRunner`` is faster (~0.09 ms against ~0.6 ms a condition)
but writes "Internal error" to stderr on every evaluation error, which here is a normal,
fail-closed event."""


class ConditionError(ValueError):
    """A condition that does not parse or does not type-check (the words, without a place)."""


def compile_condition(text: str) -> Tree[Token]:
    """Parse a CEL condition; :class:`ConditionError` in plain words if it does not parse."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError('when must be a CEL condition, e.g. when = "args.amount > 1000"')
    try:
        tree: Tree[Token] = _ENVIRONMENT.compile(text)
    except CELParseError as error:
        caret = next((line for line in str(error).splitlines() if line.strip() == "^"), None)
        at = f" at column {caret.index('^') + 1}" if caret else ""
        raise ConditionError(f"cannot parse the condition {text!r}{at}") from None
    return tree


def program_for(tree: Tree[Token]) -> Any:
    """A runnable condition (built once, at load)."""
    return _ENVIRONMENT.program(tree)


@dataclass(frozen=True)
class Rule:
    """One ``[[tools.<table>.rules]]`` entry, checked for syntax (types: :meth:`type_check`)."""

    table: str
    index: int
    """Its place in the table's list, from 1."""
    name: str
    when: str
    tree: Tree[Token] = dataclasses.field(repr=False)
    where: str
    """``file, line N`` of its ``when``, for errors."""
    apply: Callable[[ToolPolicy], ToolPolicy] = dataclasses.field(repr=False)
    """Its settings over a tool's resolved policy (parsed by the tool tables' own parser)."""
    program: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return rule_label(self.name, self.index, self.table)

    def type_check(self, args: CelType, tool: str) -> None:
        try:
            check(self.tree, args, tool)
        except CelTypeError as error:
            raise ConditionError(f"{self.where}: {error}") from None

    def holds(self, activation: Mapping[str, Any]) -> bool:
        """Whether the condition holds; :class:`RuleFailed` if it cannot be evaluated."""
        program = self.program or program_for(self.tree)
        try:
            result = program.evaluate(dict(activation))
        except Exception as error:
            raise RuleFailed(self, _why(error)) from None
        if isinstance(result, CELEvalError):
            raise RuleFailed(self, _why(result))
        if not isinstance(result, celtypes.BoolType):
            raise RuleFailed(self, f"it gave a {type(result).__name__}, not true or false")
        return bool(result)


def default_name(index: int, table: str) -> str:
    return f"rule {index} of tool {table}"


def rule_label(name: str, index: int | None, table: str | None = None) -> str:
    """``refund over 1,000 (rule 1)``; a default name already says its place."""
    if index is None or name.startswith(f"rule {index} of tool "):
        return name
    return f"{name} (rule {index})"


class RuleFailed(Exception):
    def __init__(self, rule: Rule, why: str) -> None:
        super().__init__(f"{rule.label} could not be evaluated: {why}")
        self.rule = rule


def _why(error: BaseException) -> str:
    """What went wrong, without values: a message that quoted arguments could show a redacted
    one on the card. A missing key is named (keys are the schema's, not secrets)."""
    nested: Any = error
    while isinstance(nested, CELEvalError) and len(nested.args) > 2:
        kind, inner = nested.args[1], nested.args[2]
        if kind is KeyError:
            quoted = re.search(r"'([^']*)'", str(nested.args[0]))
            return f"no argument or key {quoted.group(1)!r}" if quoted else "a missing key"
        if kind is TypeError:
            return "a value has a type the condition does not expect"
        if kind is ZeroDivisionError:
            return "division by zero"
        if kind is CELEvalError and inner:
            nested = CELEvalError(*inner)
            continue
        break
    return "the condition failed to evaluate"


def activation(
    args: Mapping[str, Any],
    tool: str,
    requester: str | None,
    channel: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The variables a condition sees; a missing requester or channel is the empty string."""
    return {
        "args": json_to_cel(dict(args)),
        "tool": celtypes.StringType(tool),
        "requester": celtypes.StringType(requester or ""),
        "channel": celtypes.StringType(channel or ""),
        "time": celtypes.TimestampType(now.astimezone(UTC)),
    }


# -- the resolved policy of one call --------------------------------------------------------


@dataclass(frozen=True)
class CallPolicy:
    """The policy one call is reviewed under, and why.

    ``approver_sets``: a decider must be allowed by each (None in it: anyone). One set normally
    (the policy's ``approvers``); several when the call failed closed or an edit moved it under
    another rule.
    """

    policy: ToolPolicy
    rule: str | None = None
    """The matched rule's name; None: the tool's own policy."""
    index: int | None = None
    failed: str | None = None
    """Why no rule could be chosen (the review failed closed to :func:`strictest`)."""
    has_rules: bool = False
    """Whether the tool has rules at all (a card names the policy only then)."""
    approver_sets: tuple[frozenset[str] | None, ...] = ()
    edited: str | None = None
    """The rule an edit brought in, when it differs (see :func:`conjoined`)."""

    @property
    def approver_conditions(self) -> tuple[frozenset[str] | None, ...]:
        return self.approver_sets or (self.policy.approvers,)

    @property
    def label(self) -> str:
        """The policy in words, for the card and the audit trail."""
        if self.failed:
            base = f"strictest of every rule (failed closed: {self.failed})"
        elif self.rule is not None:
            base = rule_label(self.rule, self.index)
        else:
            base = "the tool's defaults (no rule matched)"
        return f"{base}; after the edit also {self.edited}" if self.edited else base

    def stored(self) -> dict[str, Any]:
        """What the review row keeps, to rebuild this policy later (``policy_match``)."""
        return {"rule": self.rule, "index": self.index, "failed": self.failed}


STRICTER: dict[str, Callable[[Sequence[Any]], Any]] = {
    "mode": lambda values: "review",
    "four_eyes": any,
    "quorum": max,
    "ttl_seconds": min,
    "redact": lambda values: frozenset().union(*values),
}
"""How several policies combine into the strictest, per :class:`ToolPolicy` field.
``approvers`` is not combined here: each set must admit the decider
(:attr:`CallPolicy.approver_sets`); ``remind_before_seconds`` follows the shortest ttl. A field
without an entry (a setting added since) takes, when a review fails closed, its default (what
a tool nobody configured has), so it can never loosen the strictest policy; after an edit, the
value of the policy the review was created under. A new setting that knows better registers
its combination here."""


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return dataclasses.MISSING


def combined(parts: Sequence[ToolPolicy], *, four_eyes: bool = False) -> ToolPolicy:
    """The field-wise strictest of ``parts`` (see :data:`STRICTER`); ``four_eyes``: failing
    closed (four-eyes forced on, unknown fields at their defaults)."""
    first = parts[0]
    changes: dict[str, Any] = {}
    for spec in dataclasses.fields(first):
        combine = STRICTER.get(spec.name)
        if combine is not None:
            changes[spec.name] = combine([getattr(p, spec.name) for p in parts])
        elif four_eyes and spec.name not in ("approvers", "remind_before_seconds"):
            default = _default(spec)
            if default is not dataclasses.MISSING:
                changes[spec.name] = default
    shortest = min(parts, key=lambda p: p.ttl_seconds)
    changes["remind_before_seconds"] = shortest.remind_before_seconds
    approvers = [p.approvers for p in parts if p.approvers is not None]
    changes["approvers"] = approvers[0] if approvers else None
    if four_eyes:
        changes["four_eyes"] = True
    return dataclasses.replace(first, **changes)


def _sets(parts: Sequence[CallPolicy | ToolPolicy]) -> tuple[frozenset[str] | None, ...]:
    found: list[frozenset[str] | None] = []
    for part in parts:
        for allowed in (
            part.approver_conditions if isinstance(part, CallPolicy) else (part.approvers,)
        ):
            if allowed is not None and allowed not in found:
                found.append(allowed)
    return tuple(found)


def strictest(base: ToolPolicy, rules: Sequence[Rule], why: str) -> CallPolicy:
    """Fail closed: the tool's policy and every rule's, combined. Mode review; four-eyes on;
    the highest quorum; the shortest ttl (with its reminder); every redaction; and a decider
    must be allowed by the approvers of the tool *and* of every rule that names approvers (if
    nobody is, nobody can approve: the review expires, running nothing)."""
    parts = [base, *(rule.apply(base) for rule in rules)]
    return CallPolicy(
        combined(parts, four_eyes=True),
        failed=why,
        has_rules=bool(rules),
        approver_sets=_sets(parts),
    )


def resolve(base: ToolPolicy, rules: Sequence[Rule], variables: Mapping[str, Any]) -> CallPolicy:
    """The first rule that holds, else the tool's policy; a failing condition fails closed."""
    for rule in rules:
        try:
            held = rule.holds(variables)
        except RuleFailed as failure:
            log.warning("policy %s; the review uses the strictest policy", failure)
            return strictest(base, rules, str(failure))
        if held:
            return CallPolicy(rule.apply(base), rule.name, rule.index, has_rules=True)
    return CallPolicy(base, has_rules=bool(rules))


def restored(base: ToolPolicy, rules: Sequence[Rule], stored: Mapping[str, Any]) -> CallPolicy:
    """The policy a review was registered under, from its ``policy_match`` record. A rule that
    is no longer in the file (renamed or removed since) fails closed."""
    if stored.get("failed"):
        return strictest(base, rules, str(stored["failed"]))
    name = stored.get("rule")
    if name is None:
        return CallPolicy(base, has_rules=bool(rules))
    rule = next((r for r in rules if r.name == name), None)
    if rule is None:
        return strictest(base, rules, f"the rule {name!r} is no longer in the policy file")
    return CallPolicy(rule.apply(base), rule.name, rule.index, has_rules=True)


def conjoined(created: CallPolicy, edited: CallPolicy) -> CallPolicy:
    """An edit that moved the call under other terms: both apply (see the module's doc). The
    expiry is not moved: it was set when the review was registered."""
    if (created.rule, created.failed) == (edited.rule, edited.failed):
        return created
    policy = combined([created.policy, edited.policy], four_eyes=False)
    return dataclasses.replace(
        created,
        policy=policy,
        approver_sets=_sets([created, edited]),
        failed=created.failed or edited.failed,
        edited=edited.label,
    )
