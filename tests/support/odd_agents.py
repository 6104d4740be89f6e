"""Graphs for LangGraph Server tests whose interrupts are not the common tool review.

- ``free_form``: asks a question no vocabulary knows (``{"please": ..., "options": [...]}``)
  and replies with whatever it is answered: the bot must show it as JSON and take words only.
- ``approve_only``: a stock ``create_agent`` whose ``HumanInTheLoopMiddleware`` allows only
  ``approve`` and ``reject`` for the weather tool: the card must offer no Edit;
- ``approve_alone``: the same with only ``approve`` allowed: nothing but running the call
  answers it, so an expiry must leave it unanswered (and say so, once);
- ``slow``: like ``free_form``, but works a few seconds after it is answered, so a test can find
  its run still going.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

from graph.tools.weather import weather_search
from tests.support.hitl_agent import HITL_TOOL, ConversationScriptedChatModel

FREE_FORM_QUESTION = {"please": "pick a colour", "options": ["red", "blue"]}


def _ask(state: MessagesState) -> dict[str, Any]:
    answer = interrupt(FREE_FORM_QUESTION)
    return {"messages": [AIMessage(content=f"You said: {answer}")]}


def make_free_form() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("ask", _ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(name="free_form")


SLOW_SECONDS = 4.0
"""How long ``slow`` works after it is answered: long enough to find its run still going."""


async def _ask_then_work(state: MessagesState) -> dict[str, Any]:
    answer = interrupt(FREE_FORM_QUESTION)
    await asyncio.sleep(SLOW_SECONDS)
    return {"messages": [AIMessage(content=f"Worked on: {answer}")]}


def make_slow() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("ask", _ask_then_work)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(name="slow")


def make_approve_only() -> Any:
    return create_agent(
        model=ConversationScriptedChatModel(),
        tools=[weather_search],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={HITL_TOOL: {"allowed_decisions": ["approve", "reject"]}}
            )
        ],
        name="approve_only",
    )


def make_approve_alone() -> Any:
    return create_agent(
        model=ConversationScriptedChatModel(),
        tools=[weather_search],
        middleware=[
            HumanInTheLoopMiddleware(interrupt_on={HITL_TOOL: {"allowed_decisions": ["approve"]}})
        ],
        name="approve_alone",
    )


GRAPHS = {
    "free_form": "tests.support.odd_agents:make_free_form",
    "approve_only": "tests.support.odd_agents:make_approve_only",
    "approve_alone": "tests.support.odd_agents:make_approve_alone",
    "slow": "tests.support.odd_agents:make_slow",
}
