"""The schema's history, numbered, for both databases: an old database opens in a new release.

Versions 1 to 7 were written for SQLite alone (with sqlite-utils); PostgreSQL gets the same tables, columns,
indexes and triggers in its own words under the same numbers, so a database of either kind at version N has
the same schema and `copy-to-postgres` can move rows column by column. From version 8 on, one migration is
one list of statements both databases run as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database


def _v1(db: Database) -> None:
    db.table("broadcasts").create(
        {
            "id": str,
            "author": str,
            "text": str,
            "audience": str,
            "state": str,
            "created_at": float,
            "expires_at": float,
            "decided_by": str,
            "decided_at": float,
            "origin": str,  # the chat surface it came from: "slack"
            "origin_ref": str,  # JSON, the surface's own handles (response_url, channel)
            "report_ref": str,  # JSON, where the live report lives once sent
        },
        pk="id",
        not_null={"author", "text", "audience", "state", "created_at", "expires_at", "origin"},
    )
    db.table("deliveries").create(
        {
            "id": int,
            "broadcast_id": str,
            "destination": str,
            "kind": str,
            "dry_run": int,
            "parts": str,  # JSON list of the exact texts approved
            "posted": str,  # JSON list of remote ids, one per part already posted
            "link": str,
            "state": str,
            "attempts": int,
            "check_first": int,  # 1: the last attempt may have landed; look before posting again
            "next_attempt_at": float,
            "first_attempt_at": float,
            "attempt_started_at": float,
            "lease_until": float,
            "last_error": str,
            "updated_at": float,
        },
        pk="id",
        foreign_keys=[("broadcast_id", "broadcasts", "id")],
        not_null={"broadcast_id", "destination", "kind", "parts", "posted", "state"},
        defaults={"attempts": 0, "check_first": 0, "dry_run": 0, "posted": "[]"},
    )
    db.table("deliveries").create_index(["broadcast_id", "destination"], unique=True)
    db.table("deliveries").create_index(["state", "next_attempt_at"])


def _v2(db: Database) -> None:
    """Where the bot may post in Microsoft Teams, learned when it is installed (Teams gives no other way)."""
    db.table("teams_conversations").create(
        {
            "id": str,  # the conversation id: a channel ("19:…@thread.tacv2") or a personal chat
            "kind": str,  # "channel" or "personal"
            "name": str,  # channel name, or the person's name
            "team_id": str,
            "team_name": str,
            "user_id": str,  # for a personal chat: "teams:<AAD object id>" of the person
            "reference": str,  # JSON ConversationReference: service URL, bot, tenant
            "updated_at": float,
        },
        pk="id",
        not_null={"kind", "reference"},
    )
    db.table("teams_conversations").create_index(["user_id"])
    db.table("teams_conversations").create_index(["team_id"])


def _v3(db: Database) -> None:
    """The audit trail: who did what, when and from where. The database itself refuses edits."""
    db.table("audit").create(
        {
            "id": int,
            "at": float,
            "actor": str,  # "slack:U…", "teams:…", or "relay" for what the bot did by itself
            "action": str,  # requested, edited, approved, rejected, sent, retried, config-loaded…
            "broadcast_id": str,
            "surface": str,  # slack, teams, terminal, relay
            "place": str,  # the channel or conversation it happened in, where there is one
            "detail": str,
        },
        pk="id",
        not_null={"at", "actor", "action"},
    )
    db.table("audit").create_index(["at"])
    db.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )


def _v4(db: Database) -> None:
    """Retraction: a delivery either posts, or deletes what its twin posted."""
    db.execute("ALTER TABLE deliveries ADD COLUMN action TEXT NOT NULL DEFAULT 'post'")
    db.execute("ALTER TABLE broadcasts ADD COLUMN retract_requested_by TEXT")
    db.execute("DROP INDEX idx_deliveries_broadcast_id_destination")
    db.table("deliveries").create_index(["broadcast_id", "destination", "action"], unique=True)


def _v5(db: Database) -> None:
    """Scheduling: when an approved broadcast is to go out (its deliveries wait in the outbox until then)."""
    db.execute("ALTER TABLE broadcasts ADD COLUMN send_at REAL")


def _v6(db: Database) -> None:
    """Editing sent staff posts: the new text, while an approver has yet to agree to it."""
    db.execute("ALTER TABLE broadcasts ADD COLUMN pending_text TEXT")


def _v7(db: Database) -> None:
    """Due deliveries found per network, so a network told to wait does not hold up the others."""
    db.table("deliveries").create_index(["kind", "state", "next_attempt_at"])


SQLITE_FIRST: tuple[Callable[[Database], None], ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7)

# Versions 1 to 7 as PostgreSQL says them: the same names, so that later migrations (and people) find them.
POSTGRES_FIRST: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE broadcasts (id TEXT PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,"
        " audience TEXT NOT NULL, state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
        " expires_at DOUBLE PRECISION NOT NULL, decided_by TEXT, decided_at DOUBLE PRECISION,"
        " origin TEXT NOT NULL, origin_ref TEXT, report_ref TEXT)",
        "CREATE TABLE deliveries (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " broadcast_id TEXT NOT NULL REFERENCES broadcasts (id), destination TEXT NOT NULL, kind TEXT NOT NULL,"
        " dry_run INTEGER NOT NULL DEFAULT 0, parts TEXT NOT NULL, posted TEXT NOT NULL DEFAULT '[]', link TEXT,"
        " state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, check_first INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at DOUBLE PRECISION, first_attempt_at DOUBLE PRECISION,"
        " attempt_started_at DOUBLE PRECISION, lease_until DOUBLE PRECISION, last_error TEXT,"
        " updated_at DOUBLE PRECISION)",
        "CREATE UNIQUE INDEX idx_deliveries_broadcast_id_destination ON deliveries (broadcast_id, destination)",
        "CREATE INDEX idx_deliveries_state_next_attempt_at ON deliveries (state, next_attempt_at)",
    ),
    (
        "CREATE TABLE teams_conversations (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, team_id TEXT,"
        " team_name TEXT, user_id TEXT, reference TEXT NOT NULL, updated_at DOUBLE PRECISION)",
        "CREATE INDEX idx_teams_conversations_user_id ON teams_conversations (user_id)",
        "CREATE INDEX idx_teams_conversations_team_id ON teams_conversations (team_id)",
    ),
    (
        "CREATE TABLE audit (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, broadcast_id TEXT,"
        " surface TEXT, place TEXT, detail TEXT)",
        "CREATE INDEX idx_audit_at ON audit (at)",
        "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ),
    (
        "ALTER TABLE deliveries ADD COLUMN action TEXT NOT NULL DEFAULT 'post'",
        "ALTER TABLE broadcasts ADD COLUMN retract_requested_by TEXT",
        "DROP INDEX idx_deliveries_broadcast_id_destination",
        "CREATE UNIQUE INDEX idx_deliveries_broadcast_id_destination_action"
        " ON deliveries (broadcast_id, destination, action)",
    ),
    ("ALTER TABLE broadcasts ADD COLUMN send_at DOUBLE PRECISION",),
    ("ALTER TABLE broadcasts ADD COLUMN pending_text TEXT",),
    ("CREATE INDEX idx_deliveries_kind_state_next_attempt_at ON deliveries (kind, state, next_attempt_at)",),
)

# From version 8 on: each migration, statements both databases run as they are.
SHARED: tuple[tuple[str, ...], ...] = (
    (
        # What must outlive a restart and be shared by every instance on one database: the signatures of
        # Slack requests already accepted (a captured request replayed after a restart is still a copy),
        # and the status page's sign-ins (logout revokes one everywhere).
        "CREATE TABLE seen_requests (signature TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX seen_requests_at ON seen_requests (seen_at)",
        "CREATE TABLE status_sessions (token_hash TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL,"
        " expires_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX status_sessions_expiry ON status_sessions (expires_at)",
    ),
    (
        # Several instances: an outcome is written only by the claim that holds the lease (its token here),
        # so a delivery another instance took over once its lease ran out is never written by both.
        "ALTER TABLE deliveries ADD COLUMN lease_owner TEXT",
        # A network's pace, shared by the instances: when the next post to a place may start, and until
        # when a network asked everyone sharing its key to wait (a 429).
        "CREATE TABLE pace (key TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE pauses (key TEXT PRIMARY KEY, until DOUBLE PRECISION NOT NULL)",
        # The instances alive, seen every few seconds: a published rate is shared out among them.
        "CREATE TABLE instances (id TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)",
    ),
    (
        # Images with a broadcast (relay/images.py), stripped of their metadata, kept from the request until
        # every post of it is final, then deleted: in a table of their own, so the broadcasts table stays
        # small to scan. BYTEA is PostgreSQL's type for bytes; SQLite keeps a bytes value as a BLOB whatever
        # the column's declared type.
        "CREATE TABLE broadcast_images (broadcast_id TEXT NOT NULL REFERENCES broadcasts (id),"
        " position INTEGER NOT NULL, mime TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,"
        " alt TEXT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (broadcast_id, position))",
    ),
    (
        # Leaders' own accounts (relay/accounts.py): one a person per network, its tokens sealed with
        # RELAY_SECRET_KEY (relay/vault.py). `expires_at`: when the access token stops working (NULL: it does
        # not expire); `refreshable`: whether the relay can renew it alone; `warned_at`: the owner was told it
        # is about to expire; `broken`: why it must be connected again (a refused refresh), shown in previews.
        "CREATE TABLE accounts (id TEXT PRIMARY KEY, owner TEXT NOT NULL, network TEXT NOT NULL,"
        " handle TEXT NOT NULL, remote_id TEXT NOT NULL, instance TEXT, sealed TEXT NOT NULL,"
        " expires_at DOUBLE PRECISION, refreshable INTEGER NOT NULL DEFAULT 0, warned_at DOUBLE PRECISION,"
        " broken TEXT, connected_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
        "CREATE UNIQUE INDEX accounts_owner_network ON accounts (owner, network)",
        # A sign-in under way: the state's hash (the state itself only travels through the browser), who
        # clicked, the browser it was started in (a cookie's hash), and the PKCE verifier, sealed. Single use:
        # taken with DELETE … RETURNING, so two instances answering one replayed callback cannot both succeed.
        "CREATE TABLE oauth_states (state_hash TEXT PRIMARY KEY, owner TEXT NOT NULL, network TEXT NOT NULL,"
        " browser_hash TEXT, sealed TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX oauth_states_expiry ON oauth_states (expires_at)",
        # The relay's app on each Mastodon instance, registered on first use (POST /api/v1/apps), sealed.
        "CREATE TABLE mastodon_apps (instance TEXT PRIMARY KEY, sealed TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL)",
    ),
)

VERSION = len(SQLITE_FIRST) + len(SHARED)
assert len(POSTGRES_FIRST) == len(SQLITE_FIRST)
