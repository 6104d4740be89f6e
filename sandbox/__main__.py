"""`python -m sandbox`: run the Slack stand-in for the demo or manual testing."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import uvicorn

from sandbox.config import (
    DEFAULT_BOT_TOKEN,
    DEFAULT_BOT_URL,
    DEFAULT_SIGNING_SECRET,
    SandboxConfig,
)
from sandbox.server import create_app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """CLI flags, with the environment supplying defaults (as the bot reads it)."""
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local stand-in for Slack: Web API, event delivery and a chat page.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--port", type=int, default=int(env.get("SANDBOX_PORT", "3100")), help="port (3100)"
    )
    parser.add_argument(
        "--bot-url", default=DEFAULT_BOT_URL, help="where events and interactions are POSTed"
    )
    parser.add_argument(
        "--signing-secret",
        default=env.get("SLACK_SIGNING_SECRET", DEFAULT_SIGNING_SECRET),
        help="secret used to sign requests to the bot (env SLACK_SIGNING_SECRET)",
    )
    parser.add_argument(
        "--bot-token",
        default=env.get("SLACK_BOT_TOKEN", DEFAULT_BOT_TOKEN),
        help="the only token the Web API accepts (env SLACK_BOT_TOKEN)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = SandboxConfig(
        bot_url=args.bot_url,
        signing_secret=args.signing_secret,
        bot_token=args.bot_token,
        host=args.host,
        port=args.port,
        public_url=f"http://{args.host}:{args.port}",
    )
    print(f"Slack sandbox on http://{args.host}:{args.port}/  (bot at {args.bot_url})")
    uvicorn.run(create_app(config), host=args.host, port=args.port, timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
