"""``python -m bot policy check|explain``: a policy file checked as start-up checks it, and which
rule one call would meet, without Slack or a database.

The tools are the ones the bot would have: the built-ins and ``AGENT_TOOL_MODULES``' (with
their argument schemas). MCP servers are not started, so the rules of an MCP table are checked
for syntax, variables and functions, and their argument names only at the bot's start.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bot.config import ConfigError, parse_approvers
from bot.policy import Policy, PolicyError, load_policy
from bot.policy_rules import CallPolicy
from graph import AgentSettings
from graph.tools.registry import ToolConfigError, ToolRegistry, args_schema, build_registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="policy_command", metavar="{check,explain}")
    commands.required = True
    check = commands.add_parser(
        "check",
        help="validate and type-check a policy file as start-up does (exit 0 or 1)",
        description="Validate a policy file and type-check its rules' conditions against the "
        "tools' argument schemas, as the bot does when it starts. Errors name the file and "
        "line; the exit status is 1 if there is any.",
    )
    check.add_argument("file", type=Path)
    explain = commands.add_parser(
        "explain",
        help="say which rule a call meets and on which terms it is reviewed",
        description="Which rule of FILE a call of --tool with --args meets when --user asks "
        "in --channel (at --time, default now): who may decide, the quorum, four-eyes, "
        "the time to live, and any other setting of the policy.",
    )
    explain.add_argument("file", type=Path)
    explain.add_argument("--tool", required=True, help="the tool's name")
    explain.add_argument("--args", required=True, help="the call's arguments, a JSON object")
    explain.add_argument("--user", required=True, help="who asks (a Slack user id)")
    explain.add_argument("--channel", default=None, help="the channel id the call is made in")
    explain.add_argument(
        "--time", default=None, help="when, ISO 8601 (default now; without a zone: UTC)"
    )


def registry_for(policy: Policy, source: str, env: Mapping[str, str]) -> ToolRegistry:
    """The tools the bot would have, without MCP servers (nothing is started)."""
    agent = AgentSettings.from_env(env)
    return build_registry(agent.tool_modules, agent.auto_approve, policy.mode_rules(source))


def checked(path: Path, env: Mapping[str, str]) -> tuple[Policy, ToolRegistry]:
    """The policy and the tools, checked as start-up checks them; :class:`PolicyError`."""
    try:
        approvers = parse_approvers(env.get("APPROVERS", ""))
    except ConfigError as error:
        raise PolicyError(str(error)) from None
    policy = load_policy(path).with_approvers(approvers, str(path))
    try:
        registry = registry_for(policy, str(path), env)
    except ToolConfigError as error:
        raise PolicyError(str(error)) from None
    policy.check_tools(registry.names, str(path))
    policy.check_rules({name: args_schema(tool) for name, tool in _tools(registry)})
    reviewed = ((name, registry.review_source(name)) for name in registry.names)
    policy.check_auto_rules({name: source for name, source in reviewed if source})
    return policy, registry


def _tools(registry: ToolRegistry) -> list[tuple[str, Any]]:
    return [(tool.name, tool) for tool in registry.tools]


def explanation(call: CallPolicy, tool: str) -> list[str]:
    """The terms one call is reviewed under, one a line."""
    policy = call.policy
    lines = [f"tool: {tool}", f"rule: {call.label}"]
    if policy.mode == "auto":
        lines.append("mode: auto (runs without review)")
        return lines
    sets = call.approver_conditions
    who = [", ".join(sorted(s)) if s is not None else "anyone who can see the review" for s in sets]
    lines.append(f"approvers: {' and also one of '.join(who)}")
    lines.append(f"quorum: {policy.quorum}")
    lines.append(f"four_eyes: {'on' if policy.four_eyes else 'off'}")
    lines.append(f"ttl: {_span(policy.ttl_seconds)}")
    if policy.remind_before_seconds is not None:
        lines.append(f"remind_before: {_span(policy.remind_before_seconds)}")
    if policy.redact:
        lines.append(f"redact: {', '.join(sorted(policy.redact))}")
    known = {"mode", "approvers", "quorum", "four_eyes", "ttl_seconds"}
    known |= {"remind_before_seconds", "redact"}
    for name, value in vars(policy).items():  # settings added since (routing, grants, ...)
        if name not in known and value not in (None, (), frozenset(), {}):
            lines.append(f"{name}: {value}")
    return lines


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    env = os.environ
    try:
        policy, registry = checked(args.file, env)
    except PolicyError as error:
        print(f"{error}", file=err)
        return 1
    if args.policy_command == "check":
        count = sum(len(rules) for name, rules in policy.rules.items())
        print(f"{args.file}: ok ({len(policy.tools)} tool tables, {count} rules)", file=out)
        return 0
    try:
        call_args = json.loads(args.args)
        moment = _when(args.time)
    except ValueError as error:
        print(f"--args must be a JSON object and --time ISO 8601: {error}", file=err)
        return 1
    if not isinstance(call_args, dict):
        print("--args must be a JSON object", file=err)
        return 1
    if args.tool not in registry.names:
        print(f"no tool named {args.tool} (known: {', '.join(registry.names)})", file=err)
        return 1
    call = policy.for_call(
        args.tool, call_args, requester=args.user, channel=args.channel, now=moment
    )
    print("\n".join(explanation(call, args.tool)), file=out)
    return 0
