"""`python -m sandbox.demo`: the whole product on one machine, with no Slack and no API key.

Starts the Slack sandbox (the page people use), the real bot pointed at it over loopback HTTP
with signed requests, and the embedded PostgreSQL, all in one process. Ctrl-C stops everything,
the database included; the database lives in DATA_DIR, so conversations survive a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bot.config import BotSettings, env_flag, parse_approvers
from bot.server import Bot, http_server, running_bot
from graph import AgentSettings
from sandbox import persistence
from sandbox.config import SandboxConfig
from sandbox.server import running_sandbox

DEMO_APPROVERS = "*=S0APPROVERS"  # the sandbox's "approvers" group: alice and bob, not carol
NOTES_SERVER = Path(__file__).with_name("mcp_notes.py")


def demo_policy(data_dir: Path) -> Path:
    """The policy file the demo runs with unless ``POLICY_FILE`` is set: one block that plugs
    in the notes MCP server shipped in ``sandbox/mcp_notes.py`` (stdio, no account needed).
    Its read-only tool runs without review; deleting a note needs two approvals. A review asked
    for in a DM by someone who may not decide it (carol) waits in #general, where the approvers
    see it (README "Routing")."""
    os.environ.setdefault("DEMO_NOTES_FILE", str(data_dir / "demo-notes.json"))
    path = data_dir / "demo-policy.toml"
    path.write_text(
        "# Written by `./dev demo`: the notes MCP server shipped with the project.\n"
        "[defaults]\n"
        'review_channel = "#general"\n'
        "[mcp.servers.notes]\n"
        f"command = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(NOTES_SERVER))}]\n"
        'env = { NOTES_FILE = { from_env = "DEMO_NOTES_FILE" } }\n'
        'read_only = "auto"\n'
        "destructive_quorum = 2\n"
    )
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo",
        description="Run the Slack sandbox, the bot and an embedded PostgreSQL together.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SANDBOX_PORT", "3100")),
        help="port of the sandbox page (default 3100)",
    )
    parser.add_argument(
        "--bot-port",
        type=int,
        default=int(os.environ.get("PORT", "3000")),
        help="port of the bot's HTTP endpoint (default 3000)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface for both (loopback)")
    return parser.parse_args(argv)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        raise SystemExit(
            f"port {port} is busy ({error.strerror}); pick another with --port or --bot-port"
        ) from error
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def run(args: argparse.Namespace) -> None:
    bot_sock = _bind(args.host, args.bot_port)
    config = SandboxConfig(
        host=args.host, port=args.port, bot_url=f"http://{args.host}:{args.bot_port}/slack/events"
    )
    agent = AgentSettings.from_env()
    agent.data_dir.mkdir(parents=True, exist_ok=True)
    policy = Path(os.environ["POLICY_FILE"]) if os.environ.get("POLICY_FILE") else None
    policy = policy or demo_policy(agent.data_dir)
    async with running_sandbox(config) as sandbox:
        state_file = agent.data_dir / "sandbox-state.json"
        persistence.load(sandbox.workspace, state_file)
        saver = asyncio.create_task(persistence.keep_saved(sandbox.workspace, state_file))
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret=config.signing_secret,
            api_url=sandbox.api_url,
            approvers=parse_approvers(os.environ.get("APPROVERS", DEMO_APPROVERS)),
            policy_file=policy,
            agent=replace(agent),
            ack_process=env_flag(os.environ, "ACK_PROCESS"),
        )
        async with running_bot(settings) as bot, http_server(bot, sock=bot_sock):
            model = (
                "Claude " + agent.anthropic_model
                if agent.anthropic_api_key
                else "the offline planner (set ANTHROPIC_API_KEY for Claude)"
            )
            print(
                f"\n  Slack sandbox ready: {sandbox.url}\n"
                f"  You are alice (an approver); bob approves too, carol may not.\n"
                f"  Try: @approvals what's the weather in Paris and Oslo?\n"
                f"  MCP: @approvals add a note buy milk · list my notes · delete note 1\n"
                f"  (the notes MCP server of {policy}; {_mcp_line(bot)})\n"
                f"  Agent: {model}. Data: {agent.data_dir}\n"
                f"  Ctrl-C stops everything.\n",
                flush=True,
            )
            await _until_interrupted()
        saver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await saver
    bot_sock.close()


def _mcp_line(bot: Bot) -> str:
    servers = bot.service.tool_servers
    return (
        ", ".join(
            f"{s.server}: {len(s.tools)} tools" if s.available else f"{s.server}: down ({s.error})"
            for s in servers
        )
        or "no MCP servers"
    )


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("\n  Stopping ...", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    print("  Stopped.", flush=True)


if __name__ == "__main__":
    main()
