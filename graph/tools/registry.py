"""Which tools the agent has and whether each one's calls wait for a person.

Users add tools by naming importable modules of LangChain tools; a module may state a policy
per tool in ``REVIEW_POLICY = {"tool_name": "auto"}``. Anything without a policy is reviewed:
an unknown tool fails closed.

Several sources may speak about one tool (the module's ``REVIEW_POLICY``,
``AGENT_AUTO_APPROVE``, the bot's policy file); one rule combines them: **review wins**. A call
runs unreviewed only when some source says ``auto`` and none says ``review``; an overruled
``auto`` is logged at start-up, naming both sources.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel

from graph.previews import PreviewFn
from graph.tools.mcp import McpStatus, hints_of, mcp_facts, readable_name, unavailable_note
from graph.tools.mcp_previews import mcp_preview
from graph.tools.slack import slack_tools
from graph.tools.slack_previews import SLACK_PREVIEWS
from graph.tools.weather import weather_search
from graph.types import ModeRule, ReviewPolicy, ToolInfo

log = logging.getLogger(__name__)

POLICIES: tuple[ReviewPolicy, ...] = ("review", "auto")


class ToolConfigError(ValueError):
    """A tool module or policy that cannot be used, explained for whoever configured it."""


@dataclass(frozen=True)
class ToolEntry:
    tool: BaseTool
    policy: ReviewPolicy = "review"
    rule: str | None = None
    """Where the policy comes from, for the audit trail (e.g. ``AGENT_AUTO_APPROVE``); None for
    the default ``review`` that nobody asked for, which any ``auto`` source may lift."""
    preview: PreviewFn | None = None
    """What a call would do, said before the review (``graph.previews``); None: no preview."""

    @property
    def opinion(self) -> tuple[ReviewPolicy, str] | None:
        """What this entry itself says and where from; None when it only holds the default."""
        if self.policy == "review" and self.rule is None:
            return None
        return self.policy, self.rule or "auto-approved by configuration"


def combined(entry: ToolEntry, rules: Sequence[ModeRule]) -> tuple[ToolEntry, str | None]:
    """Review wins: the entry under ``rules`` (all about this tool), and a warning naming the
    sources when a ``review`` overrules an ``auto``."""
    said = [(rule.policy, rule.source) for rule in rules]
    opinions = [*([entry.opinion] if entry.opinion else []), *said]
    reviews = [source for policy, source in opinions if policy == "review"]
    autos = list(dict.fromkeys(source for policy, source in opinions if policy == "auto"))
    if reviews:
        warning = (
            f"{entry.tool.name} is reviewed: {reviews[0]} says review, which wins over "
            f"{' and '.join(autos)}"
            if autos
            else None
        )
        return dataclasses.replace(entry, policy="review", rule=reviews[0]), warning
    if autos:
        return dataclasses.replace(entry, policy="auto", rule="; ".join(autos)), None
    return entry, None


class ToolRegistry:
    """An immutable name -> (tool, policy) map with the schema a reviewer edits against."""

    def __init__(
        self,
        entries: Iterable[ToolEntry],
        overruled: Sequence[str] = (),
        servers: Sequence[McpStatus] = (),
    ) -> None:
        self._entries: dict[str, ToolEntry] = {}
        self.overruled = tuple(overruled)
        """Warnings about ``auto`` sources that a ``review`` overruled (see :func:`combined`)."""
        self.servers = tuple(servers)
        """How each configured MCP server fared at start-up (its tools, or why none)."""
        for entry in entries:
            if entry.tool.name in self._entries:
                raise ToolConfigError(f"two tools are named {entry.tool.name!r}")
            self._entries[entry.tool.name] = entry

    @property
    def tools(self) -> list[BaseTool]:
        return [entry.tool for entry in self._entries.values()]

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> BaseTool | None:
        entry = self._entries.get(name)
        return entry.tool if entry else None

    def policy(self, name: str) -> ReviewPolicy:
        entry = self._entries.get(name)
        return entry.policy if entry else "review"

    def preview(self, name: str) -> PreviewFn | None:
        """The tool's preview (``graph.previews``), or None when it offers none."""
        entry = self._entries.get(name)
        return entry.preview if entry else None

    def review_source(self, name: str) -> str | None:
        """Where a reviewed tool's review comes from (e.g. ``my_tools.REVIEW_POLICY``); None
        when it runs unreviewed or nobody asked for its review (the default)."""
        entry = self._entries.get(name)
        return entry.rule if entry is not None and entry.policy == "review" else None

    def auto_rule(self, name: str) -> str | None:
        """Why calls of ``name`` run without review; None when they are reviewed."""
        entry = self._entries.get(name)
        if entry is None or entry.policy != "auto":
            return None
        return entry.rule or "auto-approved by configuration"

    @property
    def unavailable_note(self) -> str | None:
        """What the model is told about MCP servers whose tools are missing."""
        return unavailable_note(self.servers)

    def mcp_tools(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Model name -> (``server.tool``, annotations) of every tool from an MCP server."""
        return {
            name: (readable_name(entry.tool), hints_of(entry.tool))
            for name, entry in self._entries.items()
            if mcp_facts(entry.tool)
        }

    def info(self, name: str) -> ToolInfo:
        tool = self.get(name)
        if tool is None:
            return ToolInfo(name=name, description="(unknown tool)", args_schema={})
        info = ToolInfo(name=name, description=tool.description, args_schema=args_schema(tool))
        facts = mcp_facts(tool)
        if facts:
            info["server"] = str(facts["server"])
            info["display_name"] = str(facts["readable"])
            info["annotations"] = dict(facts["annotations"])
        if self.preview(name) is not None:
            info["preview"] = True
        return info

    def with_policies(
        self, policies: Mapping[str, ReviewPolicy], rule: str | None = None
    ) -> ToolRegistry:
        """A copy with some policies replaced outright (``rule`` says where they come from), for
        tests and tools assembled in code; configuration goes through :meth:`with_rules`."""
        unknown = sorted(set(policies) - set(self._entries))
        if unknown:
            raise ToolConfigError(f"policy names unknown tools: {', '.join(unknown)}")
        return ToolRegistry(
            (
                dataclasses.replace(entry, policy=policies[name], rule=rule)
                if name in policies
                else entry
                for name, entry in self._entries.items()
            ),
            self.overruled,
            self.servers,
        )

    def with_rules(self, rules: Iterable[ModeRule]) -> ToolRegistry:
        """A copy with one source's rules combined in (review wins, see :func:`combined`).

        A rule names a tool by its name, by its ``server.tool`` form (MCP tools), or by a
        pattern of those (``github.*``). Of one source's rules, only the most specific kind that
        matches a tool applies to it: its name, else the patterns (review wins among them),
        else ``"*"``, so a source's own per-tool words beat its default. Naming a tool that does
        not exist is an error, except for ``server.tool`` names and patterns: their server may
        be unavailable right now (the policy file checks that the server is configured).
        """
        rules = list(rules)
        known = set(self._entries)
        known |= {readable_name(entry.tool) for entry in self._entries.values()}
        unknown = sorted({r.tool for r in rules if not _deferred(r.tool)} - known - {"*"})
        if unknown:
            sources = sorted({r.source for r in rules if r.tool in unknown})
            raise ToolConfigError(
                f"{', '.join(sources)}: no tool named {', '.join(unknown)} "
                f"(known: {', '.join(sorted(self._entries))})"
            )
        entries: list[ToolEntry] = []
        overruled = list(self.overruled)
        for entry in self._entries.values():
            new, warning = combined(entry, applying_rules(entry.tool, rules))
            entries.append(new)
            if warning:
                log.warning("%s", warning)
                overruled.append(warning)
        return ToolRegistry(entries, overruled, self.servers)


def _deferred(name: str) -> bool:
    """A ``server.tool`` (or ``server__tool``) name or a pattern, which may match nothing
    while a server is down."""
    return name != "*" and ("." in name or "__" in name or any(c in name for c in "*?["))


def matches(pattern: str, tool: BaseTool) -> bool:
    """Whether a policy name (exact, ``server.tool`` or a pattern of that) covers ``tool``."""
    readable = readable_name(tool)
    if pattern in (tool.name, readable):
        return True
    return any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(readable, pattern)


def applying_rules(tool: BaseTool, rules: Sequence[ModeRule]) -> list[ModeRule]:
    """The rules of one source that speak about ``tool``: the most specific kind only."""
    exact = [r for r in rules if r.tool in (tool.name, readable_name(tool))]
    if exact:
        return exact
    patterns = [r for r in rules if r.tool != "*" and matches(r.tool, tool)]
    return patterns or [r for r in rules if r.tool == "*"]


def args_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of what the model fills in (injected arguments excluded)."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return dict(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return _with_declared_formats(schema.model_json_schema(), tool)
    return schema.schema()  # a pydantic v1 model


def _with_declared_formats(schema: dict[str, Any], tool: BaseTool) -> dict[str, Any]:
    """LangChain's ``tool_call_schema`` rebuilds the fields and drops ``json_schema_extra``;
    the ``format`` a tool's own args model declares (how an argument is read: a person, a
    channel, a date; see ``bot.readable``) is copied back from it."""
    declared = tool.args_schema
    if not (isinstance(declared, type) and issubclass(declared, BaseModel)):
        return schema
    own = declared.model_json_schema().get("properties", {})
    for name, prop in schema.get("properties", {}).items():
        fmt = own.get(name, {}).get("format")
        if isinstance(prop, dict) and isinstance(fmt, str) and "format" not in prop:
            prop["format"] = fmt
    return schema


def builtin_entries() -> list[ToolEntry]:
    """The seed's weather tool and the Slack workspace tools, all reviewed by default."""
    return [
        ToolEntry(weather_search),
        *(ToolEntry(tool, preview=SLACK_PREVIEWS.get(tool.name)) for tool in slack_tools()),
    ]


def load_tool_module(module_name: str) -> list[ToolEntry]:
    """Import a user's module and take its tools (``TOOLS`` if defined, else every tool in it)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ToolConfigError(f"cannot import tool module {module_name!r}: {error}") from error
    declared = getattr(module, "TOOLS", None)
    tools = (
        list(declared)
        if declared is not None
        else [value for value in vars(module).values() if isinstance(value, BaseTool)]
    )
    if not tools or not all(isinstance(tool, BaseTool) for tool in tools):
        raise ToolConfigError(f"{module_name!r} defines no LangChain tools")
    policies = getattr(module, "REVIEW_POLICY", {})
    previews = module_previews(module_name, getattr(module, "PREVIEWS", {}), tools)
    entries = []
    for tool in tools:
        preview = previews.get(tool.name)
        if tool.name not in policies:
            # the default: reviewed, unless configured otherwise
            entries.append(ToolEntry(tool, preview=preview))
            continue
        policy = policies[tool.name]
        if policy not in POLICIES:
            raise ToolConfigError(
                f"{module_name}.REVIEW_POLICY[{tool.name!r}] must be 'review' or 'auto'"
            )
        entries.append(ToolEntry(tool, policy, f"{module_name}.REVIEW_POLICY", preview))
    return entries


def module_previews(
    module_name: str, previews: Any, tools: Sequence[BaseTool]
) -> dict[str, PreviewFn]:
    """A module's ``PREVIEWS``: tool name -> async ``preview(args, context)``; a name that is
    not one of the module's tools, or a value that is not callable, is a configuration error."""
    if not isinstance(previews, Mapping):
        raise ToolConfigError(f"{module_name}.PREVIEWS must map tool names to functions")
    names = {tool.name for tool in tools}
    for name, preview in previews.items():
        if name not in names:
            raise ToolConfigError(f"{module_name}.PREVIEWS names no tool of it: {name!r}")
        if not callable(preview):
            raise ToolConfigError(f"{module_name}.PREVIEWS[{name!r}] is not a function")
    return dict(previews)


def build_registry(
    modules: Sequence[str] = (),
    auto_approve: Sequence[str] = (),
    rules: Sequence[ModeRule] = (),
    mcp_tools: Sequence[BaseTool] = (),
    servers: Sequence[McpStatus] = (),
    hint_rules: Sequence[ModeRule] = (),
) -> ToolRegistry:
    """Built-ins, the user's modules and the MCP servers' tools (all reviewed by default),
    combined with ``AGENT_AUTO_APPROVE``, then any other configured ``rules`` (the bot's policy
    file), then ``hint_rules`` (what the configuration makes of servers' hints, e.g. read-only
    tools run unreviewed): review wins (see :func:`combined`), so a hint never lifts a
    ``review`` written anywhere."""
    entries = builtin_entries()
    for module_name in modules:
        entries.extend(load_tool_module(module_name))
    entries.extend(ToolEntry(tool, preview=mcp_preview(tool)) for tool in mcp_tools)
    from_env = [ModeRule(name, "auto", "AGENT_AUTO_APPROVE") for name in auto_approve]
    registry = ToolRegistry(entries, servers=servers)
    return registry.with_rules(from_env).with_rules(rules).with_rules(hint_rules)
