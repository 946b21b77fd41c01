"""The core's own tests use the shipped pytest plugin (``core.testing``), like partners do.

They test the host alone: only the core's own section is registered (the built-in
plugins test themselves in ``plugins/*/tests``; ``tests/e2e`` runs everything together).
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def portal_settings() -> Any:
    """Core-only settings: no built-in plugins, no entry points."""
    from core.settings import load_settings

    return load_settings(load_entry_points=False, builtin_plugins=("core.builtin",))
