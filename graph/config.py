"""Agent settings, read from the environment once at start-up and then passed around."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graph.tools.mcp import McpServerSpec
from graph.types import ModeRule

DEFAULT_MODEL = "claude-sonnet-5-5"


def default_data_dir() -> Path:
    """Per-user data directory, so the embedded database survives restarts."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slack-approval-bot"


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class AgentSettings:
    """Everything the agent side needs; see README "Configuration" for each variable."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    anthropic_api_key: str | None = None
    anthropic_model: str = DEFAULT_MODEL
    anthropic_base_url: str | None = None
    model_timeout_seconds: float = 60.0
    tool_modules: tuple[str, ...] = ()
    auto_approve: tuple[str, ...] = ()
    mode_rules: tuple[ModeRule, ...] = ()
    """Further review/auto rules (the bot's policy file), combined with ``auto_approve`` and
    modules' ``REVIEW_POLICY`` so that review wins; never read from the environment."""
    mcp_servers: tuple[McpServerSpec, ...] = ()
    """MCP servers whose tools the agent is offered (the bot's policy file declares them)."""
    pool_max_size: int = 20
    lease_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentSettings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env["DATA_DIR"]) if env.get("DATA_DIR") else default_data_dir(),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_model=env.get("ANTHROPIC_MODEL") or DEFAULT_MODEL,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            tool_modules=_csv(env.get("AGENT_TOOL_MODULES")),
            auto_approve=_csv(env.get("AGENT_AUTO_APPROVE")),
            pool_max_size=int(env.get("DATABASE_POOL_SIZE", "20")),
            lease_seconds=float(env.get("THREAD_LEASE_SECONDS", "30")),
        )
