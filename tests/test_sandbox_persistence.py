"""The demo's page comes back as it was after a restart."""

from __future__ import annotations

from pathlib import Path

from sandbox import persistence
from sandbox.workspace import Workspace


def test_channels_and_messages_survive_a_restart(tmp_path: Path) -> None:
    before = Workspace()
    channel = before.create_channel("launch-plan", "U0ALICE")
    general = before.channel("C0GENERAL")
    parent = before.post(general, "U0ALICE", "hello")
    before.post(general, "U0BOT", "a reply", thread_ts=parent.ts)
    state = tmp_path / "state.json"
    persistence.save(before, state)

    after = Workspace()
    assert persistence.load(after, state)
    assert after.channel("#launch-plan").id == channel.id
    assert [m.text for m in after.thread("C0GENERAL", parent.ts)] == ["hello", "a reply"]
    assert after.new_ts() > parent.ts


def test_unreadable_state_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    assert not persistence.load(Workspace(), state)
