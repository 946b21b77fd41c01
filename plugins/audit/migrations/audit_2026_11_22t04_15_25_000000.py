"""Indexes, the prune gate and the append-only triggers of ``audit_event`` (raw SQL, after the table exists).

PostgreSQL: a trigger rejects UPDATE, DELETE and TRUNCATE; only ``portal audit prune`` may delete, by
setting the transaction-local ``portal.audit_prune = 'on'`` first. SQLite has no session settings: the
trigger checks a one-row ``audit_prune_gate`` table that prune opens and closes inside its own transaction
(other connections never see it open). UPDATE is rejected always: nothing legitimate rewrites history.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:15:25:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_event keys, indexes and append-only triggers"

INDEXES = (
    "CREATE UNIQUE INDEX audit_event_tenant_seq ON audit_event (tenant, seq)",
    "CREATE INDEX audit_event_tenant_org_seq ON audit_event (tenant, organization, seq)",
    "CREATE INDEX audit_event_tenant_time ON audit_event (tenant, time)",
)

POSTGRES_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('portal.audit_prune', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only: % rejected', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
    "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
)
POSTGRES_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
)

SQLITE_TRIGGERS = (
    "CREATE TABLE IF NOT EXISTS audit_prune_gate (id INTEGER PRIMARY KEY CHECK (id = 1), open INTEGER NOT NULL)",
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE rejected'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_prune_gate WHERE id = 1 AND open = 1) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE rejected'); END",
)
SQLITE_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="audit", description=DESCRIPTION)

    async def keys_and_triggers():
        """Per-tenant sequence key, viewer indexes, and the triggers that keep the table append-only."""
        from piccolo.engine import engine_finder
        from piccolo.engine.sqlite import SQLiteEngine

        db = engine_finder()
        triggers = SQLITE_TRIGGERS if isinstance(db, SQLiteEngine) else POSTGRES_TRIGGERS
        for statement in (*INDEXES, *triggers):
            await db.run_ddl(statement)

    manager.add_raw(keys_and_triggers)

    return manager
