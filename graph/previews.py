"""What a call would do, said before anyone decides: a tool's preview.

A tool may offer a *preview*: an async function of the call's arguments and the run's context
(:class:`graph.context.AgentContext`, so it can ask the same workspace the tool acts on) that
returns a :class:`Preview`. It must have **no side effect**: it runs while the call is still
waiting for a person, possibly more than once (again after an edit, again after a restart).

How a tool declares one:

- a module of tools (``AGENT_TOOL_MODULES``) sets ``PREVIEWS = {"tool_name": async_fn}``, next
  to its ``REVIEW_POLICY``; the built-in Slack tools do the same (``graph.tools.slack_previews``);
- an MCP tool names a companion tool of the same server in its ``_meta`` under
  :data:`MCP_PREVIEW_KEY` (see ``graph.tools.mcp_previews``).

The preview crosses the seam as plain data (``Agent.preview``); the bot shows it on the review
card, masked by the redaction policy. A preview that fails or takes longer than
:data:`PREVIEW_SECONDS` is "no preview": it never blocks or fails the review.

Text fields: ``summary``, ``message`` and ``notes`` are Slack mrkdwn written by the tool's
author (escape anything that came from a person with :func:`plain`); the bot keeps only
mentions (``<@U…>``) and channel links (``<#C…>``) of the ``<…>`` markup in them, so a preview
can never ping a channel or hide a link. ``before`` and ``after`` are plain text (the bot
escapes them): a value the call replaces and the one it sets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from graph.context import AgentContext

log = logging.getLogger(__name__)

PREVIEW_SECONDS = 2.0
"""How long a preview may take; a slower one is shown as "no preview"."""
MCP_PREVIEW_KEY = "slack-approval-bot/preview"
"""The ``_meta`` key of an MCP tool naming its (read-only) preview tool on the same server."""


@dataclass(frozen=True)
class Preview:
    """What a call would do, in a reviewer's words (see the module docs for escaping).

    ``ok`` is False when the preview itself found the call would fail (an invalid name, a
    channel that does not exist): the card flags it, the call still waits for a decision."""

    summary: str
    message: str | None = None
    """The message exactly as the call would post it (Slack mrkdwn), shown as a message."""
    before: str | None = None
    after: str | None = None
    notes: tuple[str, ...] = ()
    ok: bool = True

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Preview:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        notes = data.get("notes")
        return cls(
            summary=str(data.get("summary") or ""),
            message=text("message"),
            before=text("before"),
            after=text("after"),
            notes=tuple(str(n) for n in notes) if isinstance(notes, list | tuple) else (),
            ok=data.get("ok") is not False,
        )


PreviewFn = Callable[[dict[str, Any], AgentContext], Awaitable[Preview]]
"""``preview(args, context) -> Preview``: side-effect free."""


def plain(text: str) -> str:
    """Text from a person, made safe for a preview's mrkdwn fields (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def run_preview(
    preview: PreviewFn,
    args: dict[str, Any],
    context: AgentContext,
    *,
    seconds: float = PREVIEW_SECONDS,
) -> Preview | None:
    """The preview, or None when it failed or took longer than ``seconds`` (logged, with
    the tool's error; never raised: a preview never stands in the way of a review)."""
    try:
        async with asyncio.timeout(seconds):
            found = await preview(dict(args), context)
    except TimeoutError:
        log.info("a preview took longer than %g s; shown as no preview", seconds)
        return None
    except Exception:
        log.warning("a preview failed; shown as no preview", exc_info=True)
        return None
    return found if isinstance(found, Preview) else None
