from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:15:09:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite keys of the billing tables"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def composite_keys():
        """One invoice number per tenant; one stored webhook event per (tenant, event id)."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX billing_invoice_tenant_number ON billing_invoice (tenant, number)",
            "CREATE UNIQUE INDEX billing_stripe_event_tenant_event ON billing_stripe_event (tenant, event_id)",
            "CREATE INDEX billing_invoice_org_issued ON billing_invoice (organization, issued_at)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(composite_keys)

    return manager
