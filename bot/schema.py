"""Every table and index the bot needs, in the order they must be created."""

from __future__ import annotations

from bot.audit import AUDIT_SCHEMA
from bot.home import HOME_SCHEMA
from bot.limits import LIMITS_SCHEMA
from bot.store import BOT_SCHEMA

SCHEMA: tuple[str, ...] = (*BOT_SCHEMA, *HOME_SCHEMA, *AUDIT_SCHEMA, *LIMITS_SCHEMA)
