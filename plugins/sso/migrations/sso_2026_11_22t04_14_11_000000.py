from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:14:11:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite keys of the SSO tables"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="sso", description=DESCRIPTION)

    async def composite_keys():
        """One verified owner per domain per tenant; one claim per organization; an assertion id once."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX sso_domain_verified ON sso_domain (tenant, domain) WHERE verified_at IS NOT NULL",
            "CREATE UNIQUE INDEX sso_domain_org ON sso_domain (organization, domain)",
            "CREATE UNIQUE INDEX sso_replay_assertion ON sso_replay (connection, assertion_id)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(composite_keys)

    return manager
