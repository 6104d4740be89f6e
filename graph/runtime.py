"""Assemble a running agent: database, migrations, tools, model, graph, service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from graph import migrations
from graph.agent import build_graph
from graph.config import AgentSettings
from graph.db import PooledPostgresSaver, open_pool, resolve_database_url
from graph.locks import ThreadLeases
from graph.model import ChatModel, build_model
from graph.service import AgentService
from graph.tools.mcp import is_read_only, load_servers, mcp_facts
from graph.tools.registry import ToolRegistry, build_registry
from graph.types import ModeRule

PRUNE_EVERY_STEPS = 40
"""A turn with one review is about four steps: prune each thread every ten turns or so."""


@asynccontextmanager
async def open_agent(
    settings: AgentSettings,
    *,
    model: ChatModel | None = None,
    registry: ToolRegistry | None = None,
) -> AsyncIterator[AgentService]:
    """Yield a ready service; ``model`` and ``registry`` replace the configured ones in tests.

    The MCP servers' tools are listed here, once: a server that cannot be reached leaves its
    tools out (the registry says which and why) and never stops the start. Migrates the
    agent's tables only: a client of the service (the bot) owns its own."""
    registry = (registry or await configured_registry(settings)).with_rules(
        settings.mode_rules
    )  # a registry given in code is under the policy file too
    model = model or build_model(settings, registry.tools)
    url = await resolve_database_url(settings.database_url, settings.data_dir)
    async with open_pool(url, max_size=settings.pool_max_size) as pool:
        saver = PooledPostgresSaver(pool, prune_every_steps=PRUNE_EVERY_STEPS)
        await migrations.apply(pool, migrations.AGENT, setup=[saver.setup])
        graph = build_graph(model, registry, saver)
        yield AgentService(
            graph, registry, pool, ThreadLeases(pool, ttl_seconds=settings.lease_seconds)
        )


async def configured_registry(settings: AgentSettings) -> ToolRegistry:
    """Built-ins, modules and MCP tools under ``AGENT_AUTO_APPROVE`` and the servers' hint
    rules (the policy file's own rules are added by the caller)."""
    tools, servers = await load_servers(settings.mcp_servers)
    specs = {spec.name: spec for spec in settings.mcp_servers}
    hint_rules = []
    for tool in tools:
        facts = mcp_facts(tool) or {}
        rule = specs[str(facts.get("server"))].auto_read_only
        if rule and is_read_only(facts.get("annotations") or {}):
            hint_rules.append(ModeRule(tool.name, "auto", rule))
    return build_registry(
        settings.tool_modules,
        settings.auto_approve,
        mcp_tools=tools,
        servers=servers,
        hint_rules=hint_rules,
    )
