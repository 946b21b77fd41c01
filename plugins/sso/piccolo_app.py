"""Piccolo app of the SSO plugin (tables + migrations), depending on the core's app."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.sso.tables import SSO_TABLES

APP_CONFIG = AppConfig(
    app_name="sso",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=SSO_TABLES,
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
