"""Settings for one sandbox instance."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.clock import Clock, system_clock

DEFAULT_BOT_URL = "http://127.0.0.1:3000/slack/events"
DEFAULT_SIGNING_SECRET = "sandbox-signing-secret"
DEFAULT_BOT_TOKEN = "xoxb-sandbox-bot-token"
DEFAULT_APP_TOKEN = "xapp-sandbox-app-token"


@dataclass
class SandboxConfig:
    """Everything that differs between the demo, the e2e tests and unit tests.

    Retry delays and the ack timeout are configurable because Slack's real
    values (up to 5 minutes between retries) would make tests unbearably slow.
    """

    bot_url: str = DEFAULT_BOT_URL
    signing_secret: str = DEFAULT_SIGNING_SECRET
    bot_token: str = DEFAULT_BOT_TOKEN
    app_token: str = DEFAULT_APP_TOKEN  # app-level token for apps.connections.open (Socket Mode)
    host: str = "127.0.0.1"
    port: int = 3100
    interactivity_url: str | None = None
    commands_url: str | None = None  # each slash command has a Request URL; one for all here
    slash_commands: tuple[str, ...] = ("/approvals",)  # the app's commands (its manifest's)
    verification_token: str = "sandbox-verification-token"
    api_app_id: str = "A0SANDBOX"
    ack_timeout: float = 3.0
    retry_delays: tuple[float, ...] = (1.0, 60.0, 300.0)
    trigger_ttl: float = 3.0
    deliver_bot_messages: bool = True
    clock: Clock = field(default=system_clock)
    public_url: str | None = None

    @property
    def interaction_url(self) -> str:
        """Slack lets apps use a separate Request URL for interactivity."""
        return self.interactivity_url or self.bot_url

    @property
    def command_url(self) -> str:
        return self.commands_url or self.bot_url
