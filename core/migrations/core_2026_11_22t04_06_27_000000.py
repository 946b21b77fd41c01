from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:06:27:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite keys and indexes of the core tables"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def composite_keys():
        """Keys Piccolo cannot declare on a column: one account per email per tenant, and so on."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX portal_user_tenant_email ON portal_user (tenant, email)",
            "CREATE UNIQUE INDEX organization_tenant_slug ON organization (tenant, slug)",
            'CREATE UNIQUE INDEX membership_org_user ON membership (organization, "user")',
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
            'CREATE INDEX notification_unread ON notification ("user", read_at)',
        ):
            await db.run_ddl(statement)

    manager.add_raw(composite_keys)

    return manager
