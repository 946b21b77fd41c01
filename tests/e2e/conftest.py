"""Browser tests: the real app with every built-in plugin, served by uvicorn, driven by Debian's Chromium."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/lib/chromium/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def portal_settings() -> Any:
    """Everything built in, as ``make run`` has it (entry points stay off in the project's own tests)."""
    from core.settings import load_settings

    return load_settings(load_entry_points=False)


@pytest.fixture
async def live_portal(portal_database: str, portal_settings: Any, tmp_path: Path) -> AsyncIterator[str]:
    """The demo tenants applied and seeded, the app served on a free loopback port; yields its base port."""
    import uvicorn

    from core.app import create_app
    from core.seeding import apply_path
    from core.testing import running

    demo = tmp_path / "tenants"
    shutil.copytree(REPO / "tenants", demo)
    await apply_path(portal_settings, demo, seed_demo=True)
    app = create_app(portal_settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    async with running(app):
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        yield str(port)
        server.should_exit = True
        await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium through Playwright (Playwright cannot download browsers here)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic",
                  "--host-resolver-rules=MAP *.test 127.0.0.1, MAP *.localhost 127.0.0.1"],
        )
        yield browser
        await browser.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (kept after the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
