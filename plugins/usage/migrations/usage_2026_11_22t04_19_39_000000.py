from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:19:39:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite keys of the usage tables"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="usage", description=DESCRIPTION)

    async def composite_keys():
        """One event per idempotency key per organization; one rollup row per bucket (upsert targets)."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX usage_event_org_key ON usage_event (organization, idempotency_key)",
            "CREATE INDEX usage_event_org_metric_time ON usage_event (organization, metric, occurred_at)",
            "CREATE UNIQUE INDEX usage_hourly_bucket ON usage_hourly (organization, metric, hour)",
            "CREATE UNIQUE INDEX usage_daily_bucket ON usage_daily (organization, day, metric)",
            "CREATE UNIQUE INDEX usage_alert_fired_once "
            "ON usage_alert_fired (organization, metric, period_start, threshold)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(composite_keys)

    return manager
