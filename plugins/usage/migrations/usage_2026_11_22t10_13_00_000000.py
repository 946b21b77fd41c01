from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T10:13:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "covering indexes for the usage page's monthly and last-24-hours reads"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="usage", description=DESCRIPTION)

    async def indexes():
        """The page reads quantities of 12 months and 24 hours per metric from the index alone (no row lookups)."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        await db.run_ddl("CREATE INDEX usage_monthly_cover ON usage_monthly (organization, metric, month, quantity)")
        await db.run_ddl("CREATE INDEX usage_hourly_cover ON usage_hourly (organization, metric, hour, quantity)")

    manager.add_raw(indexes)

    return manager
