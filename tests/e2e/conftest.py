"""Browser tests: the real app with every built-in plugin, served by uvicorn, driven by Debian's Chromium."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def portal_settings() -> Any:
    """Everything built in, as ``make run`` has it (entry points stay off in the project's own tests)."""
    from core.settings import load_settings

    return load_settings(load_entry_points=False)


@pytest.fixture
async def live_portal(portal_database: str, portal_settings: Any, tmp_path: Path) -> AsyncIterator[str]:
    """The demo tenants applied and seeded, the app served on a free loopback port; yields its port."""
    from core.app import create_app
    from core.seeding import apply_path
    from core.testing import live_server, running

    demo = tmp_path / "tenants"
    shutil.copytree(REPO / "tenants", demo)
    await apply_path(portal_settings, demo, seed_demo=True)
    app = create_app(portal_settings)
    async with running(app), live_server(app) as port:
        yield str(port)


@pytest.fixture
async def browser(portal_browser: Any) -> Any:
    """The shipped ``portal_browser`` fixture under a short name."""
    return portal_browser
