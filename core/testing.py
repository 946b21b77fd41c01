"""Pytest plugin for Portal and its plugins (registered as ``pytest11`` entry point ``portal``).

Partners test their plugin the way the core tests its own: a real app on a real
database, real HTTP through the ASGI stack, tenants made from manifests.

- ``--portal-db=postgres`` (or ``PORTAL_TEST_DB=postgres``) starts a throwaway
  PostgreSQL cluster for the session; the default is a SQLite file in a temp dir.
- ``portal_app_factory(*plugins)`` builds an app with extra plugins registered on
  that app's own plugin manager (nothing leaks into the next test).
- ``make_tenant(...)`` creates a tenant with a random slug and host, users in
  every role and one organization; ``client_for(app, host)`` is an HTTP client for
  that host; ``login(client, email)`` signs in through the real form.
- ``event_recorder`` is a plugin that keeps every event it is handed: register it with
  ``portal_app_factory`` and enable ``recorder`` on the tenant, then assert on ``.of(type)``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import hookimpl as _hookimpl

PASSWORD = "correct-horse-battery"
ROLES = ("owner", "admin", "billing", "member", "viewer")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--portal-db``: run the suite on SQLite (default) or a throwaway PostgreSQL."""
    parser.addoption("--portal-db", default=os.environ.get("PORTAL_TEST_DB", "sqlite"),
                     choices=["sqlite", "postgres"], help="database the Portal tests run on")


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir for one test session (about a second to start)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="portal-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True)

    def start(self) -> str:
        """Create, start and return the URL of database ``portal``."""
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync", "-U", "portal")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "portal", "portal")
        return f"postgresql://portal@127.0.0.1:{self.port}/portal"

    def stop(self) -> None:
        """Stop immediately and remove the files."""
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def free_port() -> int:
    """A free TCP port on the loopback for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_postgres: ThrowawayPostgres | None = None
_live_apps: list[Any] = []  # apps of the running test: a new tenant is made visible to them at once


def pytest_configure(config: pytest.Config) -> None:
    """Point the whole session at its own database and var dir before anything imports tables."""
    global _postgres
    config.addinivalue_line("markers", "browser: needs headless Chromium")
    var_dir = Path(tempfile.mkdtemp(prefix="portal-test-"))
    os.environ.update({
        "PORTAL_ENV": "test", "PORTAL_VAR_DIR": str(var_dir), "PORTAL_PASSWORD_HASH_PROFILE": "test",
        "PORTAL_OUTBOX_WORKER": "false", "PORTAL_MAIL_BACKEND": "dev",
        "PORTAL_SECRET_KEY": "test-secret-key-" + "x" * 32,
    })
    if config.getoption("--portal-db") == "postgres":
        _postgres = ThrowawayPostgres()
        os.environ["PORTAL_DATABASE_URL"] = _postgres.start()
    else:
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{var_dir / 'portal.db'}"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the throwaway PostgreSQL."""
    if _postgres is not None:
        _postgres.stop()


def pytest_report_header(config: pytest.Config) -> str:
    """Say which database this run uses."""
    return f"portal database: {os.environ.get('PORTAL_DATABASE_URL', '?').split('@')[-1]}"


@pytest.fixture(scope="session")
def portal_settings() -> Any:
    """Settings of the test session (cheap argon2, dev mail, no background worker, no entry points)."""
    from core.settings import load_settings

    return load_settings(load_entry_points=False)


@pytest.fixture(scope="session")
async def portal_database(portal_settings: Any) -> AsyncIterator[str]:
    """The session's database, migrated once with every built-in plugin's tables.

    The schema is the whole product's even when a test registers fewer plugins; a
    partner plugin's tables are migrated when its entry point is loaded
    (``portal_settings`` with ``load_entry_points=True``).
    """
    from core.db import connect, disconnect, use_database
    from core.migrate import migrate_all
    from core.settings import BUILTIN_PLUGINS

    use_database(portal_settings.database_url)
    await connect()
    await migrate_all(portal_settings.with_overrides(builtin_plugins=BUILTIN_PLUGINS))
    yield portal_settings.database_url
    await disconnect()


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[Any]:
    """Start an app's runtime (tenants, plugins' startup hooks) around a block; the session owns the database."""
    from core.app import start_runtime, stop_runtime

    await start_runtime(app)
    try:
        yield app
    finally:
        await stop_runtime(app)


@pytest.fixture
async def portal_app_factory(portal_database: str, portal_settings: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await portal_app_factory(plugin, ..., **setting_overrides)``: a started app with extra plugins."""
    from core.app import create_app

    stack: list[Any] = []

    async def factory(*plugins: Any, **overrides: Any) -> Any:
        app = create_app(portal_settings.with_overrides(**overrides), extra_plugins=list(plugins))
        context = running(app)
        await context.__aenter__()
        stack.append(context)
        _live_apps.append(app)
        return app

    yield factory
    for context in reversed(stack):
        await context.__aexit__(None, None, None)
    _live_apps.clear()


@pytest.fixture
async def portal_app(portal_app_factory: Callable[..., Any]) -> Any:
    """A started app with the built-in plugins only."""
    return await portal_app_factory()


@dataclass
class TestTenant:
    """A tenant made for one test: its hosts, users by role and organization."""

    slug: str
    host: str
    hosts: list[str]
    org_slug: str
    users: dict[str, str] = field(default_factory=dict)
    id: uuid.UUID | None = None
    org_id: uuid.UUID | None = None

    def email(self, role: str) -> str:
        """The email of the user holding ``role`` in the tenant's organization."""
        return self.users[role]


@pytest.fixture
def make_tenant(portal_database: str, portal_settings: Any) -> Callable[..., Any]:
    """``await make_tenant(plugins=[...], theme=..., branding={...})``: a fresh tenant with users in every role."""
    from core.manifests import TenantManifest, apply_manifest
    from core.security import Passwords
    from core.tables import Organization, Tenant

    passwords = Passwords("test")

    async def factory(*, plugins: list[str] | None = None, theme: str = "default",
                      branding: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                      extra_hosts: list[str] | None = None) -> TestTenant:
        import msgspec

        slug = "t" + secrets.token_hex(4)
        host = f"{slug}.example.test"
        hosts = [host, *(extra_hosts or [])]
        org_slug = f"org-{slug}"
        users = {role: f"{role}@{slug}.example" for role in ROLES}
        manifest = msgspec.convert({
            "slug": slug, "name": f"Tenant {slug}", "domains": hosts, "theme": theme, "plugins": plugins,
            "branding": branding or {}, "settings": settings or {},
            "users": [{"email": e, "name": r.title() + " User", "password": PASSWORD} for r, e in users.items()],
            "organizations": [{"slug": org_slug, "name": f"Org {slug}",
                               "members": [{"email": e, "role": r} for r, e in users.items()]}],
        }, TenantManifest)
        await apply_manifest(manifest, Path("."), passwords)
        for app in _live_apps:
            await refresh_tenants(app)
        tenant = await Tenant.select(Tenant.id).where(Tenant.slug == slug).first()
        org = await Organization.select(Organization.id).where(Organization.slug == org_slug).first()
        return TestTenant(slug, host, hosts, org_slug, users, tenant["id"], org["id"])

    return factory


async def refresh_tenants(app: Any) -> None:
    """Make the app see tenants created after it started."""
    await app.state.portal.directory.refresh()


def client_for(app: Any, host: str, *, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client whose requests carry ``Host: host`` and keep that host's cookies."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 51000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", follow_redirects=False)


CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client: httpx.AsyncClient, path: str = "/login") -> str:
    """The CSRF token a page's forms carry (also sets the CSRF cookie)."""
    response = await client.get(path)
    match = CSRF_INPUT.search(response.text)
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


async def form_post(client: httpx.AsyncClient, path: str, data: dict[str, Any], *,
                    token_from: str | None = None) -> httpx.Response:
    """Post a form the way a browser would: with the page's CSRF token."""
    token = await csrf_token(client, token_from or "/login")
    return await client.post(path, data={"_csrf_token": token, **data})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                next_path: str = "") -> httpx.Response:
    """Sign in through the real login form; returns the form's response (302 on success)."""
    await refresh_tenants(client._transport.app)  # type: ignore[attr-defined]
    return await form_post(client, "/login", {"email": email, "password": password, "next": next_path})


@pytest.fixture
def portal_client() -> Callable[..., httpx.AsyncClient]:
    """``portal_client(app, host)``: see ``client_for``."""
    return client_for


# -- browser tests -------------------------------------------------------------------------------

CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # every tenant host of the tests (*.example.test, acme.localhost, ...) is this machine
    "--host-resolver-rules=MAP *.test 127.0.0.1, MAP *.localhost 127.0.0.1",
]
ARTIFACTS = Path(os.environ.get("PORTAL_TEST_ARTIFACTS", "test-artifacts")).resolve()


@asynccontextmanager
async def live_server(app: Any) -> AsyncIterator[int]:
    """Serve a started app with uvicorn on a free loopback port in this event loop; yields the port."""
    import asyncio

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Any]:
    """Debian's Chromium through Playwright (which cannot download browsers here); skips if it is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def portal_browser() -> AsyncIterator[Any]:
    """A headless Chromium for the test (see ``headless_chromium``)."""
    async with headless_chromium() as browser:
        yield browser


def artifact(name: str) -> str:
    """Path for a screenshot or file a test keeps for people to look at (``test-artifacts/``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


# -- mail ----------------------------------------------------------------------------------------


class SmtpInbox:
    """Messages a real SMTP server (aiosmtpd) received during a test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        """aiosmtpd calls this for every message; keep it parsed."""
        import email
        from email.policy import default as default_policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        """Messages addressed to ``address``."""
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port; pass ``redis_url=`` to ``portal_app_factory``.

    Two apps given the same URL behave as two processes of one deployment (shared throttles, invalidation).
    """
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def smtp_inbox() -> Any:
    """An aiosmtpd server on a free loopback port; pass ``mail_backend="smtp", smtp_port=inbox.port`` to the app."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


async def deliver_outbox(app: Any) -> int:
    """Run the app's outbox once (tests keep the background worker off); returns how many were handled."""
    from core.outbox import OutboxWorker

    return await OutboxWorker(app.state.portal.outbox_handlers, app).run_once()


class EventRecorder:
    """A test plugin that keeps every event it is handed, as the audit plugin would record them.

    Register it with ``portal_app_factory(recorder)`` and enable its ``slug`` on the tenant.
    """

    def __init__(self, slug: str = "recorder") -> None:
        self.slug = slug
        self.events: list[Any] = []

    @_hookimpl
    def portal_plugin(self) -> Any:
        """Names the recorder so a tenant can enable it."""
        from core.contracts import PluginInfo

        return PluginInfo(self.slug, "Event recorder", "1.0", "Records events for tests.")

    @_hookimpl
    def portal_event(self, event: Any) -> None:
        """Keeps the event."""
        self.events.append(event)

    def of(self, type_: str, tenant_id: Any = None) -> list[Any]:
        """Events of ``type_`` (a type ending in ``.`` is a prefix), optionally of one tenant only."""
        matches = (lambda t: t.startswith(type_)) if type_.endswith(".") else (lambda t: t == type_)
        return [e for e in self.events if matches(e.type) and (tenant_id is None or e.tenant_id == tenant_id)]


@pytest.fixture
def event_recorder() -> EventRecorder:
    """A fresh ``EventRecorder`` (slug ``recorder``) for one test."""
    return EventRecorder()

