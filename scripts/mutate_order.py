"""A pytest plugin for ``./dev mutate``: a mutant's tests run in the order of its group's
selection (``pytest_add_cli_args_test_selection`` in ``[tool.mutmut]``), fast unit tests first.

mutmut hands each mutant the tests that reach the mutated function in no particular order and
stops at the first failure (``-x``). Without this, a mutant a 0.1 s unit test kills could first
run 30 s of sandbox tests that also reach it (the ``bot`` group's store and clicks). Loaded by
the configuration ``scripts/mutate.py`` writes (``-p scripts.mutate_order``); tests outside
the selection keep their place after it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest


def selection(pyproject: Path) -> list[str]:
    """The group's test selection, in the order written; empty without one."""
    if not pyproject.is_file():
        return []
    config = tomllib.loads(pyproject.read_text()).get("tool", {}).get("mutmut", {})
    return [str(entry) for entry in config.get("pytest_add_cli_args_test_selection", [])]


def rank(nodeid: str, order: list[str]) -> int:
    """The position of the first selection entry naming this test (a file or a test of it)."""
    for position, entry in enumerate(order):
        if nodeid == entry or nodeid.startswith(entry + "::") or nodeid.startswith(entry + "["):
            return position
    return len(order)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = selection(config.rootpath / "pyproject.toml")
    items.sort(key=lambda item: rank(item.nodeid, order))  # stable: a file keeps its order
