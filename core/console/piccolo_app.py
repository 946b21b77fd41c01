"""Piccolo app of the console's tables (operators, tenant assets, domain checks); depends on the core's."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from core.console.tables import CONSOLE_TABLES

APP_CONFIG = AppConfig(
    app_name="console",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=CONSOLE_TABLES,
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
