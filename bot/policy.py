"""Who may approve what, and on which terms: the policy file.

A TOML file (``POLICY_FILE``) sets, per tool and by default: review or auto-approve, approvers
(users and user groups), four-eyes (the requester may not approve their own call), a quorum of
distinct approvals, a time to live after which the review expires (failing closed), a reminder
before expiry, and arguments to redact. It is validated at start-up; every error names its line.
A tool table may also hold rules on arguments (``[[tools.<name>.rules]]``, CEL conditions, the
first that holds applies): :mod:`bot.policy_rules`; one call's policy is :meth:`Policy.for_call`.

Precedence, where other settings speak about the same thing (README "Policy"):

- ``mode``: review wins. ``mode = "review"`` written in the file (in ``[tools.<name>]``, or in
  ``[defaults]`` for the tools the file does not give a mode of their own) can never be lifted
  by ``AGENT_AUTO_APPROVE`` or a module's ``REVIEW_POLICY``; see :mod:`graph.tools.registry`.
  ``mode = "auto"`` is accepted per tool only: a default of auto would run every tool,
  including ones added later, unreviewed.
- ``approvers``: the ``APPROVERS`` shorthand only fills tools whose approvers the file leaves
  unset (neither their table nor ``[defaults]`` names any); an entry the file already decides
  is a conflict that stops the start, naming both.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bot.cel_check import DYN, from_json_schema
from bot.mcp_config import McpConfigError, McpServerConfig, parse_server
from bot.policy_rules import (
    CallPolicy,
    ConditionError,
    Rule,
    activation,
    compile_condition,
    conjoined,
    default_name,
    program_for,
    resolve,
    restored,
)
from graph.tools.mcp import McpServerSpec, is_destructive
from graph.types import ModeRule

Mode = Literal["review", "auto"]
DAY = 24 * 3600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class GrantLimits:
    """``grants = { max_duration = "1h", max_uses = 10 }``: the most an approver may allow when
    they approve a call *and* similar later calls (a standing approval, :mod:`bot.grants`)."""

    max_duration_seconds: float
    max_uses: int


@dataclass(frozen=True)
class ToolPolicy:
    mode: Mode = "review"
    approvers: frozenset[str] | None = None  # None: anyone who can see the review
    four_eyes: bool = False
    quorum: int = 1
    ttl_seconds: float = DAY
    remind_before_seconds: float | None = None
    redact: frozenset[str] = frozenset()
    channel: str | None = None
    """Where every review of the tool is posted (a ``#name`` or a channel id), with links
    between it and the conversation (``bot.routing``); None: in the conversation."""
    review_channel: str | None = None
    """Where a review from a DM goes when its requester may not decide it (not an approver, or
    four-eyes): in the DM, nobody who may decide would see it."""
    escalate_after_seconds: float | None = None
    """After this long undecided, ``escalate_to`` is pinged in the card's thread and may decide."""
    escalate_to: frozenset[str] = frozenset()
    """Users (``U…``/``W…``) and user groups (``S…``) who join the approvers on escalation."""
    grants: GrantLimits | None = None
    """None: no standing approvals for this tool (every call is reviewed on its own)."""

    def redacted(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {k: ("[redacted]" if k in self.redact else v) for k, v in args.items()}


@dataclass(frozen=True)
class Policy:
    defaults: ToolPolicy = field(default_factory=ToolPolicy)
    tools: Mapping[str, ToolPolicy] = field(default_factory=dict)
    written: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The settings each table of the file writes itself: per tool, and ``"*"`` for
    ``[defaults]`` (the rest a tool table inherits), so precedence can name the line."""
    mcp: Mapping[str, McpServerConfig] = field(default_factory=dict)
    """``[mcp.servers.<name>]``: the MCP servers to connect to, by name."""
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    """``[[tools.<name>.rules]]``, per table (and per MCP tool once :meth:`with_mcp_tools`
    has run), in file order: see :mod:`bot.policy_rules`."""
    readable: Mapping[str, str] = field(default_factory=dict)
    """Model name -> the name people read (``server.tool``), the ``tool`` of a condition."""

    @property
    def mcp_servers(self) -> tuple[McpServerSpec, ...]:
        return tuple(server.spec for server in self.mcp.values())

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values the servers' ``env`` and ``headers`` read from the environment."""
        return tuple(value for server in self.mcp.values() for value in server.secrets)

    def with_mcp_tools(self, catalog: Mapping[str, tuple[str, Mapping[str, Any]]]) -> Policy:
        """A copy with a concrete entry per MCP tool (``catalog``: model name -> (``server.tool``,
        hints)), so :meth:`for_tool` answers for the names the agent uses.

        A tool takes the table naming it (``server.tool``, or the model's ``server__tool``),
        else the first table (in file order) whose pattern matches it, else ``[defaults]``. A
        destructive tool of a server with ``destructive_quorum`` needs at least that many
        approvals, unless its own table writes a ``quorum``: what the file states for a tool
        beats what a hint suggests.
        """
        tools = dict(self.tools)
        rules = dict(self.rules)
        for name, (readable, hints) in catalog.items():
            table = name if name in self.tools else self._table_for(readable)
            policy = self.tools[table] if table else self.defaults
            if table and table in self.rules:
                rules[name] = self.rules[table]
            server = self.mcp.get(readable.split(".", 1)[0])
            quorum = server.destructive_quorum if server else None
            if (
                quorum
                and is_destructive(hints)
                and "quorum" not in self.written.get(table or "", ())
            ):
                policy = replace(policy, quorum=max(policy.quorum, quorum))
            tools[name] = policy
        names = {name: readable for name, (readable, _) in catalog.items()}
        return replace(self, tools=tools, rules=rules, readable={**self.readable, **names})

    def _table_for(self, readable: str) -> str | None:
        if readable in self.tools:
            return readable
        patterns = (n for n in self.tools if _is_pattern(n) and fnmatch.fnmatchcase(readable, n))
        return next(patterns, None)

    def for_tool(self, name: str) -> ToolPolicy:
        """The tool's own policy, before its rules (see :meth:`for_call` for one call's)."""
        return self.tools.get(name, self.defaults)

    def for_call(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        requester: str | None = None,
        channel: str | None = None,
        now: datetime | None = None,
    ) -> CallPolicy:
        """The policy of one call: the first of the tool's rules whose condition holds, else
        the tool's own; a condition that cannot be evaluated fails closed (the strictest
        policy, :func:`bot.policy_rules.strictest`). Resolve once per review (see
        :meth:`for_stored`): ``time`` moves on."""
        rules = self.rules.get(name, ())
        if not rules:  # the common case: nothing to evaluate
            return CallPolicy(self.for_tool(name))
        variables = activation(
            args, self.readable.get(name, name), requester, channel, now or datetime.now(UTC)
        )
        return resolve(self.for_tool(name), rules, variables)

    def for_stored(
        self,
        name: str,
        stored: Mapping[str, Any] | None,
        args: Mapping[str, Any],
        *,
        requester: str | None,
        channel: str | None,
        created: datetime | None,
    ) -> CallPolicy:
        """The policy a registered review was created under, from what its row stored
        (``stored``: :meth:`CallPolicy.stored`); a row from before rules were stored is
        resolved from its own facts, at the time it was created."""
        if stored is not None:
            return restored(self.for_tool(name), self.rules.get(name, ()), stored)
        return self.for_call(name, args, requester=requester, channel=channel, now=created)

    def for_review(
        self,
        name: str,
        stored: Mapping[str, Any] | None,
        args: Mapping[str, Any],
        changed: Mapping[str, Any] | None,
        *,
        requester: str | None,
        channel: str | None,
        created: datetime | None,
    ) -> CallPolicy:
        """The one policy of a registered review: the rule it was created under, and, when
        its arguments were edited (``changed``), the rule of the edited arguments too, both
        applying (:func:`bot.policy_rules.conjoined`). Edited arguments are resolved at the
        review's creation time, so every step that asks gets the same answer."""
        facts: dict[str, Any] = {"requester": requester, "channel": channel}
        first = self.for_stored(name, stored, args, created=created, **facts)
        if changed is None or not first.has_rules or dict(changed) == dict(args):
            return first
        return conjoined(first, self.for_call(name, changed, now=created, **facts))

    def redacts(self, name: str) -> frozenset[str]:
        """Every argument any of the tool's policies (its own, its rules') redacts: where the
        call is not known (a tool's result, a reply), mask them all."""
        base = self.for_tool(name)
        return base.redact.union(*(rule.apply(base).redact for rule in self.rules.get(name, ())))

    def check_auto_rules(self, sources: Mapping[str, str]) -> None:
        """Review wins: a rule's ``mode = "auto"`` may refine the file's own word on a tool,
        but never lift a review another source asks for (a module's ``REVIEW_POLICY``);
        such a rule stops the start, naming both (``sources``: the agent's review sources)."""
        problems = [
            f'{rule.where}: mode = "auto" cannot lift the review {source} asks for '
            "(review wins; remove one of the two)"
            for name, rules in self.rules.items()
            for source in [sources.get(name)]
            if source is not None and not source.startswith("policy file ")
            for rule in rules
            if rule.apply(self.for_tool(name)).mode == "auto"
        ]
        if problems:
            raise PolicyError("\n".join(dict.fromkeys(problems)))

    def check_rules(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        """Type-check every rule's condition against its tool's argument schema (a table no
        known tool has, e.g. an MCP pattern while its server is down: against open arguments,
        which still catches unknown variables and functions). All errors are named at once,
        each with its file and line."""
        errors: list[str] = []
        for name, rules in self.rules.items():
            schema = schemas.get(name)
            args = from_json_schema(schema) if schema is not None else DYN
            for rule in rules:
                try:
                    rule.type_check(args, self.readable.get(name, name))
                except ConditionError as error:
                    errors.append(str(error))
        if errors:
            raise PolicyError("\n".join(dict.fromkeys(errors)))

    def mode_rules(self, source: str) -> tuple[ModeRule, ...]:
        """The file's word on review, for the tool registry, each naming its line's table."""
        written = tuple(
            ModeRule(name, mode, f'policy file {source} {_table(name)} mode = "{mode}"')
            for name, keys in self.written.items()
            if "mode" in keys
            for mode in [(self.defaults if name == "*" else self.for_tool(name)).mode]
        )
        return written + self._rules_mode(source)

    def _rules_mode(self, source: str) -> tuple[ModeRule, ...]:
        """A tool with rules is reviewed by the agent whenever any of its policies (its own,
        a rule's) says review: which one applies is decided per call, by the bot, which
        answers a call whose rule says ``auto`` itself (``bot.turns``)."""
        found = []
        for name, rules in self.rules.items():
            if name in self.readable:
                continue  # an MCP tool's copy of its table's rules
            base = self.for_tool(name)
            if "review" in {base.mode, *(rule.apply(base).mode for rule in rules)}:
                source_words = f"policy file {source} {_table(name)} rules (decided per call)"
                found.append(ModeRule(name, "review", source_words))
        return tuple(found)

    def check_tools(self, known: Iterable[str], source: str = "policy") -> None:
        """Every tool table must name a tool; a ``server.tool`` name or a pattern must name a
        configured MCP server (whose tools may be missing while it is down)."""
        unknown = sorted(
            name for name in set(self.tools) - set(known) if _server_of(name) not in self.mcp
        )
        if unknown:
            raise PolicyError(
                f"{source}: no tool named {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )

    def with_approvers(
        self, approvers: Mapping[str, frozenset[str]], source: str = "policy"
    ) -> Policy:
        """Apply the ``APPROVERS`` shorthand: it fills in the tools whose approvers the file
        leaves unset, and only those.

        ``tool=...`` sets that tool's approvers; ``*=...`` those of every other tool. An entry
        the file already decides (the tool's table or ``[defaults]`` names approvers) would be
        ignored or would replace the file's choice, so it is refused, naming both places.
        """
        conflicts = [self._approvers_conflict(name, source) for name in approvers if name != "*"]
        if "*" in approvers and self.defaults.approvers is not None:
            conflicts.append(
                f"APPROVERS entry '*' would change nothing: {source} [defaults] approvers "
                "already decides who approves every tool"
            )
        problems = [c for c in conflicts if c]
        if problems:
            raise PolicyError("; ".join(problems) + " (keep one of the two)")
        every = approvers.get("*")
        defaults = self.defaults if every is None else replace(self.defaults, approvers=every)
        tools = {
            name: tool if tool.approvers is not None else replace(tool, approvers=every)
            for name, tool in self.tools.items()
        }
        for name, members in approvers.items():
            if name != "*":
                tools[name] = replace(tools.get(name, defaults), approvers=members)
        return replace(self, defaults=defaults, tools=tools)

    def _approvers_conflict(self, name: str, source: str) -> str | None:
        if self.for_tool(name).approvers is None:
            return None
        table = _table(name if "approvers" in self.written.get(name, ()) else "*")
        return f"APPROVERS entry {name!r} conflicts with {source} {table} approvers"


def _table(name: str) -> str:
    if name == "*":
        return "[defaults]"
    return f'[tools."{name}"]' if "." in name or _is_pattern(name) else f"[tools.{name}]"


def _server_of(name: str) -> str | None:
    """The MCP server a table may name while it is down: ``server.tool``, a pattern of that,
    or the model's ``server__tool``; None for other names."""
    for separator in (".", "__"):
        if separator in name:
            return name.split(separator, 1)[0]
    return None


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


_KEYS = {
    "mode",
    "approvers",
    "four_eyes",
    "quorum",
    "ttl",
    "remind_before",
    "redact",
    "channel",
    "review_channel",
    "escalate_after",
    "escalate_to",
    "grants",
}
MAX_GRANT_USES = 1000
_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,})$")


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise PolicyError(f'{where}: a duration like "30m", "24h" or "7d" (got {value!r})')
    return float(match.group(1)) * _UNITS[match.group(2)]


def _line_of(text: str, table: str | tuple[str, ...], key: str | None) -> int | None:
    """The line where ``[table]`` (or ``key`` inside it) is written, for error messages;
    ``table`` as a tuple gives its parts, each possibly quoted in the file."""
    lines = text.splitlines()
    parts = table if isinstance(table, tuple) else tuple(table.split("."))
    dotted = r"\s*\.\s*".join(f"[\"']?{re.escape(part)}[\"']?" for part in parts)
    header = re.compile(rf"^\s*\[\s*{dotted}\s*\]")
    for number, line in enumerate(lines, start=1):
        if header.match(line):
            if key is None:
                return number
            for offset, inner in enumerate(lines[number:], start=number + 1):
                if re.match(r"^\s*\[", inner):
                    break
                if re.match(rf"^\s*{re.escape(key)}\s*=", inner):
                    return offset
            return number
    return None


def _tool_policy(
    raw: Mapping[str, Any], base: ToolPolicy, where: str, locate: Any, is_defaults: bool = False
) -> ToolPolicy:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a table of settings")
    for key in raw:
        if key not in _KEYS:
            raise PolicyError(
                f"{locate(key)}: unknown setting {key!r} (use: {', '.join(sorted(_KEYS))})"
            )
    policy = base
    if "mode" in raw:
        if raw["mode"] not in ("review", "auto"):
            raise PolicyError(f'{locate("mode")}: mode must be "review" or "auto"')
        if raw["mode"] == "auto" and is_defaults:
            raise PolicyError(
                f'{locate("mode")}: mode = "auto" belongs in a [tools.<name>] table; as a '
                "default it would run every tool, including ones added later, unreviewed"
            )
        policy = replace(policy, mode=raw["mode"])
    if "approvers" in raw:
        ids = raw["approvers"]
        if not isinstance(ids, list) or not all(isinstance(i, str) and _ID.match(i) for i in ids):
            raise PolicyError(
                f"{locate('approvers')}: approvers must be a list of Slack user "
                "ids (U..., W...) or user group ids (S...)"
            )
        policy = replace(policy, approvers=frozenset(ids))
    if "four_eyes" in raw:
        if not isinstance(raw["four_eyes"], bool):
            raise PolicyError(f"{locate('four_eyes')}: four_eyes must be true or false")
        policy = replace(policy, four_eyes=raw["four_eyes"])
    if "quorum" in raw:
        quorum = raw["quorum"]
        if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= 10:
            raise PolicyError(f"{locate('quorum')}: quorum must be a whole number from 1 to 10")
        policy = replace(policy, quorum=quorum)
    if "ttl" in raw:
        policy = replace(policy, ttl_seconds=parse_duration(raw["ttl"], locate("ttl")))
    if "remind_before" in raw:
        policy = replace(
            policy,
            remind_before_seconds=parse_duration(raw["remind_before"], locate("remind_before")),
        )
    if "redact" in raw:
        names = raw["redact"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{locate('redact')}: redact must be a list of argument names")
        policy = replace(policy, redact=frozenset(names))
    if "grants" in raw:
        policy = replace(policy, grants=_grant_limits(raw["grants"], locate("grants")))
    return _routing_and_escalation(raw, policy, locate)


def _channel(raw: Mapping[str, Any], key: str, locate: Any) -> str:
    value = raw[key]
    if not isinstance(value, str) or not _CHANNEL.match(value):
        raise PolicyError(
            f'{locate(key)}: {key} must be a channel name like "#finance-approvals" '
            f"or a channel id (C..., G...), got {value!r}"
        )
    return value


def _routing_and_escalation(raw: Mapping[str, Any], policy: ToolPolicy, locate: Any) -> ToolPolicy:
    """``channel`` and ``review_channel`` (README "Routing"), then the escalation."""
    if "channel" in raw:
        policy = replace(policy, channel=_channel(raw, "channel", locate))
    if "review_channel" in raw:
        policy = replace(policy, review_channel=_channel(raw, "review_channel", locate))
    return _escalation(raw, policy, locate)


def _escalation(raw: Mapping[str, Any], policy: ToolPolicy, locate: Any) -> ToolPolicy:
    """``escalate_after`` and ``escalate_to`` (README "Escalation"), checked together on the
    table's result (what it writes and what it inherits): neither goes without the other, and
    an escalation due at or after the expiry would never happen."""
    if "escalate_to" in raw:
        ids = raw["escalate_to"]
        if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
            raise PolicyError(
                f"{locate('escalate_to')}: escalate_to must be a non-empty list of Slack user "
                "ids (U..., W...) or user group ids (S...)"
            )
        policy = replace(policy, escalate_to=frozenset(ids))
    if "escalate_after" in raw:
        after = parse_duration(raw["escalate_after"], locate("escalate_after"))
        policy = replace(policy, escalate_after_seconds=after)
    due = policy.escalate_after_seconds
    if due is not None and not policy.escalate_to:
        raise PolicyError(f"{locate('escalate_after')}: escalate_after needs escalate_to (whom)")
    if policy.escalate_to and due is None:
        raise PolicyError(f"{locate('escalate_to')}: escalate_to needs escalate_after (when)")
    if due is not None and due >= policy.ttl_seconds and raw.keys() & {"escalate_after", "ttl"}:
        raise PolicyError(
            f"{locate('escalate_after')}: escalate_after must be shorter than ttl, or the "
            "review expires before anyone is pinged"
        )
    return policy


def _grant_limits(raw: Any, where: str) -> GrantLimits | None:
    """``grants = { max_duration = "1h", max_uses = 10 }``, or ``grants = false`` (none)."""
    if raw is False:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"max_duration", "max_uses"}:
        raise PolicyError(
            f'{where}: grants must be {{ max_duration = "1h", max_uses = 10 }} (or false)'
        )
    uses = raw["max_uses"]
    if not isinstance(uses, int) or isinstance(uses, bool) or not 1 <= uses <= MAX_GRANT_USES:
        raise PolicyError(f"{where}: max_uses must be a whole number from 1 to {MAX_GRANT_USES}")
    return GrantLimits(parse_duration(raw["max_duration"], where), uses)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def parse_policy(text: str, source: str = "policy", env: Mapping[str, str] | None = None) -> Policy:
    """Parse and check a policy file; ``env`` (default: the process's) supplies the values
    that MCP servers' ``env`` and ``headers`` read ``from_env``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{source}: {error}") from error

    def locator(table: str | tuple[str, ...]) -> Any:
        def locate(key: str | None = None) -> str:
            line = _line_of(text, table, key)
            return f"{source}, line {line}" if line else source

        return locate

    unknown = sorted(set(data) - {"defaults", "tools", "mcp"})
    if unknown:
        line = _line_of(text, unknown[0], None)
        raise PolicyError(
            f"{source}{f', line {line}' if line else ''}: unknown table "
            f"[{unknown[0]}] (use [defaults], [tools.<name>] and [mcp.servers.<name>])"
        )
    defaults_raw = data.get("defaults", {})
    defaults = _tool_policy(defaults_raw, ToolPolicy(), source, locator("defaults"), True)
    tools_raw = data.get("tools", {})
    if not isinstance(tools_raw, Mapping):
        raise PolicyError(f"{source}: [tools] must contain one table per tool")
    tables = {name: _without_rules(raw) for name, raw in tools_raw.items()}
    tools = {
        name: _tool_policy(raw, defaults, locator(("tools", name))(), locator(("tools", name)))
        for name, raw in tables.items()
    }
    written = {name: frozenset(raw) for name, raw in [("*", defaults_raw), *tables.items()] if raw}
    rules = {
        name: _rules(name, raw["rules"], tools[name], text, source)
        for name, raw in tools_raw.items()
        if isinstance(raw, Mapping) and "rules" in raw
    }
    servers = _mcp_servers(data.get("mcp", {}), source, locator, env)
    return Policy(defaults, tools, written, servers, {k: v for k, v in rules.items() if v})


def _without_rules(raw: Any) -> Any:
    return {k: v for k, v in raw.items() if k != "rules"} if isinstance(raw, Mapping) else raw


def _rule_line(text: str, table: str, index: int, key: str | None) -> int | None:
    """The line of the ``index``-th ``[[tools.<table>.rules]]`` (or of ``key`` in it)."""
    dotted = r"\s*\.\s*".join(f"[\"']?{re.escape(p)}[\"']?" for p in ("tools", table, "rules"))
    header = re.compile(rf"^\s*\[\[\s*{dotted}\s*\]\]")
    lines = text.splitlines()
    starts = [number for number, line in enumerate(lines, start=1) if header.match(line)]
    if len(starts) < index:
        return _line_of(text, ("tools", table), "rules")
    start = starts[index - 1]
    if key is None:
        return start
    for number, inner in enumerate(lines[start:], start=start + 1):
        if re.match(r"^\s*\[", inner):
            break
        if re.match(rf"^\s*{re.escape(key)}\s*=", inner):
            return number
    return start


def _rules(table: str, raw: Any, base: ToolPolicy, text: str, source: str) -> tuple[Rule, ...]:
    """``[[tools.<table>.rules]]``: each a ``when``, an optional ``name``, and settings parsed
    by the tool tables' own parser (so every setting a tool table takes works in a rule),
    applied over the tool's resolved policy. Checked here for syntax and settings; types are
    checked once the tools' schemas are known (:meth:`Policy.check_rules`)."""
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        line = _line_of(text, ("tools", table), "rules")
        where = f"{source}, line {line}" if line else source
        raise PolicyError(f"{where}: rules is a list of tables: [[tools.{table}.rules]]")
    rules: list[Rule] = []
    for index, entry in enumerate(raw, start=1):

        def locate(key: str | None = None, index: int = index) -> str:
            line = _rule_line(text, table, index, key)
            return f"{source}, line {line}" if line else source

        if "when" not in entry:
            raise PolicyError(f'{locate()}: a rule needs a condition: when = "args.x > 1"')
        name = entry.get("name", default_name(index, table))
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(f"{locate('name')}: a rule's name is a non-empty string")
        if any(rule.name == name for rule in rules):
            raise PolicyError(f"{locate('name')}: two rules of {table} are named {name!r}")
        try:
            tree = compile_condition(entry["when"])
        except ConditionError as error:
            raise PolicyError(f"{locate('when')}: {error}") from None
        settings = {k: v for k, v in entry.items() if k not in ("when", "name")}

        def apply(
            policy: ToolPolicy, settings: Mapping[str, Any] = settings, locate: Any = locate
        ) -> ToolPolicy:
            return _tool_policy(settings, policy, locate(), locate)

        apply(base)  # every setting checked now, naming its line
        rule = Rule(
            table, index, name, entry["when"], tree, locate("when"), apply, program_for(tree)
        )
        rules.append(rule)
    return tuple(rules)


def _mcp_servers(
    raw: Any, source: str, locator: Any, env: Mapping[str, str] | None
) -> dict[str, McpServerConfig]:
    """``[mcp.servers.<name>]`` tables (see :mod:`bot.mcp_config`)."""
    if not isinstance(raw, Mapping) or set(raw) - {"servers"}:
        raise PolicyError(f"{locator('mcp')()}: [mcp] holds only [mcp.servers.<name>] tables")
    servers = raw.get("servers", {})
    if not isinstance(servers, Mapping):
        raise PolicyError(f"{source}: [mcp.servers] must contain one table per server")
    try:
        return {
            name: parse_server(name, table, locator(("mcp", "servers", name)), parse_duration, env)
            for name, table in servers.items()
        }
    except McpConfigError as error:
        raise PolicyError(str(error)) from error


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyError(f"cannot read policy file {path}: {error.strerror}") from error
    return parse_policy(text, str(path))
