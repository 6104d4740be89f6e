"""Where a conversation lives in Slack, and the LangGraph thread id derived from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlackThread:
    team_id: str | None
    channel_id: str
    thread_ts: str

    @property
    def thread_id(self) -> str:
        """One LangGraph thread per Slack thread: stable across replicas and restarts."""
        return f"slack:{self.team_id or '-'}:{self.channel_id}:{self.thread_ts}"
