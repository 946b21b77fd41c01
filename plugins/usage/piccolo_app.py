"""Piccolo app of the usage plugin (raw events, rollups, alerts)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.usage.tables import USAGE_TABLES

APP_CONFIG = AppConfig(
    app_name="usage",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=USAGE_TABLES,
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
