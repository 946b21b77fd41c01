from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T07:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one billing customer and one subscription per organization"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def one_per_organization():
        """Two racing first visits must not create two customer rows (nor two subscriptions)."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX billing_customer_tenant_org ON billing_customer (tenant, organization)",
            "CREATE UNIQUE INDEX billing_subscription_tenant_org ON billing_subscription (tenant, organization)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(one_per_organization)

    return manager
