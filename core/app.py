"""``create_app``: the one place that wires settings, plugins, routes, guards and lifecycle."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

from core import __version__
from core.console import TEMPLATE_DIR as CONSOLE_TEMPLATES
from core.console import console_handlers
from core.context import Ctx, RequestContext
from core.db import connect, disconnect, use_database
from core.errors import http_exception_handler, internal_error_handler
from core.guards import organization_member, plugin_api_authenticated, plugin_enabled, provide_ctx
from core.invalidation import RedisInvalidation
from core.mail import MAIL_KIND, deliver_mail
from core.middleware import PortalContextMiddleware
from core.outbox import OutboxWorker
from core.plugins import PluginHost
from core.ratelimit import Throttles
from core.routes.account import ACCOUNT_HANDLERS
from core.routes.assets import ASSET_HANDLERS
from core.routes.auth import AUTH_HANDLERS
from core.routes.pages import PAGE_HANDLERS
from core.runtime import PortalRuntime
from core.security import Passwords, SecretBox
from core.settings import Settings, load_settings
from core.tenancy import TenantDirectory
from core.themes import ThemeRegistry

log = logging.getLogger("portal")
CORE_STATIC = Path(__file__).parent / "static"


def build_plugin_host(settings: Settings, extra_plugins: list[Any] | None = None) -> PluginHost:
    """Built-ins, then allowed entry points, then ``extra_plugins`` (tests); misspelled hooks fail here."""
    host = PluginHost()
    host.load_builtins(settings.builtin_plugins)
    if settings.load_entry_points:
        host.load_entry_points(settings.plugin_allowlist)
    for plugin in extra_plugins or []:
        host.register(plugin)
    host.check()
    return host


def _plugin_routers(host: PluginHost) -> list[Router]:
    routers = []
    for slug, routes in host.routes_by_plugin().items():
        enabled = plugin_enabled(slug)
        if routes.pages:
            routers.append(Router(path=f"/o/{{org:str}}/{slug}", route_handlers=routes.pages,
                                  guards=[enabled, organization_member], include_in_schema=False,
                                  opt={"plugin": slug}))
        if routes.api:
            routers.append(Router(path=f"/api/v1/{slug}", route_handlers=routes.api,
                                  guards=[plugin_api_authenticated(slug)],
                                  tags=[slug], opt={"plugin": slug}))
        if routes.public:
            routers.append(Router(path="/", route_handlers=routes.public, guards=[enabled],
                                  include_in_schema=False, opt={"plugin": slug}))
    return routers


async def _vary_by_host(message: Message, scope: Scope) -> None:
    """Every response depends on the Host (and the session cookie): shared caches must not mix tenants."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message).add("Vary", "Host, Cookie")


async def _connect_database(app: Litestar) -> None:
    await connect()


async def _disconnect_database(app: Litestar) -> None:
    await disconnect()


async def start_runtime(app: Litestar) -> None:
    """Load tenants, start the outbox worker, run plugins' ``portal_startup`` (database already connected)."""
    runtime: PortalRuntime = app.state.portal
    await runtime.directory.refresh()
    if runtime.settings.redis_url:
        bus = RedisInvalidation(runtime.settings.redis_url, runtime.directory)
        await bus.start()
        runtime.state["invalidation"] = bus
        runtime.directory.broadcast = bus.publish
    if runtime.settings.outbox_worker:
        worker = OutboxWorker(runtime.outbox_handlers, app, runtime.settings.outbox_poll_interval)
        runtime.state["outbox_worker"] = worker
        worker.start()
    await runtime.plugins.call("portal_startup", tenant=None, app=app)


async def stop_runtime(app: Litestar) -> None:
    """Run plugins' ``portal_shutdown`` and stop the worker (the database stays connected)."""
    runtime: PortalRuntime = app.state.portal
    await runtime.plugins.call("portal_shutdown", tenant=None, app=app)
    worker = runtime.state.pop("outbox_worker", None)
    if worker is not None:
        await worker.stop()
    bus = runtime.state.pop("invalidation", None)
    if bus is not None:
        runtime.directory.broadcast = None
        await bus.stop()


def create_app(settings: Settings | None = None, *, extra_plugins: list[Any] | None = None) -> Litestar:
    """Build a Portal app. Everything it owns hangs off ``app.state.portal``."""
    settings = settings or load_settings()
    use_database(settings.database_url)
    host = build_plugin_host(settings, extra_plugins)
    template_dirs = [path for _slug, path in host.paths("portal_template_dirs")]
    runtime = PortalRuntime(
        settings=settings,
        plugins=host,
        themes=ThemeRegistry(settings.themes_dir, [*template_dirs, CONSOLE_TEMPLATES]),
        directory=TenantDirectory(settings.tenant_cache_ttl),
        passwords=Passwords(settings.password_hash_profile),
        secrets=SecretBox(settings.secret_key),
        permissions_by_plugin=host.permissions_by_plugin(),
        throttles=Throttles(settings.redis_url),
    )
    runtime.outbox_handlers = {MAIL_KIND: deliver_mail}
    for _slug, handlers in host.call_build("portal_outbox_handlers"):
        runtime.outbox_handlers.update(handlers)

    static_routers = [
        create_static_files_router(path="/static/core", directories=[CORE_STATIC], include_in_schema=False,
                                   name="core_static"),
        create_static_files_router(path="/static/themes", directories=[settings.themes_dir],
                                   include_in_schema=False, name="theme_static"),
    ]
    for slug, path in host.paths("portal_static_dirs"):
        static_routers.append(create_static_files_router(
            path=f"/static/plugins/{slug}", directories=[path], include_in_schema=False,
            name=f"plugin_static_{slug}", guards=[plugin_enabled(slug)],
        ))

    core_pages = Router(path="/", route_handlers=[*AUTH_HANDLERS, *ACCOUNT_HANDLERS, *PAGE_HANDLERS,
                                                   *ASSET_HANDLERS], include_in_schema=False)

    app = Litestar(
        route_handlers=[core_pages, *console_handlers(), *_plugin_routers(host), *static_routers],
        dependencies={"ctx": Provide(provide_ctx, sync_to_thread=False)},
        middleware=[PortalContextMiddleware()],
        csrf_config=CSRFConfig(
            secret=settings.secret_key, cookie_name="portal_csrf", cookie_secure=settings.production,
            cookie_httponly=True, cookie_samesite="lax", header_name="x-csrftoken", exclude=["^/api/"],
        ),
        exception_handlers={HTTPException: http_exception_handler, Exception: internal_error_handler},
        before_send=[_vary_by_host],
        on_startup=[_connect_database, start_runtime],
        on_shutdown=[stop_runtime, _disconnect_database],
        openapi_config=OpenAPIConfig(
            title="Portal API", version=__version__, path="/schema",
            components=Components(security_schemes={
                "BearerAuth": SecurityScheme(type="http", scheme="bearer", description="An API key of your "
                                             "organization: Authorization: Bearer <key>"),
            }),
            security=[{"BearerAuth": []}],
        ),
        signature_namespace={"RequestContext": RequestContext, "Ctx": Ctx},
        debug=settings.debug,
        logging_config=None,  # the process configures logging (portal serve, tests); the app never rewires it
        request_max_body_size=10 * 1024 * 1024,
    )
    app.state.portal = runtime
    return app


def freeze_long_lived_objects() -> None:
    """Start-up hook of a served app: move what start-up built into the collector's permanent generation.

    A serving process holds about 200,000 long-lived objects (the app, plugins, templates,
    the tenant directory). Every full collection walked them all: a 50–150 ms pause for
    every request in flight, which was the usage ingest's p99 (bench/usage_bench.py).
    Objects made later are collected as usual. Not for tests, which build many apps per
    process and would keep the discarded ones.
    """
    gc.collect()
    gc.freeze()


def served(app: Litestar) -> Litestar:
    """``app`` as a server runs it: long-lived objects frozen once start-up finished."""
    app.on_startup.append(freeze_long_lived_objects)
    return app


def asgi_app() -> Litestar:
    """Factory for ASGI servers (``uvicorn --factory core.app:asgi_app``)."""
    return served(create_app())
