"""Previews of MCP tools: a tool names a read-only companion tool that says what it would do.

MCP has no preview of its own; a tool definition may carry ``_meta`` (any keys, the spec asks
for a prefix), and ``langchain-mcp-adapters`` keeps it in the tool's metadata. The convention:

    @server.tool(meta={"slack-approval-bot/preview": "preview_create_ticket"})
    def create_ticket(title: str, priority: int) -> str: ...

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def preview_create_ticket(title: str, priority: int) -> dict: ...

The companion is called with the same arguments, in its own session and within
:data:`graph.previews.PREVIEW_SECONDS`, without the idempotency key (it is not the call). It
answers with text (its first line is the summary, further lines notes, all plain text) or with
structured content ``{"summary", "before", "after", "notes", "ok"}`` (the fields of
:class:`graph.previews.Preview`). A companion is never offered to the model. It must say
``readOnlyHint: true``: one that does not is not trusted to be free of side effects, so it is
not used as a preview and stays an ordinary (reviewed) tool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from graph.context import AgentContext
from graph.previews import MCP_PREVIEW_KEY, Preview, plain

if TYPE_CHECKING:
    from graph.tools.mcp import McpServerSpec

log = logging.getLogger(__name__)


def companion_name(tool: BaseTool) -> str | None:
    """The preview tool a tool's ``_meta`` names, if any."""
    meta = (tool.metadata or {}).get("_meta")
    name = meta.get(MCP_PREVIEW_KEY) if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and name else None


def split_companions(
    tools: Sequence[BaseTool], server: str
) -> tuple[list[BaseTool], dict[str, str]]:
    """The tools to offer the model, and tool name -> its (read-only) companion's name.

    A named companion that is missing or not read-only is logged and not used."""
    by_name = {tool.name: tool for tool in tools}
    companions: dict[str, str] = {}
    for tool in tools:
        name = companion_name(tool)
        if name is None:
            continue
        companion = by_name.get(name)
        if companion is None or (companion.metadata or {}).get("readOnlyHint") is not True:
            log.warning(
                "MCP server %s: %s names %r as its preview, which is %s; no preview",
                server,
                tool.name,
                name,
                "missing" if companion is None else "not read-only",
            )
            continue
        companions[tool.name] = name
    hidden = set(companions.values())
    return [tool for tool in tools if tool.name not in hidden], companions


class McpPreview:
    """A preview that asks the server's companion tool (see the module docs)."""

    def __init__(self, spec: McpServerSpec, companion: str) -> None:
        self.spec = spec
        self.companion = companion

    async def __call__(self, args: dict[str, Any], context: AgentContext) -> Preview:
        from graph.tools.mcp import _call

        result = await _call(self.spec, self.companion, dict(args), None)
        if getattr(result, "isError", False):
            raise RuntimeError(f"{self.spec.name}.{self.companion} answered with an error")
        structured = getattr(result, "structuredContent", None)
        if isinstance(structured, Mapping) and isinstance(structured.get("summary"), str):
            return Preview.from_data(structured)
        texts = [
            str(item.text) for item in getattr(result, "content", []) or [] if hasattr(item, "text")
        ]
        lines = [line for line in "\n".join(texts).splitlines() if line.strip()]
        if not lines:
            raise RuntimeError(f"{self.spec.name}.{self.companion} said nothing")
        return Preview(summary=plain(lines[0]), notes=tuple(plain(line) for line in lines[1:]))


def mcp_preview(tool: BaseTool) -> McpPreview | None:
    """The preview of a tool loaded from an MCP server (set by ``graph.tools.mcp``)."""
    facts = (tool.metadata or {}).get("mcp")
    found = facts.get("preview") if isinstance(facts, Mapping) else None
    return found if isinstance(found, McpPreview) else None
