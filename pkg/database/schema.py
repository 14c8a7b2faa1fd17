"""The schema the migrations are meant to build, declared here, and a check of a live database.

When a migration changes the schema, this declaration changes with it: the integration test
`test_database_schema.py` builds a database from the migrations and requires `schema_differences`
to be empty, so the migrations and the declared schema cannot drift apart unnoticed.
"""

from __future__ import annotations

import re

from financial.pkg.database.pool import Connection

_TS = "timestamp with time zone"

# table -> column -> "type [NULL]" (columns are NOT NULL unless marked NULL), in column order.
COLUMNS: dict[str, dict[str, str]] = {
    "schema_migrations": {
        "version": "text",
        "name": "text",
        "checksum": "text",
        "applied_at": _TS,
    },
    "users": {
        "id": "bigint",
        "email": "text",
        "name": "text",
        "created_at": _TS,
        "updated_at": _TS,
        "deleted_at": f"{_TS} NULL",
    },
    "categories": {
        "id": "bigint",
        "user_id": "bigint NULL",
        "name": "text",
        "kind": "text",
        "created_at": _TS,
        "updated_at": _TS,
        "deleted_at": f"{_TS} NULL",
    },
    "budgets": {
        "id": "bigint",
        "user_id": "bigint",
        "category_id": "bigint NULL",
        "name": "text",
        "amount_cents": "bigint",
        "currency": "character",
        "period_start": "date",
        "period_end": "date",
        "created_at": _TS,
        "updated_at": _TS,
        "deleted_at": f"{_TS} NULL",
    },
    "invoices": {
        "id": "bigint",
        "user_id": "bigint",
        "category_id": "bigint NULL",
        "number": "text",
        "amount_cents": "bigint",
        "currency": "character",
        "status": "text",
        "due_date": "date NULL",
        "issued_at": _TS,
        "created_at": _TS,
        "updated_at": _TS,
        "deleted_at": f"{_TS} NULL",
    },
    "outbox": {
        "id": "bigint",
        "message_id": "uuid",
        "routing_key": "text",
        "payload": "jsonb",
        "headers": "jsonb",
        "created_at": _TS,
        "available_at": _TS,
        "attempts": "integer",
        "last_error": "text NULL",
        "sent_at": f"{_TS} NULL",
    },
    "job_runs": {
        "run_id": "uuid",
        "job": "text",
        "scheduled_at": _TS,
        "attempt": "integer",
        "trigger": "text",
        "status": "text",
        "worker_id": "text",
        "created_at": _TS,
        "started_at": f"{_TS} NULL",
        "finished_at": f"{_TS} NULL",
        "duration_ms": "double precision NULL",
        "error_type": "text NULL",
        "error_message": "text NULL",
        "trace_id": "text NULL",
        "lease_expires_at": f"{_TS} NULL",
        "fence": "bigint",
    },
    "job_state": {
        "job": "text",
        "paused": "boolean",
        "paused_reason": "text NULL",
        "updated_at": _TS,
    },
    "job_settings": {
        "job": "text",
        "schedule": "text NULL",
        "timeout_seconds": "double precision NULL",
        "enabled": "boolean NULL",
        "calendar": "text NULL",
        "updated_at": _TS,
        "updated_by": "text",
        "alert_after_seconds": "double precision NULL",  # 0008
    },
    "job_settings_audit": {
        "id": "bigint",
        "job": "text",
        "at": _TS,
        "changed_by": "text",
        "action": "text",
        "old_values": "jsonb",
        "new_values": "jsonb",
        "reason": "text NULL",
    },
    "run_requests": {
        "request_id": "uuid",
        "job": "text",
        "tick": _TS,
        "trigger": "text",
        "args": "jsonb",
        "requested_at": _TS,
        "requested_by": "text",
        "state": "text",
        "claimed_by": "text NULL",
        "claimed_at": f"{_TS} NULL",
        "claim_expires_at": f"{_TS} NULL",
        "run_id": "uuid NULL",
        "status": "text NULL",
        "finished_at": f"{_TS} NULL",
        "cancelled_by": "text NULL",
        "cancel_reason": "text NULL",
    },
    "scheduler_leases": {
        "name": "text",
        "holder": "text",
        "acquired_at": _TS,
        "expires_at": _TS,
    },
    "job_alerts": {
        "job": "text",
        "watched_since": _TS,
        "late_since": f"{_TS} NULL",
        "late_tick": f"{_TS} NULL",
        "reason": "text NULL",
        "alerted_at": f"{_TS} NULL",
        "recovered_at": f"{_TS} NULL",
        "updated_at": _TS,
    },
}

# index name -> "[UNIQUE ]table (columns)[ WHERE predicate]", as PostgreSQL spells it back.
INDEXES: dict[str, str] = {
    "schema_migrations_pkey": "UNIQUE schema_migrations (version)",
    "users_pkey": "UNIQUE users (id)",
    "users_email_live_key": "UNIQUE users (lower(email)) WHERE (deleted_at IS NULL)",
    "users_deleted_at_idx": "users (deleted_at) WHERE (deleted_at IS NOT NULL)",
    "categories_pkey": "UNIQUE categories (id)",
    "categories_user_id_idx": "categories (user_id)",
    "categories_deleted_at_idx": "categories (deleted_at) WHERE (deleted_at IS NOT NULL)",
    "budgets_pkey": "UNIQUE budgets (id)",
    "budgets_user_id_idx": "budgets (user_id)",
    "budgets_category_id_idx": "budgets (category_id)",
    "budgets_deleted_at_idx": "budgets (deleted_at) WHERE (deleted_at IS NOT NULL)",
    "invoices_pkey": "UNIQUE invoices (id)",
    "invoices_user_id_idx": "invoices (user_id)",
    "invoices_category_id_idx": "invoices (category_id)",
    "invoices_deleted_at_idx": "invoices (deleted_at) WHERE (deleted_at IS NOT NULL)",
    "outbox_pkey": "UNIQUE outbox (id)",
    "outbox_message_id_key": "UNIQUE outbox (message_id)",
    "outbox_pending_idx": "outbox (id) WHERE (sent_at IS NULL)",
    "outbox_sent_at_idx": "outbox (sent_at) WHERE (sent_at IS NOT NULL)",
    "job_runs_pkey": "UNIQUE job_runs (run_id)",
    "job_runs_tick_key": "UNIQUE job_runs (job, scheduled_at, attempt)",
    "job_runs_job_scheduled_at_idx": "job_runs (job, scheduled_at DESC)",
    "job_runs_live_idx": (
        "job_runs (job, lease_expires_at) "
        "WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]))"
    ),
    "job_runs_created_at_idx": "job_runs (created_at)",
    "job_state_pkey": "UNIQUE job_state (job)",
    "job_settings_pkey": "UNIQUE job_settings (job)",
    "job_settings_audit_pkey": "UNIQUE job_settings_audit (id)",
    "job_settings_audit_job_idx": "job_settings_audit (job, id DESC)",
    "run_requests_pkey": "UNIQUE run_requests (request_id)",
    "run_requests_open_idx": (
        "run_requests (requested_at, tick) "
        "WHERE (state = ANY (ARRAY['pending'::text, 'claimed'::text]))"
    ),
    "run_requests_backfill_key": (
        "UNIQUE run_requests (job, tick) WHERE ((trigger = 'backfill'::text) "
        "AND (state = ANY (ARRAY['pending'::text, 'claimed'::text])))"
    ),
    "job_runs_succeeded_idx": (
        "job_runs (job, scheduled_at DESC) WHERE (status = 'succeeded'::text)"
    ),
    "scheduler_leases_pkey": "UNIQUE scheduler_leases (name)",
    "job_alerts_pkey": "UNIQUE job_alerts (job)",
    "job_alerts_late_idx": "job_alerts (job) WHERE (late_since IS NOT NULL)",
}

_INDEX_DEF = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON (?:\w+\.)?(?P<table>\w+) USING btree (?P<rest>.*)$"
)


def _normalise_index(indexdef: str) -> str:
    match = _INDEX_DEF.match(indexdef)
    if match is None:
        return indexdef
    return f"{match['unique'] or ''}{match['table']} {match['rest']}"


async def schema_differences(conn: Connection, schema: str = "public") -> list[str]:
    """How the live schema differs from the declared one, one line per difference; [] if none."""
    live_columns: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(
        """
        SELECT table_name, column_name, data_type, is_nullable
        FROM information_schema.columns
        WHERE table_schema = $1
        ORDER BY table_name, ordinal_position
        """,
        schema,
    ):
        spelled = row["data_type"] + (" NULL" if row["is_nullable"] == "YES" else "")
        live_columns.setdefault(row["table_name"], {})[row["column_name"]] = spelled
    live_indexes = {
        row["indexname"]: _normalise_index(row["indexdef"])
        for row in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema
        )
    }

    differences: list[str] = []
    for table in sorted(COLUMNS.keys() - live_columns.keys()):
        differences.append(f"table {table}: declared, missing from the database")
    for table in sorted(live_columns.keys() - COLUMNS.keys()):
        differences.append(f"table {table}: in the database, not declared")
    for table in sorted(COLUMNS.keys() & live_columns.keys()):
        declared, live = COLUMNS[table], live_columns[table]
        for column in declared.keys() | live.keys():
            want, got = declared.get(column), live.get(column)
            if want != got:
                differences.append(f"column {table}.{column}: declared {want!r}, found {got!r}")
        if [c for c in live if c in declared] != [c for c in declared if c in live]:
            differences.append(f"table {table}: columns in another order than declared")
    for name in sorted(INDEXES.keys() | live_indexes.keys()):
        want, got = INDEXES.get(name), live_indexes.get(name)
        if want != got:
            differences.append(f"index {name}: declared {want!r}, found {got!r}")
    return sorted(differences)
