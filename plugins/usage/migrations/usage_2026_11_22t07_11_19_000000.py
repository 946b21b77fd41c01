from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T07:11:19:000000"
VERSION = "1.38.0"
DESCRIPTION = "monthly buckets' upsert key; a covering index for the page's 30-day read"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="usage", description=DESCRIPTION)

    async def indexes():
        """One monthly bucket per organization, metric and month; the daily read served from the index alone."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        await db.run_ddl("CREATE UNIQUE INDEX usage_monthly_bucket ON usage_monthly (organization, metric, month)")
        await db.run_ddl("CREATE INDEX usage_daily_cover ON usage_daily (organization, metric, day, quantity)")

    manager.add_raw(indexes)

    return manager
