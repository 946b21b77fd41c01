from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:15:28:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite keys and indexes of the api keys tables"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="apikeys", description=DESCRIPTION)

    async def composite_keys():
        """One counter row per key and day (the flush upserts into it); per-organization usage by day."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX api_key_usage_day_key_day ON api_key_usage_day (api_key, day)",
            "CREATE INDEX api_key_usage_day_org_day ON api_key_usage_day (organization, day)",
            "CREATE INDEX api_key_tenant_org ON api_key (tenant, organization)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(composite_keys)

    return manager
