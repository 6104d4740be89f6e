"""Which tools the agent has and whether each one's calls wait for a person.

Users add tools by naming importable modules of LangChain tools; a module may state a policy
per tool in ``REVIEW_POLICY = {"tool_name": "auto"}``. Anything without a policy is reviewed:
an unknown tool fails closed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel

from graph.tools.slack import slack_tools
from graph.tools.weather import weather_search
from graph.types import ReviewPolicy, ToolInfo

POLICIES: tuple[ReviewPolicy, ...] = ("review", "auto")


class ToolConfigError(ValueError):
    """A tool module or policy that cannot be used, explained for whoever configured it."""


@dataclass(frozen=True)
class ToolEntry:
    tool: BaseTool
    policy: ReviewPolicy = "review"
    rule: str | None = None
    """Where an ``auto`` policy comes from, for the audit trail (e.g. ``AGENT_AUTO_APPROVE``)."""


class ToolRegistry:
    """An immutable name -> (tool, policy) map with the schema a reviewer edits against."""

    def __init__(self, entries: Iterable[ToolEntry]) -> None:
        self._entries: dict[str, ToolEntry] = {}
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

    def auto_rule(self, name: str) -> str | None:
        """Why calls of ``name`` run without review; None when they are reviewed."""
        entry = self._entries.get(name)
        if entry is None or entry.policy != "auto":
            return None
        return entry.rule or "auto-approved by configuration"

    def info(self, name: str) -> ToolInfo:
        tool = self.get(name)
        if tool is None:
            return ToolInfo(name=name, description="(unknown tool)", args_schema={})
        return ToolInfo(name=name, description=tool.description, args_schema=args_schema(tool))

    def with_policies(
        self, policies: Mapping[str, ReviewPolicy], rule: str | None = None
    ) -> ToolRegistry:
        """A copy with some policies replaced (``rule`` says where they come from); naming a
        tool that does not exist is an error."""
        unknown = sorted(set(policies) - set(self._entries))
        if unknown:
            raise ToolConfigError(f"policy names unknown tools: {', '.join(unknown)}")
        return ToolRegistry(
            ToolEntry(entry.tool, policies[name], rule) if name in policies else entry
            for name, entry in self._entries.items()
        )


def args_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of what the model fills in (injected arguments excluded)."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return dict(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return schema.schema()  # a pydantic v1 model


def builtin_entries() -> list[ToolEntry]:
    """The seed's weather tool and the Slack workspace tools, all reviewed by default."""
    return [ToolEntry(weather_search), *(ToolEntry(tool) for tool in slack_tools())]


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
    entries = []
    for tool in tools:
        policy = policies.get(tool.name, "review")
        if policy not in POLICIES:
            raise ToolConfigError(
                f"{module_name}.REVIEW_POLICY[{tool.name!r}] must be 'review' or 'auto'"
            )
        entries.append(ToolEntry(tool, policy, f"{module_name}.REVIEW_POLICY"))
    return entries


def build_registry(modules: Sequence[str] = (), auto_approve: Sequence[str] = ()) -> ToolRegistry:
    """Built-ins plus the user's modules, then the auto-approve list from configuration."""
    entries = builtin_entries()
    for module_name in modules:
        entries.extend(load_tool_module(module_name))
    registry = ToolRegistry(entries)
    return registry.with_policies(dict.fromkeys(auto_approve, "auto"), "AGENT_AUTO_APPROVE")
