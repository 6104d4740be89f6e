"""Run the bot: start-up, transports and in-flight work, re-exported from where they live.

:mod:`bot.startup` (composition root, signals, GC, event loop), :mod:`bot.transport.http` and
:mod:`bot.transport.socket_mode` (how Slack's requests arrive), :mod:`bot.inflight` (work
shutdown waits for), :mod:`bot.payloads` and :mod:`bot.bolt_request` (reading requests).
"""

from __future__ import annotations

from bot.bolt_request import ParsedRequest
from bot.inflight import SHUTDOWN_GRACE_SECONDS, InflightWork, install_task_tracking
from bot.payloads import MAX_NESTING, log_context_middleware, request_context, well_formed
from bot.startup import Bot, run, run_fast, running_bot, serve, stop_on_signals, tune_gc
from bot.transport.checks import MAX_BODY_BYTES, is_ssl_check
from bot.transport.http import (
    http_app,
    http_server,
    read_capped,
    serve_http,
    signed_by_slack,
)
from bot.transport.socket_mode import serve_socket_mode

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_NESTING",
    "SHUTDOWN_GRACE_SECONDS",
    "Bot",
    "InflightWork",
    "ParsedRequest",
    "http_app",
    "http_server",
    "install_task_tracking",
    "is_ssl_check",
    "log_context_middleware",
    "read_capped",
    "request_context",
    "run",
    "run_fast",
    "running_bot",
    "serve",
    "serve_http",
    "serve_socket_mode",
    "signed_by_slack",
    "stop_on_signals",
    "tune_gc",
    "well_formed",
]
