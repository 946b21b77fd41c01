"""Piccolo app of the audit plugin: the ``audit_event`` table, its indexes and append-only triggers."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.audit.tables import AUDIT_TABLES

APP_CONFIG = AppConfig(
    app_name="audit",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=AUDIT_TABLES,
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
