"""Build the Bolt app: a Web API client with Slack's retry handlers, and every listener."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import limits
from bot.config import BotSettings
from bot.flow import ReviewFlow
from bot.limits import TurnLimiter
from bot.listeners import register_all


def sdk_logger() -> logging.Logger:
    """The Web API client's own logger, with its level set to the one in force.

    The SDK decides whether to format its debug lines (each request's parameters, each
    response's headers and body) by testing ``logger.level <= DEBUG``; a logger nobody
    configured has level NOTSET (0), so every call formatted them, to be dropped. With the
    effective level set on it, they are formatted only when debug logging is on.
    """
    logger = logging.getLogger("slack_sdk.web.async_client")
    if logger.level == logging.NOTSET:
        logger.setLevel(logger.getEffectiveLevel())
    return logger


def slack_client(
    settings: BotSettings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """Rate limits (429), 5xx answers and dropped connections are retried by the SDK.

    Pass a long-lived ``session`` to reuse connections; without one the SDK opens a new session
    and TCP connection for every call.
    """
    return AsyncWebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        session=session,
        logger=sdk_logger(),
        timeout=15,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


@contextmanager
def _without_token_warning() -> Iterator[None]:
    """Silence Bolt's "As you gave `client` as well, `token` will be unused" while the app is
    built, and only that line.

    ``AsyncApp`` reads ``SLACK_BOT_TOKEN`` from the environment whenever it is given no token
    (``token or os.environ.get(...)``, even for ``token=""``), then warns that the ``client``
    wins. The client is built from that very variable (:class:`BotSettings`), so the warning
    is always a false alarm here; no argument avoids the fallback.
    """
    logger = logging.getLogger(f"slack_bolt.{AsyncApp.__name__}")  # Bolt's framework logger
    drop = _DropMessage(warning_client_prioritized_and_token_skipped())
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def build_app(
    settings: BotSettings,
    client: AsyncWebClient,
    flow: ReviewFlow,
    turn_limiter: TurnLimiter | None = None,
) -> AsyncApp:
    """Request signatures are always verified over HTTP; Socket Mode has no signatures.

    ``turn_limiter`` (see ``bot.limits``) limits how many agent turns people start; without
    one, every message is answered."""
    with _without_token_warning():
        app = AsyncApp(
            client=client,
            signing_secret=settings.signing_secret or None,
            request_verification_enabled=not settings.socket_mode,
            ignoring_self_events_enabled=True,
            ssl_check_enabled=True,
            url_verification_enabled=True,
        )
    if turn_limiter is not None:
        app.use(limits.provide(turn_limiter))
    register_all(app, flow)
    return app
