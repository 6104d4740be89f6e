"""The bot's layout keeps its promises (docs/architecture.md): the bot reaches the agent only
through the seam, the sweeper imports no listener, listeners get only their part of the flow,
and the flow is a composition root. Read from the source; no database."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def bot_modules() -> list[Path]:
    return list(BOT.rglob("*.py"))


def test_the_bot_reaches_the_agent_through_the_seam_only() -> None:
    for path in bot_modules():
        names = imports(path)
        assert "graph.locks" not in names and "graph.locks.LeaseTimeout" not in names, path
        assert "graph.service" not in names, path
        source = path.read_text()
        assert "service.pool" not in source and "service.registry" not in source, path


def test_the_sweeper_imports_no_listener() -> None:
    assert not any(name.startswith("bot.listeners") for name in imports(BOT / "sweeper.py"))


def test_listeners_get_their_part_not_the_flow() -> None:
    for path in (BOT / "listeners").glob("*.py"):
        source = path.read_text()
        for reach in ("flow.store", "flow.client", "flow.approvers", "flow.service"):
            assert reach not in source, f"{path.name} reaches into {reach}"


def test_the_decision_vocabulary_has_no_slack() -> None:
    names = imports(ROOT / "graph" / "decisions.py") | imports(ROOT / "graph" / "seam.py")
    assert not any(name.startswith(("slack", "bot")) for name in names)
