"""The bot's tables, versioned: the steps of component ``bot`` (see ``graph.migrations``).

The bot owns its tables and migrates them itself, on its own pool, at start-up
(``bot.startup.running_bot``) and with ``python -m bot migrate``; the agent migrates its own.

Step 1 is the schema as it was before versions were recorded, every statement idempotent
(``IF NOT EXISTS``, ``DO $$`` blocks that test before converting), so a database created by
earlier releases, the demo's embedded one included, upgrades in place. Never edit a released
step: add one.
"""

from __future__ import annotations

from graph.db import Pool
from graph.migrations import Component, Step, apply

BOT_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS slack_reviews (
        ref text PRIMARY KEY,
        thread_id text NOT NULL,
        interrupt_id text NOT NULL,
        team_id text,
        channel_id text NOT NULL,
        thread_ts text NOT NULL,
        message_ts text,
        tool_name text NOT NULL,
        request json NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        action text,
        decided_by text,
        decided_at timestamptz,
        edited_args jsonb,
        feedback text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (thread_id, interrupt_id)
    )
    """,
    # json, not jsonb: jsonb sorts object keys, and people read arguments (and fill in the
    # Edit form) in the order the tool declares them.
    """
    DO $$ BEGIN
        IF (SELECT data_type FROM information_schema.columns
            WHERE table_name = 'slack_reviews' AND column_name = 'request') = 'jsonb' THEN
            ALTER TABLE slack_reviews ALTER COLUMN request TYPE json USING request::json;
        END IF;
    END $$
    """,
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS expires_at timestamptz",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS remind_at timestamptz",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS reminded_at timestamptz",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS needs_sync boolean NOT NULL DEFAULT false",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS proposed_edit jsonb",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS proposed_by text",
    # Every message showing the review (normally one; more if a poster died before storing
    # the ts and the copy could not be found again), and the applier's sign of life.
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS message_copies text[] NOT NULL "
    "DEFAULT '{}'",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz",
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_due
        ON slack_reviews (expires_at) WHERE status = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_unsettled
        ON slack_reviews (decided_at) WHERE status = 'deciding' OR needs_sync
    """,
    # pending_for's (dropped by step 2): what a user asked for, may decide, newest first
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_pending_requester
        ON slack_reviews ((request->>'requested_by'), created_at) WHERE status = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_pending_tool
        ON slack_reviews (tool_name, created_at) WHERE status = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_pending_recent
        ON slack_reviews (created_at) WHERE status = 'pending'
    """,
    """
    CREATE TABLE IF NOT EXISTS slack_review_approvals (
        ref text NOT NULL REFERENCES slack_reviews (ref),
        version integer NOT NULL,
        user_id text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (ref, version, user_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS slack_events (
        event_id text PRIMARY KEY,
        status text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "ALTER TABLE slack_events ADD COLUMN IF NOT EXISTS body jsonb",
    "ALTER TABLE slack_events ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz",
    """
    CREATE INDEX IF NOT EXISTS slack_events_handling
        ON slack_events (claimed_at) WHERE status = 'handling'
    """,
    """
    CREATE TABLE IF NOT EXISTS slack_conversations (
        thread_id text PRIMARY KEY,
        team_id text,
        channel_id text NOT NULL,
        thread_ts text NOT NULL,
        started_by text,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)


HOME_SCHEMA: tuple[str, ...] = (
    # Serves "pending reviews, newest first" without sorting the whole table.
    "CREATE INDEX IF NOT EXISTS slack_reviews_status_created "
    "ON slack_reviews (status, created_at DESC)",
)


# The allowed outcomes are checked in Python (``AuditLog.record``), not by a CHECK constraint:
# adding an outcome then needs no migration of a table that may hold years of rows.
AUDIT_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS audit_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        outcome text NOT NULL,
        thread_id text NOT NULL,
        interrupt_id text NOT NULL,
        tool_call_id text NOT NULL,
        tool_name text NOT NULL,
        proposed_args jsonb,
        edited_args jsonb,
        executed_args jsonb,
        requested_by text,
        decided_by text,
        channel_id text,
        message_ts text,
        detail text
    )
    """,
    "CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at, id)",
    "CREATE INDEX IF NOT EXISTS audit_events_tool_at ON audit_events (tool_name, at)",
    # A run presented again (recovery, a replayed event) must not record an auto call twice.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS audit_events_auto_once
        ON audit_events (thread_id, tool_call_id) WHERE outcome = 'auto_approved'
    """,
    """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The audit trail records history; add a new event instead.';
    END
    $$
    """,
    # CREATE OR REPLACE TRIGGER needs PostgreSQL 14; a DO block works on any server we support.
    """
    DO $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'audit_events_no_change' AND tgrelid = 'audit_events'::regclass
        ) THEN
            CREATE TRIGGER audit_events_no_change
                BEFORE UPDATE OR DELETE ON audit_events
                FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
        END IF;
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'audit_events_no_truncate' AND tgrelid = 'audit_events'::regclass
        ) THEN
            CREATE TRIGGER audit_events_no_truncate
                BEFORE TRUNCATE ON audit_events
                FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
        END IF;
    END
    $$
    """,
)


LIMITS_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS slack_turns (
        event_id text PRIMARY KEY,
        team_id text NOT NULL,
        user_id text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS slack_turns_team ON slack_turns (team_id, started_at)",
    """
    CREATE TABLE IF NOT EXISTS slack_turn_refusals (
        team_id text NOT NULL,
        user_id text NOT NULL,
        last_refused_at timestamptz NOT NULL,
        PRIMARY KEY (team_id, user_id)
    )
    """,
)

INITIAL: tuple[str, ...] = (*BOT_SCHEMA, *HOME_SCHEMA, *AUDIT_SCHEMA, *LIMITS_SCHEMA)
"""Every table and index the bot had before versions were recorded, in creation order."""

DROP_PENDING_FOR_INDEXES: tuple[str, ...] = (
    # They served BotStore.pending_for, which nothing called (the App Home reads the
    # status/created_at index) yet every write to slack_reviews maintained them.
    "DROP INDEX IF EXISTS slack_reviews_pending_requester",
    "DROP INDEX IF EXISTS slack_reviews_pending_tool",
    "DROP INDEX IF EXISTS slack_reviews_pending_recent",
)

RETENTION: tuple[str, ...] = (
    # Retention's queries: conversations oldest first (from a cursor), event claims by age.
    "CREATE INDEX IF NOT EXISTS slack_conversations_created "
    "ON slack_conversations (created_at, thread_id)",
    "CREATE INDEX IF NOT EXISTS slack_events_claimed ON slack_events (claimed_at)",
    # Each sanctioned cut of the audit trail (bot.retention.Pruner.prune_audit), so what is
    # missing from the trail is itself on record (and a hash chain can restart from it).
    """
    CREATE TABLE IF NOT EXISTS audit_cuts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        cut_before timestamptz NOT NULL,
        deleted bigint NOT NULL,
        first_id bigint NOT NULL,
        last_id bigint NOT NULL,
        last_at timestamptz NOT NULL
    )
    """,
    # The append-only trigger lets through the deletion of rows older than a cut declared in
    # the transaction (set_config('bot.audit_prune_before', ..., true)); nothing else.
    """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        cut timestamptz;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            cut := NULLIF(current_setting('bot.audit_prune_before', true), '')::timestamptz;
            IF cut IS NOT NULL AND OLD.at < cut THEN
                RETURN OLD;
            END IF;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The audit trail records history; add a new event instead.';
    END
    $$
    """,
)

REMIND_INDEX: tuple[str, ...] = (
    # remind_due reads pending reviews not reminded yet by remind_at: without it, every pass
    # filters every pending review (a backlog of a million is a million rows a sweep).
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_remind
        ON slack_reviews (remind_at) WHERE status = 'pending' AND reminded_at IS NULL
    """,
)

POLICY_MATCH: tuple[str, ...] = (
    # The rule a review was registered under (bot.policy_rules.CallPolicy.stored), so every
    # later step applies the same policy, whatever the clock says then. NULL: a review from
    # before rules, resolved from its own row.
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS policy_match jsonb",
)

ROUTING_AND_ESCALATION: tuple[str, ...] = (
    # Where a routed review's card lives (NULL: in the conversation, as before) and the link
    # back to the conversation the card shows; when the review escalates, and when it did.
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS card_channel text",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS conversation_link text",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS escalate_at timestamptz",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS escalated_at timestamptz",
    # who joins the approvers on escalation, as the policy said when the review was asked
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS escalate_to text[] NOT NULL DEFAULT '{}'",
    # escalate reads pending reviews not escalated yet by escalate_at, like the reminders.
    """
    CREATE INDEX IF NOT EXISTS slack_reviews_escalate
        ON slack_reviews (escalate_at) WHERE status = 'pending' AND escalated_at IS NULL
    """,
)
STANDING_GRANTS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS standing_grants (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        team_id text,
        tool_name text NOT NULL,
        constraints jsonb NOT NULL,
        created_by text[] NOT NULL CHECK (cardinality(created_by) > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        max_uses integer NOT NULL CHECK (max_uses > 0),
        uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
        channel_id text NOT NULL,
        thread_id text NOT NULL,
        interrupt_id text NOT NULL,
        tool_call_id text NOT NULL,
        source_ref text NOT NULL UNIQUE,
        revoked_at timestamptz,
        revoked_by text
    )
    """,
    # The lookup when a call is proposed, and the App Home's list: active grants only.
    "CREATE INDEX IF NOT EXISTS standing_grants_active ON standing_grants "
    "(tool_name, expires_at) WHERE revoked_at IS NULL",
    # Each approver's terms with their approval of one version of a review (quorum > 1).
    """
    CREATE TABLE IF NOT EXISTS standing_grant_offers (
        ref text NOT NULL,
        version integer NOT NULL,
        user_id text NOT NULL,
        seconds double precision NOT NULL,
        max_uses integer NOT NULL,
        scope text[] NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (ref, version, user_id)
    )
    """,
)
"""Standing approvals (``bot.grants``): the grants, and each approver's terms offered with
their approval while a quorum is gathered."""

PREVIEWS_AND_RECEIPTS: tuple[str, ...] = (
    # What a call would do (bot.previews), per review, with the digest of the arguments it
    # describes; and what it did. Both go with their review (retention deletes reviews).
    """
    CREATE TABLE IF NOT EXISTS review_previews (
        ref text PRIMARY KEY REFERENCES slack_reviews (ref) ON DELETE CASCADE,
        args_digest text NOT NULL,
        preview jsonb,
        made_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS review_receipts (
        ref text PRIMARY KEY REFERENCES slack_reviews (ref) ON DELETE CASCADE,
        receipt jsonb NOT NULL,
        made_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

REPLY_STREAMS: tuple[str, ...] = (
    # Streamed replies still open (bot.reply_streams): the sweeper closes those a dead process
    # left, so none stays "typing".
    """
    CREATE TABLE IF NOT EXISTS bot_reply_streams (
        channel_id text NOT NULL,
        ts text NOT NULL,
        thread_id text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        touched_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel_id, ts)
    )
    """,
)

REVIEW_TASKS: tuple[str, ...] = (
    # Each reviewed call's task message (bot.task_cards), deleted with its review.
    """
    CREATE TABLE IF NOT EXISTS review_tasks (
        ref text PRIMARY KEY REFERENCES slack_reviews (ref) ON DELETE CASCADE,
        channel_id text NOT NULL,
        ts text NOT NULL,
        tool text NOT NULL,
        link text
    )
    """,
)

BOT = Component(
    "bot",
    (
        Step(1, "reviews, events, home, audit and turn limits (the unversioned schema)", INITIAL),
        Step(2, "drop the unused pending_for indexes", DROP_PENDING_FOR_INDEXES),
        Step(3, "retention: indexes, audit_cuts, the sanctioned audit cut", RETENTION),
        Step(4, "index the reminder query", REMIND_INDEX),
        Step(5, "reviews remember the policy rule they were registered under", POLICY_MATCH),
        Step(6, "routing and escalation: card channel, escalation times", ROUTING_AND_ESCALATION),
        Step(7, "standing approvals: standing_grants, standing_grant_offers", STANDING_GRANTS),
        Step(8, "previews and receipts of reviews", PREVIEWS_AND_RECEIPTS),
        Step(9, "reply streams still open", REPLY_STREAMS),
        Step(10, "review tasks: each reviewed call's task message", REVIEW_TASKS),
    ),
)


async def migrate_bot(pool: Pool) -> list[Step]:
    """Bring the bot's tables up to date (safe with replicas starting together)."""
    return await apply(pool, BOT)
