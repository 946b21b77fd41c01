"""Piccolo app of the team plugin: the invitations table and its migrations."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from plugins.team.tables import Invitation

APP_CONFIG = AppConfig(
    app_name="team",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[Invitation],
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
