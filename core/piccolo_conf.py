"""Piccolo's configuration module (``PICCOLO_CONF=core.piccolo_conf``).

``DB`` and ``APP_REGISTRY`` are computed on first access: the engine from
``PORTAL_DATABASE_URL`` and the apps from the core plus every plugin's
``portal_piccolo_apps`` hook, so ``piccolo migrations ...`` sees plugin tables.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "DB":
        from core.db import engine

        return engine()
    if name == "APP_REGISTRY":
        from core.migrate import app_registry

        return app_registry()
    raise AttributeError(name)
