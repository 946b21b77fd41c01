from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import DoublePrecision
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-22T06:46:28:437275"
VERSION = "1.38.0"
DESCRIPTION = "usage_hourly.reported: how much of a bucket went to the provider's meter"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="usage", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="UsageHourly",
        tablename="usage_hourly",
        column_name="reported",
        db_column_name="reported",
        column_class_name="DoublePrecision",
        column_class=DoublePrecision,
        params={
            "default": 0.0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
