"""How the model's words leave a run as they are written, without the agent knowing Slack.

A run's :class:`graph.context.AgentContext` may carry a :class:`ReplyListener` (``reply``).
When it does, ``call_llm`` asks the model for a stream (``astream``) instead of one answer and
hands the listener each piece of text as it arrives, then says the message is complete.

The invariant the bot relies on: for each model call, the pieces given to ``text`` joined are
exactly that message's text (``graph.service.message_text``), and ``message_end`` follows them
once; ``final`` is true when the message proposes no tool call (it ends the turn). A listener's
own failure never fails the run: the pieces are a courtesy, the outcome's ``reply`` stays the
one truth. Without a listener (or for a model without ``astream``) nothing changes.

The listener is process-local (a callable object), so an agent hosted elsewhere
(``graph.remote``) does not stream; its reply is posted whole, as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import get_runtime

from graph.types import ToolResult

log = logging.getLogger(__name__)


class ReplyListener(Protocol):
    """Receives the model's text as it is written (see the module's invariant), and each tool
    result as the run reports it (``graph.service``), before the run's next step starts: so
    a listener can show a call's result before the words the model writes about it."""

    async def text(self, delta: str) -> None: ...

    async def message_end(self, *, final: bool) -> None: ...

    async def tool_result(self, result: ToolResult) -> None: ...


async def tell_result(listener: ReplyListener, result: ToolResult) -> None:
    """Hand ``result`` to ``listener``; its failure never fails the run (the outcome still
    carries every result)."""
    try:
        await listener.tool_result(result)
    except Exception:
        log.warning("the reply listener failed on a tool result", exc_info=True)


class StreamingModel(Protocol):
    def astream(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AsyncIterator[Any]: ...


def reply_listener() -> ReplyListener | None:
    """The current run's listener, if its context has one (a hosted graph's may not)."""
    try:
        runtime = get_runtime()
    except Exception:  # outside a run (a node called directly): no listener
        return None
    listener: ReplyListener | None = getattr(runtime.context, "reply", None)
    return listener


def chunk_text(chunk: Any) -> str:
    """The text of one streamed chunk (Claude streams content blocks; tool input is not text)."""
    content = getattr(chunk, "content", "")
    if isinstance(content, str):
        return content
    parts = [
        block.get("text", "")
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    return "".join(p for p in parts if isinstance(p, str))


async def _tell(listener: ReplyListener, delta: str) -> bool:
    try:
        await listener.text(delta)
    except Exception:  # the listener's trouble is the listener's: the run goes on
        log.warning("the reply listener failed; the reply will be posted whole", exc_info=True)
        return False
    return True


async def streamed_message(
    model: StreamingModel,
    prompt: Sequence[BaseMessage],
    config: RunnableConfig,
    listener: ReplyListener,
) -> AIMessage:
    """Call the model as a stream, telling ``listener`` the text; return the whole message."""
    total: AIMessageChunk | None = None
    telling = True
    async for chunk in model.astream(prompt, config):
        if not isinstance(chunk, AIMessageChunk):
            continue
        total = chunk if total is None else total + chunk
        delta = chunk_text(chunk)
        if delta and telling:
            telling = await _tell(listener, delta)
    message = message_chunk_to_message(total) if total is not None else AIMessage(content="")
    if not isinstance(message, AIMessage):
        message = AIMessage(content=message.content)
    if telling:
        try:
            await listener.message_end(final=not message.tool_calls)
        except Exception:
            log.warning("the reply listener failed at the end of a message", exc_info=True)
    return message
