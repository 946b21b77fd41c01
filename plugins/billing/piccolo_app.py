"""Piccolo app of the billing plugin: its tables and migrations, after the core's."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.billing.tables import BILLING_TABLES

APP_CONFIG = AppConfig(
    app_name="billing",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=BILLING_TABLES,
    migration_dependencies=["core.piccolo_app"],
)
