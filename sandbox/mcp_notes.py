"""`python -m sandbox.mcp_notes`: the demo's MCP server, a small notes list over stdio.

Three tools, with the hints a reviewer sees on the card: ``list_notes`` (read-only),
``add_note`` (changes things, not destructive) and ``delete_note`` (destructive). Notes are kept
in a JSON file (``NOTES_FILE``, default ``notes.json`` in the working directory), so they
survive the per-call process that the bot starts for each tool call.

It honours the bot's idempotency key (``_meta.idempotency_key``, the tool call id): a call
replayed after a crash with a key already seen returns the first answer and changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("notes", log_level="WARNING")


def _file() -> Path:
    return Path(os.environ.get("NOTES_FILE") or "notes.json")


def _load() -> dict[str, Any]:
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        data = {}
    return {
        "notes": data.get("notes", []),
        "next": data.get("next", 1),
        "seen": data.get("seen", {}),
    }


def _save(data: dict[str, Any]) -> None:
    path = _file()
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def _key(ctx: Context[Any, Any, Any]) -> str | None:
    meta = ctx.request_context.meta
    key = getattr(meta, "idempotency_key", None) if meta is not None else None
    return str(key) if key else None


def _once(ctx: Context[Any, Any, Any], change: Any) -> str:
    """Apply ``change(data) -> answer`` once per idempotency key."""
    data = _load()
    key = _key(ctx)
    if key and key in data["seen"]:
        return str(data["seen"][key])
    answer = str(change(data))
    if key:
        data["seen"][key] = answer
    _save(data)
    return answer


@server.tool(annotations=ToolAnnotations(title="List notes", readOnlyHint=True))
def list_notes() -> str:
    """List every note with its number."""
    notes = _load()["notes"]
    if not notes:
        return "No notes yet."
    return "\n".join(f"{note['id']}. {note['text']}" for note in notes)


@server.tool(
    annotations=ToolAnnotations(
        title="Add a note", readOnlyHint=False, destructiveHint=False, idempotentHint=False
    )
)
def add_note(text: str, ctx: Context[Any, Any, Any], pinned: bool = False) -> str:
    """Add a note to the list (optionally pinned to the top)."""

    def change(data: dict[str, Any]) -> str:
        note = {"id": data["next"], "text": text, "pinned": pinned}
        data["next"] += 1
        data["notes"].insert(0, note) if pinned else data["notes"].append(note)
        return f"Added note {note['id']}: {text}"

    return _once(ctx, change)


@server.tool(
    annotations=ToolAnnotations(title="Delete a note", readOnlyHint=False, destructiveHint=True)
)
def delete_note(note_id: int, ctx: Context[Any, Any, Any]) -> str:
    """Delete a note by its number. It cannot be undone."""

    def change(data: dict[str, Any]) -> str:
        kept = [note for note in data["notes"] if note["id"] != note_id]
        if len(kept) == len(data["notes"]):
            return f"There is no note {note_id}."
        data["notes"] = kept
        return f"Deleted note {note_id}."

    return _once(ctx, change)


if __name__ == "__main__":
    server.run("stdio")
