"""Failures in words: a short, human sentence for each family of error (the log gets the
traceback). Every path tells a person what happened; details never go into the channel."""

from __future__ import annotations

import psycopg
import psycopg_pool

from graph import AgentBusy, AgentUnreachable

DB_DOWN = "I can't reach my database right now, so nothing was changed. Please try again shortly."
BUSY = "This conversation is busy with another request; please try again in a moment."
MODEL_DOWN = "I couldn't reach the language model just now. Please try again shortly."
AGENT_DOWN = "I can't reach the agent server right now. Please try again shortly."
BROKEN = "Something went wrong on my side; the details are in my log."


def explain(error: BaseException) -> str:
    """A short, human sentence for a failure; the log gets the traceback."""
    if isinstance(error, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return DB_DOWN
    if isinstance(error, AgentBusy):
        return BUSY
    if isinstance(error, AgentUnreachable):
        return AGENT_DOWN
    module = type(error).__module__
    if module.startswith(("anthropic", "httpx", "langchain_anthropic")):
        return MODEL_DOWN
    return BROKEN
