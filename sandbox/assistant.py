"""The thread status line (``assistant.threads.setStatus``) and the agent session's lifecycle
(``agents.sessions.setStatus``).

As in Slack: the status belongs to a thread (``channel_id`` + ``thread_ts``), an empty status
clears it, at most ``MAX_LOADING`` loading messages rotate under it, and the app posting in the
thread clears it (``Workspace.post``). A session is one of ``SESSION_STATES``, per thread,
created by its first status; every state set is kept in order (``sessions``) for the tests.
``unavailable`` / ``sessions_unavailable`` make a method answer as a workspace without it
does (``unknown_method``, ``missing_scope``...), for the bot's fallback tests.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.errors import ApiError
from sandbox.workspace import BOT_USER_ID, Json, Workspace

MAX_LOADING = 10
MAX_PROMPTS = 4
SESSION_STATES = frozenset({"active", "processing", "suspended", "closed"})


def assistant_thread_started_event(user: str, channel: str, thread_ts: str) -> Json:
    """``assistant_thread_started``: a person opened a conversation in the assistant view."""
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "channel_id": channel,
            "thread_ts": thread_ts,
            "context": {},
        },
        "event_ts": thread_ts,
    }


class AssistantMethods:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.unavailable: str | None = None
        self.sessions_unavailable: str | None = None

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "agents.sessions.setStatus": self.set_session_status,
            "assistant.threads.setStatus": self.set_status,
            "assistant.threads.setSuggestedPrompts": self.set_suggested_prompts,
        }

    def set_suggested_prompts(self, args: Json) -> Json:
        """Up to ``MAX_PROMPTS`` prompts, each a ``title`` and the ``message`` it sends."""
        if self.unavailable:
            raise ApiError(self.unavailable)
        chan = self.ws.channel(str(args.get("channel_id") or ""))
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or not 0 < len(prompts) <= MAX_PROMPTS:
            raise ApiError("invalid_arguments", detail=f"1 to {MAX_PROMPTS} prompts")
        if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            raise ApiError("invalid_arguments", detail="each prompt needs title and message")
        key = (chan.id, str(args.get("thread_ts") or ""))
        self.ws.suggested[key] = [dict(p) for p in prompts]
        return {}

    @property
    def sessions(self) -> dict[tuple[str, str], list[str]]:
        """Each thread's session states, in the order they were set (the last is current)."""
        return self.ws.sessions

    def session_of(self, channel_id: str, thread_ts: str) -> str | None:
        return self.ws.session_of(channel_id, thread_ts)

    def _bot_thread(self, args: Json) -> tuple[str, str]:
        """The channel and thread a status call names, checked as Slack does: the bot is in
        the channel, and the thread exists."""
        chan = self.ws.channel(str(args.get("channel_id") or ""))
        if BOT_USER_ID not in chan.members:
            raise ApiError("channel_not_found")
        thread_ts = str(args.get("thread_ts") or "")
        if not thread_ts:
            raise ApiError("invalid_thread_ts")
        self.ws.find_message(chan.id, thread_ts)
        return chan.id, thread_ts

    def set_session_status(self, args: Json) -> Json:
        """One of ``SESSION_STATES`` for the session of a thread the bot is in."""
        if self.sessions_unavailable:
            raise ApiError(self.sessions_unavailable)
        channel_id, thread_ts = self._bot_thread(args)
        status = args.get("status")
        if status not in SESSION_STATES:
            raise ApiError("invalid_arguments", detail=f"status is one of {sorted(SESSION_STATES)}")
        initiator = args.get("initiator_user_id")
        if initiator is not None:
            self.ws.user(str(initiator))  # user_not_found as Slack answers
        self.ws.set_session(channel_id, thread_ts, str(status))
        return {}

    def set_status(self, args: Json) -> Json:
        if self.unavailable:
            raise ApiError(self.unavailable)
        channel_id, thread_ts = self._bot_thread(args)
        if "status" not in args:
            raise ApiError("invalid_arguments", detail="status is required")
        loading = args.get("loading_messages") or []
        if not isinstance(loading, list) or len(loading) > MAX_LOADING:
            raise ApiError("invalid_arguments", detail=f"at most {MAX_LOADING} loading_messages")
        self.ws.set_status(channel_id, thread_ts, str(args["status"]), [str(m) for m in loading])
        return {}
