from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T06:46:29:000000"
VERSION = "1.38.0"
DESCRIPTION = "partial index of hourly buckets not yet reported to the provider's meter"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="usage", description=DESCRIPTION)

    async def unreported_index():
        """The meter reporter reads only buckets with something left to report (a small, moving set)."""
        from piccolo.engine import engine_finder

        await engine_finder().run_ddl(
            "CREATE INDEX usage_hourly_unreported ON usage_hourly (tenant, hour) WHERE quantity > reported")

    manager.add_raw(unreported_index)

    return manager
