"""Piccolo app of the core tables; plugins' apps declare a migration dependency on it."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from core.tables import CORE_TABLES

APP_CONFIG = AppConfig(
    app_name="core",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=CORE_TABLES,
    migration_dependencies=[],
    commands=[],
)
