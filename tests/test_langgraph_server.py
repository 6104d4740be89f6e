"""Against a real LangGraph Server (``langgraph dev``, tests/support/langgraph_dev.py), through
the real ``langgraph_sdk`` clients: our graph and a stock ``create_agent`` with
``HumanInTheLoopMiddleware``, answered in each vocabulary."""

from __future__ import annotations

import os

import pytest
from langgraph_sdk import get_sync_client

from tests.support.langgraph_dev import LangGraphDev, running_langgraph_dev


def test_the_server_hosts_both_graphs(langgraph_dev: LangGraphDev) -> None:
    client = get_sync_client(url=langgraph_dev.url)
    graphs = {a["graph_id"] for a in client.assistants.search()}
    assert {langgraph_dev.agent, langgraph_dev.hitl} <= graphs


def test_the_helper_stops_the_server_and_removes_its_directory() -> None:
    with running_langgraph_dev() as server:
        workdir = server.log.parent
        assert (workdir / "langgraph.json").exists()
        client = get_sync_client(url=server.url)
        assert client.assistants.search()
        assert (workdir / ".langgraph_api").is_dir()  # the server's files stay in its directory
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)  # nothing of its process group is left
