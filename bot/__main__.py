"""Command line: ``python -m bot`` runs the bot; ``python -m bot migrate`` prepares the database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from datetime import timedelta

from bot import audit_cli, policy_cli
from bot.config import BotSettings, ConfigError, remote_from_env
from bot.logs import configure_logging, parse_format, secrets_from_env
from bot.policy import PolicyError

DESCRIPTION = """\
Slack approval bot: chat with an AI agent in Slack; every consequential tool call it proposes
waits for a person to Approve, Edit or send Feedback.

commands:
  (none)     run the bot (it also migrates the database on start-up)
  migrate    create or upgrade the database tables, then exit (run it before rolling out a
             new version, e.g. as a one-off job; safe to run while replicas are running).
             Numbered steps per component (agent, bot), recorded in schema_migrations;
             --status lists applied and pending steps without changing anything
  audit      list or export the audit trail: python -m bot audit --help;
             python -m bot audit verify checks its hash chain (exit 1 at the first broken
             link: a deleted, reordered or altered event)
  policy     check a policy file as start-up does (python -m bot policy check FILE), or
             say which rule a call meets and on which terms it is reviewed (python -m bot
             policy explain FILE --tool T --args '{...}' --user U [--channel C] [--time T]);
             no database or Slack needed
  prune      delete conversations idle for longer than --older-than (agent state, reviews,
             approvals; event claims, ended standing approvals and settled offers by their
             own age), now, once: python -m bot prune
             --older-than 90d [--audit-older-than 365d] [--dry-run]. The sweeper does the
             same hourly when RETENTION_DAYS is set. A conversation with a pending review is
             never pruned; the audit trail only with --audit-older-than (or
             AUDIT_RETENTION_DAYS), each cut recorded in audit_cuts
"""

EPILOG = """\
transport:
  Socket Mode when SLACK_APP_TOKEN is set (no public URL needed); otherwise an HTTP server on
  $PORT serving POST /slack/events, GET /healthz (alive), GET /readyz (database reachable, the
  agent server too with AGENT_URL, not shutting down; lists each MCP server's state) and
  GET /metrics (Prometheus). Request signatures are always verified over HTTP, before a body
  is parsed (401); bodies over 1 MiB are refused unread (413). In HTTP mode a small
  acknowledging process of its own takes Slack's requests on $PORT, answers a signed click at
  once and forwards it (and relays everything else) to the bot over a private Unix socket
  (ACK_PROCESS; docs/architecture.md "The acknowledging process").
  On SIGTERM the bot stops taking requests, lets in-flight decisions and agent runs finish (up to
  25 s), then exits.

environment:
  SLACK_BOT_TOKEN        bot token (xoxb-...), required
  SLACK_SIGNING_SECRET   signing secret, required for HTTP mode
  SLACK_APP_TOKEN        app-level token (xapp-...): selects Socket Mode
  SLACK_API_URL          Web API base URL (default https://slack.com/api/; GovSlack, proxies,
                         the local sandbox)
  PORT, HOST             HTTP listen address (default 0.0.0.0:3000)
  ACK_PROCESS            HTTP mode: acknowledge clicks in a process of their own, so an
                         acknowledgement never waits behind decisions being applied (default
                         true; false serves everything in the bot's process)
  APPROVERS              who may decide, per tool: "post_message=U1,S2;*=U3" (S... = user group;
                         unset: anyone who can see the review); only for tools whose approvers
                         POLICY_FILE leaves unset, else the start stops naming both
  POLICY_FILE            TOML policy: per tool review/auto, approvers, four-eyes, quorum, time
                         to live, reminders, redaction, rules on arguments
                         ([[tools.<name>.rules]] when = "args.amount > 1000" plus settings;
                         the first that holds applies), routing to a channel, escalation
                         (see README "Policy"), and MCP servers
                         whose tools the agent gets, all reviewed by default:
                           [mcp.servers.<name>] command = "..." args = [...] (stdio)
                                                or url = "https://..." (streamable HTTP)
                           env / headers = { NAME = { from_env = "VARIABLE" } } (never literal)
                           timeout = "30s", read_only = "auto", destructive_quorum = 2
                         (see README "MCP servers"); a server down at start is named in the
                         log and /readyz and its tools are missing; the bot still starts
  SWEEP_SECONDS          how often each replica expires, escalates, reminds and finishes
                         interrupted decisions (default 15; 0 turns it off)
  RECOVER_AFTER_SECONDS  a decision or message whose process showed no sign of life (its
                         heartbeat) for this long is finished by the sweeper (default 90)
  THREAD_LEASE_SECONDS   how long a conversation stays locked by a replica that died
                         mid-run (default 30)
  STREAM_REPLIES         write the agent's replies into the thread as they are written
                         (chat.startStream; default true; false posts them whole)
  TASK_CARDS             show each reviewed call as a task (task_card block) in its
                         conversation (default true; false: the review card alone)
  TURNS_PER_USER_PER_MINUTE       agent turns one person may start per minute, all replicas
                                  together (default 10; 0: no limit); over a limit the first
                                  message of a burst is answered why, the rest are skipped
  CONCURRENT_TURNS_PER_USER       agent turns of one person running at once (default 3)
  TURNS_PER_WORKSPACE_PER_MINUTE  agent turns a workspace may start per minute (default 120)
  CONCURRENT_TURNS_PER_WORKSPACE  agent turns of a workspace running at once (default 20)
  DATABASE_URL           PostgreSQL URL; unset: an embedded PostgreSQL in DATA_DIR
  DATA_DIR               where the embedded database lives
                         (default ~/.local/share/slack-approval-bot)
  DATABASE_POOL_SIZE     connections per pool; a process has two, the agent's and the
                         bot's (default 20)
  AGENT_URL              drive a graph on LangGraph Server at this URL instead of running the
                         agent in process (README "Use it with your LangGraph deployment"); the
                         bot keeps its own database, the agent's state lives on the server, and
                         the agent variables below are then the server's business
  AGENT_ASSISTANT        with AGENT_URL: the assistant id or graph id to run (default: the
                         first graph the server lists)
  LANGGRAPH_API_KEY      with AGENT_URL: the key sent to the server (x-api-key)
  ANTHROPIC_API_KEY      use Claude; unset: the offline planner (a few fixed phrasings)
  ANTHROPIC_MODEL        Claude model (default claude-sonnet-5-5)
  ANTHROPIC_BASE_URL     Messages API base URL (proxies, gateways)
  AGENT_TOOL_MODULES     comma-separated Python modules of LangChain tools to add
  AGENT_AUTO_APPROVE     comma-separated tool names that run without review, unless POLICY_FILE
                         or the tool's module says mode "review" (review wins)
  RETENTION_DAYS         delete conversations idle this many days (last activity: the latest
                         checkpoint, review or decision), and event claims that old, hourly
                         from the sweeper (unset: keep forever)
  AUDIT_RETENTION_DAYS   delete audit events older than this many days, recording each cut in
                         audit_cuts (unset: keep forever)
  LOG_LEVEL              logging level (default INFO)
  LOG_FORMAT             json (one object per line; the container default) or text (default)
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,migrate,audit,policy,prune}")
    commands.add_parser("run", help="run the bot (the default)")
    prune = commands.add_parser(
        "prune",
        help="delete idle conversations (and, if asked, old audit events) now",
        description="Delete conversations idle for longer than --older-than: the agent's "
        "state (checkpoints, chunks, decisions), their reviews and approvals; event claims "
        "that old; standing approvals that ended (expired or revoked) that long ago, and "
        "offered terms that old whose review is settled. A conversation with a pending "
        "review is kept. Prints what it deleted.",
    )
    prune.add_argument("--older-than", type=_age, required=True, help="e.g. 90d or 12h")
    prune.add_argument(
        "--audit-older-than",
        type=_age,
        help="also delete audit events older than this (default: keep the audit trail)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
    )
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database tables, then exit",
        description="Apply the pending numbered migration steps of the agent and the bot "
        "(one process at a time; replicas may run it together).",
    )
    migrate.add_argument(
        "--status", action="store_true", help="list applied and pending steps; change nothing"
    )
    audit = commands.add_parser(
        "audit",
        help="list or export the audit trail (table, JSON lines or CSV)",
        description="List or export the append-only audit trail of reviews, decisions and calls "
        "(`audit verify`: check its hash chain).",
    )
    audit_cli.add_arguments(audit)
    policy = commands.add_parser(
        "policy",
        help="check a policy file, or explain which rule a call meets",
        description="Check a policy file as start-up does, or explain which rule one call "
        "meets (no database or Slack needed; MCP servers are not started).",
    )
    policy_cli.add_arguments(policy)
    return parser


async def _migrate(show_status: bool) -> None:
    from bot.migrations import BOT, migrate_bot
    from graph import AgentSettings, migrations
    from graph.db import open_pool, resolve_database_url

    settings = AgentSettings.from_env()
    url = await resolve_database_url(settings.database_url, settings.data_dir)
    async with open_pool(url, max_size=2) as pool:
        if not show_status:
            ran = [
                f"applied {component.name} {step.version}: {step.name}"
                for component, migrate in (
                    (migrations.AGENT, migrations.migrate_agent),
                    (BOT, migrate_bot),
                )
                for step in await migrate(pool)
            ]
            print("\n".join(ran) if ran else "no pending steps")
            return
        for component in (migrations.AGENT, BOT):
            print("\n".join(migrations.status_lines(await migrations.status(pool, component))))
        applied, known = await migrations.checkpoint_status(pool)
        print(f"checkpoints: {applied} of {known} LangGraph checkpointer migrations applied")


def _age(text: str) -> timedelta:
    from bot.retention import RetentionError, parse_age

    try:
        return parse_age(text)
    except RetentionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def _prune(older_than: timedelta, audit_older_than: timedelta | None, dry_run: bool) -> None:
    from bot.migrations import migrate_bot
    from bot.retention import Pruner
    from graph import AgentSettings, open_agent
    from graph.tools.registry import ToolRegistry

    settings = AgentSettings.from_env()
    remote = remote_from_env(os.environ)
    if remote is not None:  # the agent's threads are on LangGraph Server: deleted there
        from graph.db import open_pool, resolve_database_url
        from graph.remote import open_remote_agent

        url = await resolve_database_url(settings.database_url, settings.data_dir)
        async with open_remote_agent(remote) as server, open_pool(url) as pool:
            await migrate_bot(pool)
            report = await Pruner(pool, server).prune(
                older_than, audit_older_than=audit_older_than, dry_run=dry_run
            )
        print("\n".join(report.lines()))
        return
    # No tools: pruning runs no agent turn, so no MCP server is started for it.
    async with open_agent(settings, registry=ToolRegistry([])) as agent:
        await migrate_bot(agent.pool)
        report = await Pruner(agent.pool, agent).prune(
            older_than, audit_older_than=audit_older_than, dry_run=dry_run
        )
    print("\n".join(report.lines()))


def setup_logging() -> None:
    """Configure logging before anything else runs, so no line escapes the format or the
    secret filter (the filter knows every secret in the environment)."""
    try:
        log_format = parse_format(os.environ.get("LOG_FORMAT"))
        level = os.environ.get("LOG_LEVEL", "INFO").upper()
        configure_logging(log_format, level, secrets_from_env())
    except ValueError as error:
        raise ConfigError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        setup_logging()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "audit":
        return asyncio.run(audit_cli.run(args, sys.stdout))
    if args.command == "policy":
        return policy_cli.run(args, sys.stdout, sys.stderr)
    if args.command == "prune":
        try:
            asyncio.run(_prune(args.older_than, args.audit_older_than, args.dry_run))
        except Exception:
            logging.getLogger("bot").exception("prune failed")
            return 1
        return 0
    if args.command == "migrate":
        try:
            asyncio.run(_migrate(args.status))
        except Exception:
            logging.getLogger("bot").exception("migration failed")
            return 1
        if not args.status:
            print("database is up to date")
        return 0
    try:
        settings = BotSettings.from_env()
        settings.load_policy()  # fail at start-up, naming the line, not at the first click
        if settings.policy_file:  # rules type-checked before the database is opened
            policy_cli.checked(settings.policy_file, os.environ)
    except (ConfigError, PolicyError) as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    from bot.server import run

    with contextlib.suppress(KeyboardInterrupt):
        run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
