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

_CHAIN_FIELDS: tuple[str, ...] = (
    "workspace",
    "chain_seq::text",
    "id::text",
    "to_char({row}.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
    "outcome",
    "thread_id",
    "interrupt_id",
    "tool_call_id",
    "tool_name",
    "proposed_args::text",
    "edited_args::text",
    "executed_args::text",
    "requested_by",
    "decided_by",
    "channel_id",
    "message_ts",
    "detail",
    "args_digest",
)
"""The hashed columns of step 9, in order (``bot.audit_chain`` documents the encoding). Part of
a released step: never change it; a new encoding is a new tag (``v2``) in a new step."""


def _chain_content(row: str) -> str:
    """The SQL expression of an event's hashed content: ``audit_events v1;`` then each field
    as ``-`` (NULL) or its UTF-8 length, ``:`` and its text, as UTF-8 bytes."""

    def field(expression: str) -> str:
        value = expression.format(row=row) if "{row}" in expression else f"{row}.{expression}"
        return (
            f"CASE WHEN {value} IS NULL THEN '-' "
            f"ELSE octet_length(convert_to({value}, 'UTF8'))::text || ':' || {value} END"
        )

    fields = " || ".join(map(field, _CHAIN_FIELDS))
    return f"convert_to('audit_events v1;' || {fields}, 'UTF8')"


ARGS_DIGEST_AND_AUDIT_CHAIN: tuple[str, ...] = (
    # The digest (graph.digest) each decision and each quorum vote is bound to, and the one an
    # audit event records (issue 15: approval bound to the exact arguments).
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS args_digest text",
    "ALTER TABLE slack_review_approvals ADD COLUMN IF NOT EXISTS args_digest text",
    "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS args_digest text",
    # The hash chain (bot.audit_chain): per workspace, each event's hash covers the previous
    # event's hash and its own content, so a deleted, reordered or altered row is detected.
    "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS workspace text",
    "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS chain_seq bigint",
    "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS prev_hash bytea",
    "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash bytea",
    # The trigger stamps the time after it holds the chain's head, so along a chain time
    # only moves forward (retention then cuts a prefix); an explicit time (an import) is kept.
    "ALTER TABLE audit_events ALTER COLUMN at DROP DEFAULT",
    """
    CREATE TABLE IF NOT EXISTS audit_chain_heads (
        workspace text PRIMARY KEY,
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        at timestamptz
    )
    """,
    # What each sanctioned cut removed from each chain: verify steps over it from the hash
    # before its first event to the hash of its last.
    "ALTER TABLE audit_cuts ADD COLUMN IF NOT EXISTS workspace text",
    "ALTER TABLE audit_cuts ADD COLUMN IF NOT EXISTS first_seq bigint",
    "ALTER TABLE audit_cuts ADD COLUMN IF NOT EXISTS first_prev_hash bytea",
    "ALTER TABLE audit_cuts ADD COLUMN IF NOT EXISTS last_seq bigint",
    "ALTER TABLE audit_cuts ADD COLUMN IF NOT EXISTS last_hash bytea",
    # The workspace of a thread id built by bot.threads.SlackThread (slack:TEAM:CHANNEL:TS);
    # any other thread id belongs to the chain ''.
    """
    CREATE OR REPLACE FUNCTION audit_workspace(thread_id text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN thread_id LIKE 'slack:%:%' THEN split_part(thread_id, ':', 2)
                    ELSE '' END
    $$
    """,
    # The content an event's hash covers (bot.audit_chain.content computes the same bytes),
    # for the backfill below; the trigger computes the same expression inline (a function
    # call per event costs more than the hashing).
    f"""
    CREATE OR REPLACE FUNCTION audit_event_content(e audit_events) RETURNS bytea
    LANGUAGE sql IMMUTABLE AS $$ SELECT {_chain_content("e")} $$
    """,
    # Link the existing rows, oldest first per workspace (the append-only trigger is set
    # aside for this one transaction: the rows gain their links, nothing else changes).
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change",
    """
    DO $$
    DECLARE
        e audit_events;
        current_workspace text := NULL;
        seq bigint := 0;
        previous bytea;
        genesis constant bytea := decode(repeat('00', 32), 'hex');
    BEGIN
        FOR e IN SELECT * FROM audit_events WHERE hash IS NULL
                 ORDER BY audit_workspace(thread_id), at, id LOOP
            e.workspace := audit_workspace(e.thread_id);
            IF current_workspace IS DISTINCT FROM e.workspace THEN
                IF current_workspace IS NOT NULL THEN
                    INSERT INTO audit_chain_heads (workspace, seq, hash)
                    VALUES (current_workspace, seq, previous);
                END IF;
                current_workspace := e.workspace;
                seq := 0;
                previous := genesis;
            END IF;
            seq := seq + 1;
            e.chain_seq := seq;
            e.prev_hash := previous;
            e.hash := sha256(previous || audit_event_content(e));
            UPDATE audit_events SET workspace = e.workspace, chain_seq = e.chain_seq,
                prev_hash = e.prev_hash, hash = e.hash WHERE id = e.id;
            previous := e.hash;
        END LOOP;
        IF current_workspace IS NOT NULL THEN
            INSERT INTO audit_chain_heads (workspace, seq, hash)
            VALUES (current_workspace, seq, previous);
        END IF;
        UPDATE audit_chain_heads h SET at = (
            SELECT max(at) FROM audit_events WHERE workspace = h.workspace);
    END
    $$
    """,
    "ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change",
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain ON audit_events (workspace, chain_seq)",
    # Every insert joins its workspace's chain. A per-workspace advisory lock, held until the
    # inserting transaction ends, queues appenders on every replica (other workspaces never
    # wait), so each sees its predecessor committed and the chain stays linear; the unique
    # index refuses a fork outright. The predecessor is read from the chain's index, not from
    # the head row: a bulk insert in one transaction would otherwise rewrite that row once per
    # event (a version chain that grows with every row).
    f"""
    CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        last_seq bigint;
        last_hash bytea;
        last_at timestamptz;
    BEGIN
        NEW.workspace := audit_workspace(NEW.thread_id);
        PERFORM pg_advisory_xact_lock(1096107081, hashtext(NEW.workspace));
        SELECT chain_seq, hash, at INTO last_seq, last_hash, last_at FROM audit_events
        WHERE workspace = NEW.workspace AND chain_seq IS NOT NULL
        ORDER BY chain_seq DESC LIMIT 1;
        IF NOT FOUND THEN  -- a new chain, or every event of it was cut
            SELECT seq, hash, at INTO last_seq, last_hash, last_at FROM audit_chain_heads
            WHERE workspace = NEW.workspace;
            IF NOT FOUND THEN
                last_seq := 0;
                last_hash := decode(repeat('00', 32), 'hex');
            END IF;
        END IF;
        IF NEW.at IS NULL THEN
            NEW.at := clock_timestamp();
            IF last_at IS NOT NULL AND NEW.at <= last_at THEN
                NEW.at := last_at + interval '1 microsecond';
            END IF;
        END IF;
        NEW.chain_seq := last_seq + 1;
        NEW.prev_hash := last_hash;
        NEW.hash := sha256(last_hash || {_chain_content("NEW")});
        RETURN NEW;
    END
    $$
    """,
    # The heads, once per statement (in its transaction, under the same lock): what verify
    # compares the last event with, so events deleted from the end are found too.
    """
    CREATE OR REPLACE FUNCTION audit_chain_heads_advance() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO audit_chain_heads AS h (workspace, seq, hash, at)
        SELECT DISTINCT ON (workspace) workspace, chain_seq, hash, at FROM appended
        ORDER BY workspace, chain_seq DESC
        ON CONFLICT (workspace) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
            at = GREATEST(h.at, excluded.at)
        WHERE excluded.seq > h.seq;
        RETURN NULL;
    END
    $$
    """,
    """
    DO $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'audit_events_chain' AND tgrelid = 'audit_events'::regclass
        ) THEN
            CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
                FOR EACH ROW EXECUTE FUNCTION audit_events_chain();
        END IF;
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'audit_chain_heads_advance' AND tgrelid = 'audit_events'::regclass
        ) THEN
            CREATE TRIGGER audit_chain_heads_advance AFTER INSERT ON audit_events
                REFERENCING NEW TABLE AS appended
                FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_heads_advance();
        END IF;
    END
    $$
    """,
)

DECISION_DETAIL: tuple[str, ...] = (
    # The decision event's detail, stored with the claim (a call run under a standing
    # approval names the grant and the use), so a claim finished by the sweeper after its
    # process died records the same event as the process would have.
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS decision_detail text",
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
        ts text,
        tool text NOT NULL,
        link text,
        phase text NOT NULL DEFAULT 'pending'
    )
    """,
)

LISTED_FIELDS: tuple[str, ...] = (
    # The request's three fields the App Home lists for every pending review (bot.home): the
    # call's arguments as proposed, who asked, and everyone whose words led to the call. Kept
    # beside the ~2 kB json request so the Home's scan of a thousand rows reads columns instead
    # of parsing each request (most of that query's time). A trigger sets them from the request
    # itself, with the same json_to_record the Home read before, so every writer keeps them (a
    # replica of an earlier release, a bulk insert) and they cannot differ from the request.
    # listed_args is json 'null' when the call has none, so SQL NULL means "not set": a row
    # written before this step, or a request that is not an object; the Home parses those.
    # Names of their own: an earlier release's Home query, still running on a replica during
    # an upgrade, names json_to_record's requested_by and requesters unqualified.
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS listed_args json",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS listed_by text",
    "ALTER TABLE slack_reviews ADD COLUMN IF NOT EXISTS listed_requesters json",
    """
    CREATE OR REPLACE FUNCTION slack_reviews_listed_fields() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF json_typeof(NEW.request) = 'object' THEN
            SELECT COALESCE(q.tool_call -> 'args', 'null'::json), q.requested_by, q.requesters
            INTO NEW.listed_args, NEW.listed_by, NEW.listed_requesters
            FROM json_to_record(NEW.request)
                AS q(tool_call json, requested_by text, requesters json);
        ELSE
            NEW.listed_args := NULL;
            NEW.listed_by := NULL;
            NEW.listed_requesters := NULL;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    DO $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'slack_reviews_listed_fields'
              AND tgrelid = 'slack_reviews'::regclass
        ) THEN
            CREATE TRIGGER slack_reviews_listed_fields
                BEFORE INSERT OR UPDATE OF request ON slack_reviews
                FOR EACH ROW EXECUTE FUNCTION slack_reviews_listed_fields();
        END IF;
    END
    $$
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
        Step(
            9,
            "args digests on decisions and votes; the audit trail's hash chain",
            ARGS_DIGEST_AND_AUDIT_CHAIN,
        ),
        Step(10, "reviews keep the claimed decision's audit detail", DECISION_DETAIL),
        Step(11, "reply streams still open", REPLY_STREAMS),
        Step(12, "review tasks: each reviewed call's task message", REVIEW_TASKS),
        Step(13, "reviews keep the request's fields the App Home lists", LISTED_FIELDS),
    ),
)


async def migrate_bot(pool: Pool) -> list[Step]:
    """Bring the bot's tables up to date (safe with replicas starting together)."""
    return await apply(pool, BOT)
