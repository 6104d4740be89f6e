"""Keep the sandbox's channels and messages across restarts of the demo.

The bot's state lives in PostgreSQL and survives a restart; without this, the page would come
back empty while the bot still remembers every thread. Only what people see is kept (channels,
members, topics, messages with their blocks and reactions); modals, triggers and ephemeral
notices are momentary in Slack too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from sandbox.workspace import Channel, Message, Workspace

log = logging.getLogger(__name__)


def snapshot(workspace: Workspace) -> dict[str, Any]:
    with workspace._lock:
        return {
            "version": 1,
            "channels": [
                {**dataclasses.asdict(channel), "members": sorted(channel.members)}
                for channel in workspace.channels.values()
            ],
            "messages": {
                channel_id: [dataclasses.asdict(message) for message in messages]
                for channel_id, messages in workspace.messages.items()
            },
            "last_ts_micros": workspace._last_ts_micros,
        }


def restore(workspace: Workspace, data: dict[str, Any]) -> None:
    with workspace._lock:
        for raw in data.get("channels", []):
            channel = Channel(**{**raw, "members": set(raw.get("members", []))})
            workspace.channels[channel.id] = channel
            workspace.messages.setdefault(channel.id, [])
        for channel_id, messages in data.get("messages", {}).items():
            workspace.messages[channel_id] = [Message(**raw) for raw in messages]
        workspace._last_ts_micros = max(
            workspace._last_ts_micros, int(data.get("last_ts_micros", 0))
        )


def save(workspace: Workspace, path: Path) -> None:
    """Write atomically, so a crash mid-write never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(snapshot(workspace)))
    os.replace(temporary, path)


def load(workspace: Workspace, path: Path) -> bool:
    if not path.exists():
        return False
    try:
        restore(workspace, json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable sandbox state %s: %s", path, error)
        return False
    return True


async def keep_saved(workspace: Workspace, path: Path, every: float = 2.0) -> None:
    """Save whenever something changed, at most every ``every`` seconds, until cancelled."""
    last = json.dumps(snapshot(workspace))
    try:
        while True:
            await asyncio.sleep(every)
            current = json.dumps(snapshot(workspace))
            if current != last:
                await asyncio.to_thread(save, workspace, path)
                last = current
    finally:
        with contextlib.suppress(OSError):
            save(workspace, path)
