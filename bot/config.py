"""Bot settings from the environment: Slack credentials, transport, and who may approve what."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.limits import TurnLimits
from bot.policy import Policy, load_policy
from bot.retention import Retention, RetentionError, retention_from_env
from graph import AgentSettings
from graph.remote import RemoteSettings

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class ConfigError(ValueError):
    """A setting that cannot work, named so the operator can fix it."""


def parse_approvers(spec: str) -> dict[str, frozenset[str]]:
    """Parse ``APPROVERS``: ``tool=U1,U2,S3;*=U4`` (``*`` is every tool without its own entry).

    Ids starting with ``S`` are user groups. An empty spec means anyone may approve.
    """
    approvers: dict[str, frozenset[str]] = {}
    for part in filter(None, (chunk.strip() for chunk in spec.split(";"))):
        tool, sep, ids = part.partition("=")
        members = frozenset(i.strip() for i in ids.split(",") if i.strip())
        if not sep or not tool.strip() or not members:
            raise ConfigError(f"APPROVERS entry {part!r} should look like tool=U123,S456")
        bad = sorted(i for i in members if i[:1] not in ("U", "W", "S") or not i.isalnum())
        if bad:
            raise ConfigError(f"APPROVERS entry {part!r}: not Slack user or group ids: {bad}")
        approvers[tool.strip()] = members
    return approvers


@dataclass(frozen=True)
class BotSettings:
    """See README "Configuration"; read once at start-up."""

    bot_token: str
    signing_secret: str
    app_token: str | None = None
    api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    host: str = "0.0.0.0"
    approvers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    policy_file: Path | None = None
    agent: AgentSettings = field(default_factory=AgentSettings)
    sweep_seconds: float = 15.0
    recover_after_seconds: float = 90.0
    turn_limits: TurnLimits = field(default_factory=TurnLimits)
    retention: Retention = field(default_factory=Retention)
    remote: RemoteSettings | None = None
    """``AGENT_URL``: drive a graph on LangGraph Server instead of running one in process."""
    stream_replies: bool = True
    """``STREAM_REPLIES``: write the agent's reply into the thread as it is written
    (``bot.streaming``); ``false`` posts it whole."""
    task_cards: bool = True
    """``TASK_CARDS``: show each reviewed call as a task in its conversation
    (``bot.task_cards``); ``false`` shows the review card alone."""
    ack_process: bool = False
    """``ACK_PROCESS`` (on unless set false): Slack's HTTP requests reach a small process in
    front (``bot.transport.acker``) that answers clicks at once, so acknowledgements never wait
    behind the decisions this process applies. Off here so that a bot built in code (tests)
    serves in process unless asked; ``from_env`` turns it on."""

    def agent_with(self, policy: Policy) -> AgentSettings:
        """Agent settings with the policy file's ``mode`` settings added as rules: the tool
        registry combines them with ``AGENT_AUTO_APPROVE`` and modules' ``REVIEW_POLICY``, and
        review wins (README "Policy"). The file's MCP servers are added too."""
        rules = policy.mode_rules(str(self.policy_file or "policy"))
        return replace(
            self.agent,
            mode_rules=(*self.agent.mode_rules, *rules),
            mcp_servers=(*self.agent.mcp_servers, *policy.mcp_servers),
        )

    def load_policy(self) -> Policy:
        """The policy file (if any) with the ``APPROVERS`` shorthand filling what it leaves
        unset; an ``APPROVERS`` entry the file already decides stops the start."""
        policy = load_policy(self.policy_file) if self.policy_file else Policy()
        return policy.with_approvers(self.approvers, str(self.policy_file or "policy"))

    @property
    def socket_mode(self) -> bool:
        return bool(self.app_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        required = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
        missing = [name for name in required if not env.get(name)]
        app_token = env.get("SLACK_APP_TOKEN") or None
        if app_token is not None and "SLACK_SIGNING_SECRET" in missing:
            missing.remove("SLACK_SIGNING_SECRET")  # Socket Mode requests are not signed
        if missing:
            raise ConfigError(f"set {' and '.join(missing)} (see python -m bot --help)")
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-...)")
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        return cls(
            bot_token=env["SLACK_BOT_TOKEN"],
            signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            app_token=app_token,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            port=int(env.get("PORT", "3000")),
            host=env.get("HOST", "0.0.0.0"),
            approvers=parse_approvers(env.get("APPROVERS", "")),
            policy_file=Path(env["POLICY_FILE"]) if env.get("POLICY_FILE") else None,
            sweep_seconds=float(env.get("SWEEP_SECONDS", "15")),
            recover_after_seconds=float(env.get("RECOVER_AFTER_SECONDS", "90")),
            agent=AgentSettings.from_env(env),
            turn_limits=turn_limits_from_env(env),
            retention=_retention(env),
            remote=remote_from_env(env),
            stream_replies=env_flag(env, "STREAM_REPLIES"),
            task_cards=env_flag(env, "TASK_CARDS"),
            ack_process=env_flag(env, "ACK_PROCESS"),
        )


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """An on/off variable that is on unless set to 0, false, no or off."""
    return env.get(name, "true").strip().lower() not in ("0", "false", "no", "off")


def _retention(env: Mapping[str, str]) -> Retention:
    try:
        return retention_from_env(env)
    except RetentionError as error:
        raise ConfigError(str(error)) from None


def remote_from_env(env: Mapping[str, str]) -> RemoteSettings | None:
    """``AGENT_URL`` (with ``AGENT_ASSISTANT`` and ``LANGGRAPH_API_KEY``), or None: the agent
    runs in process."""
    url = env.get("AGENT_URL", "").strip()
    if not url:
        for name in ("AGENT_ASSISTANT", "LANGGRAPH_API_KEY"):
            if env.get(name):
                raise ConfigError(f"{name} is set but AGENT_URL is not (see python -m bot --help)")
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"AGENT_URL must be an http:// or https:// URL, not {url!r}")
    return RemoteSettings(
        url=url.rstrip("/"),
        assistant=env.get("AGENT_ASSISTANT", "").strip() or None,
        api_key=env.get("LANGGRAPH_API_KEY") or None,
    )


TURN_LIMIT_VARIABLES = {
    "TURNS_PER_USER_PER_MINUTE": "per_user_per_minute",
    "CONCURRENT_TURNS_PER_USER": "concurrent_per_user",
    "TURNS_PER_WORKSPACE_PER_MINUTE": "per_workspace_per_minute",
    "CONCURRENT_TURNS_PER_WORKSPACE": "concurrent_per_workspace",
}


def turn_limits_from_env(env: Mapping[str, str]) -> TurnLimits:
    """The limits on agent turns (``bot.limits``); unset keeps a default, 0 turns one off."""
    values: dict[str, int] = {}
    for name, attribute in TURN_LIMIT_VARIABLES.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not raw.isascii() or not raw.isdigit():
            raise ConfigError(f"{name} must be a whole number (0: no limit), not {raw!r}")
        values[attribute] = int(raw)
    return replace(TurnLimits(), **values)
