"""Piccolo app of the API keys plugin (its tables and migrations)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.apikeys.tables import APIKEYS_TABLES

APP_CONFIG = AppConfig(
    app_name="apikeys",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=APIKEYS_TABLES,
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
