"""What a run of the agent may use from the outside world, handed in per run, never global.

The Slack tools need a Web API client, but `graph/` must not depend on Slack's SDK, so the
client is described by the one method the tools call. `slack_sdk`'s `AsyncWebClient` fits it,
and so does any stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from graph.streaming import ReplyListener


class SlackWebAPI(Protocol):
    """The slice of an async Slack Web API client the built-in tools need."""

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        """Call a Web API method; the answer behaves like a mapping of Slack's JSON reply.
        ``json``: a JSON body (write methods); ``params``: query parameters (read methods,
        which do not read a JSON body)."""
        ...


@dataclass(frozen=True)
class AgentContext:
    """Per-run dependencies, passed to LangGraph as the run's context.

    ``slack`` is the workspace the tools act on; ``requester`` is who started the turn;
    ``reply``, when set, hears the model's text as it is written (``graph.streaming``).
    """

    slack: SlackWebAPI | None = None
    requester: str | None = None
    team_id: str | None = None
    reply: ReplyListener | None = None


def slack_reply(response: Any) -> Mapping[str, Any]:
    """Return the JSON body of a Slack reply, whether it is a mapping or an SDK response."""
    data = getattr(response, "data", response)
    if not isinstance(data, Mapping):
        raise TypeError(f"unexpected Slack reply: {type(response).__name__}")
    return data
