"""MCP servers' tools in the agent, against real servers built with the ``mcp`` package: one
started over stdio (a subprocess per call) and one over streamable HTTP on a loopback port.

Tools appear with their schemas and hints, reviewed by default; the tool call id reaches the
server as ``_meta.idempotency_key`` and is the same on a replay after a crash; a server down
at start, killed mid-call or slower than its timeout gives missing tools or an error result,
never a crashed run; two servers may offer a tool of the same name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.types import Command

from bot.policy import PolicyError, parse_policy
from graph import AgentSettings
from graph.review import InvalidDecision, validate_args
from graph.service import thread_config
from graph.tools.mcp import McpServerSpec
from graph.types import ModeRule, RunOutcome
from tests.conftest import AgentFactory
from tests.support.mcp_servers import HERE, HttpServer, calls
from tests.support.scripted_model import ScriptedModel, tool_calls

TIMEOUT = 60.0  # generous: a stdio server is a fresh Python process per call on a busy machine


def stdio(name: str, log: Path, timeout: float = TIMEOUT, **extra: Any) -> McpServerSpec:
    env = {"MCP_CALL_LOG": str(log), "MCP_TEST_NAME": name}
    return McpServerSpec(
        name, command=sys.executable, args=(str(HERE),), env=env, timeout_seconds=timeout, **extra
    )


def http(server: HttpServer, timeout: float = TIMEOUT) -> McpServerSpec:
    return McpServerSpec(server.name, url=server.url, timeout_seconds=timeout)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def remote(log: Path) -> Iterator[HttpServer]:
    server = HttpServer(log, "remote")
    server.start()
    yield server
    server.kill()


def done(result: object) -> RunOutcome:
    assert isinstance(result, RunOutcome), result
    return result


async def approve_all(service: Any, thread_id: str, outcome: RunOutcome) -> RunOutcome:
    while outcome.pending:
        review = outcome.pending[0]
        outcome = done(
            await service.answer(thread_id, review.interrupt_id, {"action": "continue", "by": "U2"})
        )
    return outcome


async def test_tools_of_both_transports_appear_with_schemas_and_hints_reviewed(
    agent_factory: AgentFactory, log: Path, remote: HttpServer, thread_id: str
) -> None:
    model = ScriptedModel(
        [
            tool_calls(("tickets__create_ticket", {"title": "Printer", "priority": 2})),
            tool_calls(("remote__create_ticket", {"title": "Door", "priority": 3})),
            AIMessage("Both filed."),
        ]
    )
    specs = (stdio("tickets", log), http(remote))
    async with agent_factory(model=model, mcp_servers=specs) as service:
        registry = service.registry
        assert {"tickets__create_ticket", "remote__create_ticket"} <= set(registry.names)
        assert [s.available for s in registry.servers] == [True, True]
        info = registry.info("remote__create_ticket")
        schema = info["args_schema"]
        assert schema["properties"]["priority"]["type"] == "integer"
        assert schema["properties"]["urgent"]["type"] == "boolean"
        assert schema["required"] == ["title", "priority"]
        assert info["display_name"] == "remote.create_ticket" and info["server"] == "remote"
        assert info["annotations"]["openWorldHint"] is True
        assert registry.info("tickets__remove_ticket")["annotations"]["destructiveHint"] is True
        assert all(registry.policy(name) == "review" for name in registry.mcp_tools())

        first = done(await service.start_turn(thread_id, "file two tickets", user="U1"))
        [review] = first.pending
        assert review.request["tool"]["display_name"] == "tickets.create_ticket"
        assert calls(log) == []  # nothing ran before the review
        second = done(
            await service.answer(thread_id, review.interrupt_id, {"action": "continue", "by": "U2"})
        )
        assert [r.content for r in second.tool_results] == [
            "tickets: created 'Printer' (priority 2, urgent False)"
        ]
        final = await approve_all(service, thread_id, second)
        assert final.reply == "Both filed."
        ran = calls(log)
        assert [(c["server"], c["tool"]) for c in ran] == [
            ("tickets", "create_ticket"),
            ("remote", "create_ticket"),
        ]
        assert ran[0]["key"] == review.tool_call_id  # the idempotency key is the tool call id
        assert ran[1]["key"] == final.tool_results[0].tool_call_id


class ProcessDied(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


async def test_the_idempotency_key_is_the_same_on_a_replay_after_a_crash(
    agent_factory: AgentFactory,
    log: Path,
    remote: HttpServer,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process dies after the server ran the call and before the step was checkpointed:
    the recovery runs the call again, with the same key, so the server can run it once."""
    model = ScriptedModel(
        [tool_calls(("remote__create_ticket", {"title": "Once", "priority": 1})), AIMessage("ok")]
    )
    async with agent_factory(model=model, mcp_servers=(http(remote),)) as service:
        [review] = done(await service.start_turn(thread_id, "file it", user="U1")).pending
        saver: Any = service.graph.checkpointer
        original = saver.aput

        async def die_once_the_server_ran_it(*args: Any, **kwargs: Any) -> Any:
            if calls(log):
                raise ProcessDied
            return await original(*args, **kwargs)

        monkeypatch.setattr(saver, "aput", die_once_the_server_ran_it)
        with pytest.raises(ProcessDied):
            await service.graph.ainvoke(
                Command(resume={review.interrupt_id: {"action": "continue", "by": "U2"}}),
                thread_config(thread_id),
                durability="sync",
            )
        monkeypatch.setattr(saver, "aput", original)
        assert [c["key"] for c in calls(log)] == [review.tool_call_id]

        finished = await service.resume_interrupted(thread_id)
        assert finished is not None and finished.reply == "ok"
        keys = [c["key"] for c in calls(log)]
        assert keys == [review.tool_call_id] * len(keys) and keys  # replayed, if at all, same key


async def test_a_server_down_at_start_leaves_its_tools_out_and_the_model_is_told(
    agent_factory: AgentFactory, log: Path, thread_id: str
) -> None:
    model = ScriptedModel([AIMessage("The tickets server is down.")])
    specs = (
        McpServerSpec("tickets", command=str(HERE.parent / "no-such-program")),
        McpServerSpec("remote", url="http://127.0.0.1:9/mcp", timeout_seconds=10),
        McpServerSpec("locked", url="http://127.0.0.1:9/mcp", problem="TOKEN is not set"),
        stdio("fine", log),
    )
    async with agent_factory(model=model, mcp_servers=specs) as service:
        statuses = {s.server: s for s in service.registry.servers}
        assert "No such file" in (statuses["tickets"].error or "")
        assert statuses["remote"].error and statuses["locked"].error == "TOKEN is not set"
        assert statuses["fine"].available
        names = service.registry.names
        assert "fine__lookup" in names and not [n for n in names if n.startswith("tickets__")]
        outcome = done(await service.start_turn(thread_id, "file a ticket", user="U1"))
        assert outcome.reply == "The tickets server is down."
        [system] = [m for m in model.seen[0] if isinstance(m, SystemMessage)]
        assert "tickets (FileNotFoundError" in str(system.content)
        assert "locked (TOKEN is not set)" in str(system.content)


async def test_a_server_that_dies_mid_call_is_an_error_result_and_the_next_call_reconnects(
    agent_factory: AgentFactory, log: Path, thread_id: str
) -> None:
    model = ScriptedModel(
        [
            tool_calls(("tickets__die", {})),
            tool_calls(("tickets__lookup", {"city": "Oslo"})),
            AIMessage("recovered"),
        ]
    )
    registry_rules = (
        ModeRule("tickets__die", "auto", "test"),
        ModeRule("tickets__lookup", "auto", "test"),
    )
    async with agent_factory(
        model=model, mcp_servers=(stdio("tickets", log),), mode_rules=registry_rules
    ) as service:
        outcome = done(await service.start_turn(thread_id, "go", user="U1"))
        died, looked = outcome.tool_results
        assert died.status == "error" and "MCP server 'tickets' failed" in died.content
        assert looked.status == "success" and looked.content == "tickets: Oslo is lovely"
        assert outcome.reply == "recovered"


async def test_an_http_server_killed_mid_call_then_back_is_reached_again(
    agent_factory: AgentFactory, log: Path, remote: HttpServer, thread_id: str
) -> None:
    import asyncio

    model = ScriptedModel(
        [
            tool_calls(("remote__hang", {})),
            tool_calls(("remote__lookup", {"city": "Rome"})),
            AIMessage("back"),
        ]
    )
    rules = (ModeRule("remote__hang", "auto", "test"), ModeRule("remote__lookup", "auto", "test"))
    async with agent_factory(model=model, mcp_servers=(http(remote),), mode_rules=rules) as service:
        turn = asyncio.create_task(service.start_turn(thread_id, "go", user="U1"))
        for _ in range(int(TIMEOUT / 0.05)):  # bounded: until the server has the call
            if any(c["tool"] == "hang" for c in calls(log)) or turn.done():
                break
            await asyncio.sleep(0.05)
        remote.kill()
        remote.start()
        outcome = done(await asyncio.wait_for(turn, TIMEOUT * 2))
        hung, looked = outcome.tool_results
        assert hung.status == "error" and "remote" in hung.content
        assert looked.content == "remote: Rome is lovely"


async def test_a_server_slower_than_its_timeout_is_an_error_result(
    agent_factory: AgentFactory, log: Path, remote: HttpServer, thread_id: str
) -> None:
    model = ScriptedModel([tool_calls(("remote__wait", {"seconds": 600})), AIMessage("too slow")])
    rules = (ModeRule("remote__wait", "auto", "test"),)
    async with agent_factory(
        model=model, mcp_servers=(http(remote, timeout=10),), mode_rules=rules
    ) as service:
        outcome = done(await service.start_turn(thread_id, "wait", user="U1"))
        [slow] = outcome.tool_results
        assert slow.status == "error"
        assert "did not answer within 10 s" in slow.content
        assert outcome.reply == "too slow"


async def test_two_servers_with_a_tool_of_the_same_name(
    agent_factory: AgentFactory, log: Path, remote: HttpServer, thread_id: str
) -> None:
    model = ScriptedModel(
        [
            tool_calls(("remote__lookup", {"city": "Lima"}), ("local__lookup", {"city": "Lima"})),
            AIMessage("both"),
        ]
    )
    rules = (ModeRule("*.lookup", "auto", "test"),)
    async with agent_factory(
        model=model, mcp_servers=(http(remote), stdio("local", log)), mode_rules=rules
    ) as service:
        assert {"remote__lookup", "local__lookup"} <= set(service.registry.names)
        outcome = done(await service.start_turn(thread_id, "look", user="U1"))
        assert sorted(r.content for r in outcome.tool_results) == [
            "local: Lima is lovely",
            "remote: Lima is lovely",
        ]
        assert sorted(c["server"] for c in calls(log)) == ["local", "remote"]


async def test_edits_are_checked_against_the_servers_json_schema(
    agent_factory: AgentFactory, log: Path
) -> None:
    async with agent_factory(mcp_servers=(stdio("tickets", log),)) as service:
        tool = service.registry.get("tickets__create_ticket")
        assert tool is not None
        good = {"title": "Door", "priority": 4, "urgent": True}
        assert validate_args(tool, good) == good
        for wrong, field in [
            ({"title": "Door", "priority": "high"}, "priority"),
            ({"title": "Door", "priority": 2, "urgent": "yes"}, "urgent"),
            ({"title": "  ", "priority": 2}, "title"),
            ({"title": "Door"}, "priority"),
            ({"title": "Door", "priority": 2, "colour": "red"}, "colour"),
        ]:
            with pytest.raises(InvalidDecision) as refused:
                validate_args(tool, wrong)
            assert refused.value.field == field


async def test_hints_never_lower_what_the_file_states(
    agent_factory: AgentFactory, log: Path
) -> None:
    """``read_only = "auto"`` lets read-only tools run; ``mode = "review"`` written for the
    tool (or a pattern, or [defaults]) keeps it reviewed."""
    auto = 'policy file p [mcp.servers.tickets] read_only = "auto"'
    specs = (stdio("tickets", log, auto_read_only=auto), stdio("other", log, auto_read_only=auto))
    rules = (ModeRule("other.lookup", "review", 'policy file p [tools."other.lookup"]'),)
    async with agent_factory(mcp_servers=specs, mode_rules=rules) as service:
        registry = service.registry
        assert registry.auto_rule("tickets__lookup") == auto
        assert registry.auto_rule("tickets__big") == auto
        assert registry.policy("tickets__create_ticket") == "review"  # not read-only
        assert registry.policy("other__lookup") == "review"
        assert any("other__lookup is reviewed" in w for w in registry.overruled)


# -- the policy file's [mcp.servers.<name>] tables -------------------------------------------


SERVERS = """\
[defaults]
quorum = 1

[tools."github.*"]
approvers = ["U0ALICE"]

[tools."github.merge"]
quorum = 1

[mcp.servers.github]
url = "http://127.0.0.1:8931/mcp"
headers = { Authorization = { from_env = "GITHUB_AUTH" } }
timeout = "10s"
destructive_quorum = 3

[mcp.servers.notes]
command = "python"
args = ["-m", "notes"]
env = { TOKEN = { from_env = "NOTES_TOKEN" } }
read_only = "auto"
"""


def test_server_tables_read_values_from_the_environment_only() -> None:
    policy = parse_policy(SERVERS, "p.toml", env={"GITHUB_AUTH": "Bearer s3cret-value"})
    github, notes = policy.mcp_servers
    assert github.url == "http://127.0.0.1:8931/mcp" and github.timeout_seconds == 10
    assert github.headers == {"Authorization": "Bearer s3cret-value"}
    assert github.transport == "streamable_http" and github.problem is None
    assert notes.command == "python" and notes.args == ("-m", "notes")
    assert notes.problem == "NOTES_TOKEN is not set (for env.TOKEN)"  # down, not a crash
    assert notes.auto_read_only and "[mcp.servers.notes]" in notes.auto_read_only
    assert policy.secrets == ("Bearer s3cret-value",)
    policy.check_tools(["weather_search"], "p.toml")  # server.tool names may wait for a server


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('url = "http://h/mcp"\nheaders = { A = "literal" }', "line 4: headers.A must be"),
        ('command = "x"\nenv = { A = 1 }', "line 4: env.A must be"),
        ('command = "x"\nurl = "http://h"', "line 2: give either command"),
        ('url = "ftp://h"', "line 3: url must be"),
        ('url = "http://u:pw@h/mcp"', "no password in the url"),
        ('command = "x"\nread_only = "yes"', 'line 4: read_only must be "auto"'),
        ('command = "x"\ndestructive_quorum = 0', "line 4: destructive_quorum"),
        ('command = "x"\nretries = 2', "line 4: unknown setting 'retries'"),
    ],
)
def test_bad_server_tables_are_refused_naming_the_line(table: str, words: str) -> None:
    text = f"# servers\n[mcp.servers.svc]\n{table}\n"
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "p.toml", env={})
    assert words in str(refused.value)
    assert "p.toml" in str(refused.value)


def test_a_server_name_must_not_hold_a_dot_or_underscore() -> None:
    with pytest.raises(PolicyError, match="line 1: MCP server name 'my_git'"):
        parse_policy('[mcp.servers.my_git]\ncommand = "x"\n', "p.toml", env={})


def test_a_pattern_must_name_a_configured_server() -> None:
    policy = parse_policy('[tools."gitlab.*"]\nmode = "review"\n', "p.toml", env={})
    with pytest.raises(PolicyError, match=r"no tool named gitlab\.\*"):
        policy.check_tools(["weather_search"], "p.toml")


def test_destructive_quorum_fills_only_what_the_file_leaves_open() -> None:
    policy = parse_policy(SERVERS, "p.toml", env={"GITHUB_AUTH": "x", "NOTES_TOKEN": "y"})
    catalog = {
        "github__delete_repo": ("github.delete_repo", {"destructiveHint": True}),
        "github__merge": ("github.merge", {"destructiveHint": True}),
        "github__comment": ("github.comment", {"destructiveHint": False}),
        "github__unhinted": ("github.unhinted", {}),
        "notes__read": ("notes.read", {"readOnlyHint": True}),
    }
    resolved = policy.with_mcp_tools(catalog)
    assert resolved.for_tool("github__delete_repo").quorum == 3
    assert resolved.for_tool("github__delete_repo").approvers == frozenset({"U0ALICE"})
    assert resolved.for_tool("github__merge").quorum == 1  # its own table says 1: explicit wins
    assert resolved.for_tool("github__comment").quorum == 1
    assert resolved.for_tool("github__unhinted").quorum == 3  # no hints: destructive (MCP)
    assert resolved.for_tool("notes__read").quorum == 1
    rules = policy.mode_rules("p.toml")
    assert rules == ()  # approvers and quorum only: no word on review here


# -- the real Claude path: names Claude accepts ------------------------------------------------


async def test_claude_gets_mcp_tools_under_names_it_accepts_and_reads_their_results(
    agent_factory: AgentFactory, log: Path, remote: HttpServer, thread_id: str
) -> None:
    """Through langchain-anthropic and the SDK to the Anthropic stand-in, which refuses a tool
    name that the real API refuses (``remote.create_ticket`` would be)."""
    from graph.model import build_model
    from graph.runtime import configured_registry
    from tests.support.anthropic_stub import TOOL_NAME, running_anthropic_stub

    settings_for_tools = AgentSettings(mcp_servers=(http(remote),))
    registry = await configured_registry(settings_for_tools)
    async with running_anthropic_stub() as stub:
        model = build_model(
            AgentSettings(
                anthropic_api_key=stub.api_key,
                anthropic_base_url=stub.url,
                anthropic_model="claude-sonnet-4-6",
                model_timeout_seconds=20,
            ),
            registry.tools,
        )
        [call] = stub.reply_tool_calls([("remote__create_ticket", {"title": "T", "priority": 5})])
        stub.reply_text("Filed as asked.")
        async with agent_factory(model=model, registry=registry) as service:
            [review] = done(await service.start_turn(thread_id, "file T", user="U1")).pending
            assert review.tool_call_id == call.id
            final = done(
                await service.answer(
                    thread_id, review.interrupt_id, {"action": "continue", "by": "U2"}
                )
            )
        assert final.reply == "Filed as asked."
        assert [r.status for r in stub.recorded if r.status >= 400] == []
        names = [tool["name"] for tool in stub.requests[0]["tools"]]
        assert "remote__create_ticket" in names and all(TOOL_NAME.match(n) for n in names)
        last = stub.requests[-1]["messages"][-1]
        [result] = [b for b in last["content"] if b["type"] == "tool_result"]
        assert "remote: created 'T' (priority 5, urgent False)" in str(result["content"])
        assert calls(log)[0]["key"] == call.id


def test_a_table_for_a_tool_of_a_server_that_is_down_does_not_stop_the_start() -> None:
    text = (
        '[mcp.servers.notes]\ncommand = "x"\n'
        '[tools."notes.delete_note"]\nmode = "review"\nquorum = 2\n'
        "[tools.notes__add_note]\nquorum = 3\n"
    )
    policy = parse_policy(text, "p.toml", env={})
    policy.check_tools(["weather_search"], "p.toml")  # the notes server has no tools yet
    from graph.tools.registry import build_registry

    build_registry(rules=policy.mode_rules("p.toml"))  # nothing to match: not an error
    resolved = policy.with_mcp_tools(
        {
            "notes__delete_note": ("notes.delete_note", {"destructiveHint": True}),
            "notes__add_note": ("notes.add_note", {"destructiveHint": False}),
        }
    )
    assert resolved.for_tool("notes__delete_note").quorum == 2
    assert resolved.for_tool("notes__add_note").quorum == 3
