"""``[mcp.servers.<name>]`` tables of the policy file: the MCP servers whose tools the agent gets.

One table per server: either ``command`` (with ``args`` and ``env``: stdio) or ``url`` (with
``headers``: streamable HTTP), a ``timeout`` per call, and what the server's hints mean here:
``read_only = "auto"`` lets its tools marked ``readOnlyHint`` run without review, and
``destructive_quorum = N`` asks N approvals for its destructive tools. Both only fill what the
file leaves open: an explicit ``mode = "review"`` or ``quorum`` for a tool always wins.

Values of ``env`` and ``headers`` are never written in the file: each is
``{ from_env = "VARIABLE" }`` and read from the environment at start-up (a literal is refused,
naming its line), and every such value is masked in the logs. A variable that is not set makes
that server unavailable (named in the log and ``/readyz``), not the bot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from graph.tools.mcp import SERVER_NAME, McpServerSpec

Locate = Callable[[str | None], str]
SERVER_KEYS = {"command", "args", "env", "url", "headers", "timeout", "read_only",
               "destructive_quorum"}  # fmt: skip


class McpConfigError(ValueError):
    """A server table that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class McpServerConfig:
    """A parsed server table: the spec the agent connects with, and the hint rules."""

    spec: McpServerSpec
    destructive_quorum: int | None = None
    secrets: tuple[str, ...] = ()


def parse_server(
    name: str,
    raw: Any,
    locate: Locate,
    parse_duration: Callable[[Any, str], float],
    env: Mapping[str, str] | None = None,
) -> McpServerConfig:
    env = os.environ if env is None else env
    if not SERVER_NAME.match(name):
        raise McpConfigError(
            f"{locate(None)}: MCP server name {name!r} must be lowercase letters, digits and "
            "inner hyphens (no dot or underscore: tools are named <server>__<tool>)"
        )
    if not isinstance(raw, Mapping):
        raise McpConfigError(f"{locate(None)}: expected a table of settings")
    for key in raw:
        if key not in SERVER_KEYS:
            raise McpConfigError(
                f"{locate(key)}: unknown setting {key!r} (use: {', '.join(sorted(SERVER_KEYS))})"
            )
    if ("command" in raw) == ("url" in raw):
        raise McpConfigError(
            f"{locate(None)}: give either command (stdio) or url (streamable HTTP)"
        )
    problems: list[str] = []
    values: dict[str, dict[str, str]] = {}
    for key in ("env", "headers"):
        values[key] = _from_env(raw.get(key, {}), key, locate, env, problems)
    timeout = parse_duration(raw["timeout"], locate("timeout")) if "timeout" in raw else 30.0
    spec = McpServerSpec(
        name=name,
        command=_command(raw, locate),
        args=_args(raw, locate),
        env=values["env"],
        url=_url(raw, locate),
        headers=values["headers"],
        timeout_seconds=timeout,
        auto_read_only=_read_only(name, raw, locate),
        problem="; ".join(problems) or None,
    )
    secrets = tuple(v for table in values.values() for v in table.values())
    return McpServerConfig(spec, _quorum(raw, locate), secrets)


def _command(raw: Mapping[str, Any], locate: Locate) -> str | None:
    command = raw.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise McpConfigError(f"{locate('command')}: command must be a program name or path")
    return command


def _args(raw: Mapping[str, Any], locate: Locate) -> tuple[str, ...]:
    args = raw.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise McpConfigError(f"{locate('args')}: args must be a list of strings")
    if args and "command" not in raw:
        raise McpConfigError(f"{locate('args')}: args go with command (stdio servers)")
    return tuple(args)


def _url(raw: Mapping[str, Any], locate: Locate) -> str | None:
    url = raw.get("url")
    if url is None:
        return None
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise McpConfigError(f"{locate('url')}: url must be an http:// or https:// address")
    if parts.password:
        raise McpConfigError(
            f"{locate('url')}: no password in the url; send it in headers, from_env"
        )
    return str(url)


def _from_env(
    table: Any, key: str, locate: Locate, env: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """``{ NAME = { from_env = "VARIABLE" } }`` -> ``{NAME: value}``; literals are refused."""
    if not isinstance(table, Mapping):
        raise McpConfigError(f"{locate(key)}: {key} must be a table")
    resolved: dict[str, str] = {}
    for name, value in table.items():
        variable = value.get("from_env") if isinstance(value, Mapping) else None
        if not isinstance(variable, str) or set(value) != {"from_env"}:
            raise McpConfigError(
                f'{locate(key)}: {key}.{name} must be {{ from_env = "VARIABLE" }}: values '
                "(often secrets) come from the environment, never from this file"
            )
        if variable not in env:
            problems.append(f"{variable} is not set (for {key}.{name})")
            continue
        resolved[str(name)] = env[variable]
    return resolved


def _read_only(name: str, raw: Mapping[str, Any], locate: Locate) -> str | None:
    mode = raw.get("read_only")
    if mode is None or mode == "review":
        return None
    if mode != "auto":
        raise McpConfigError(f'{locate("read_only")}: read_only must be "auto" or "review"')
    return (
        f'policy file {locate("read_only")} [mcp.servers.{name}] read_only = "auto" '
        "(the server marks the tool readOnlyHint)"
    )


def _quorum(raw: Mapping[str, Any], locate: Locate) -> int | None:
    quorum = raw.get("destructive_quorum")
    if quorum is None:
        return None
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= 10:
        raise McpConfigError(
            f"{locate('destructive_quorum')}: destructive_quorum must be a whole number 1 to 10"
        )
    return quorum
