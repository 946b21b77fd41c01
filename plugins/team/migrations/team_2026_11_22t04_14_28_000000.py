from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:14:28:000000"
VERSION = "1.38.0"
DESCRIPTION = "one open invitation per organization and email"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="team", description=DESCRIPTION)

    async def indexes():
        """A partial unique index (open = neither accepted nor revoked) and the list's index."""
        from piccolo.engine import engine_finder

        db = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX team_invitation_open ON team_invitation (organization, email) "
            "WHERE accepted_at IS NULL AND revoked_at IS NULL",
            "CREATE INDEX team_invitation_org_created ON team_invitation (organization, created_at)",
        ):
            await db.run_ddl(statement)

    manager.add_raw(indexes)

    return manager
