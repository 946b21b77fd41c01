"""Fixtures of the audit plugin's tests: an app with the core and this plugin, a probe plugin that emits."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from litestar import Request, post
from litestar.response import Response

from core import hookimpl
from core.context import SYSTEM_ACTOR, Actor, system_context
from core.contracts import PluginInfo, PluginRoutes
from core.db import atomic, is_sqlite, utcnow
from core.events import Event, Target, emit
from core.guards import context_of
from core.tables import User

TRIGGERS = importlib.import_module("plugins.audit.migrations.audit_2026_11_22t04_15_25_000000")


@pytest.fixture(scope="session")
def portal_settings() -> Any:
    """The core and the audit plugin only: these tests count audit rows, which other sections would add to."""
    from core.settings import load_settings

    return load_settings(load_entry_points=False, builtin_plugins=("core.builtin", "plugins.audit"))


class ProbeError(RuntimeError):
    """Raised by the probe after it emitted, to prove the audit row rolls back with the change."""


@post("/probe/rename", opt={"exclude_from_csrf": True})
async def probe_rename(request: Request[Any, Any, Any]) -> Response[str]:
    """A plugin's change: rename a user and emit, in one transaction (``?fail=1`` raises after the emit)."""
    ctx = context_of(request)
    form = await request.form()
    user_id = uuid.UUID(str(form["user"]))
    async with atomic():
        before = await User.select(User.name).where(User.id == user_id, User.tenant == ctx.tenant.id).first()
        await User.update({User.name: str(form["name"])}).where(User.id == user_id)
        await emit(ctx, "probe.user.renamed", target=Target("user", str(user_id), str(form["name"])),
                   before={"name": before["name"]}, after={"name": str(form["name"]), "api_token": "tok-123"})
        if form.get("fail"):
            raise ProbeError("the change failed after it was recorded")
    return Response("ok")


class ProbePlugin:
    """A throwaway plugin that changes things and emits events, as every section does."""

    @staticmethod
    @hookimpl
    def portal_plugin() -> PluginInfo:
        return PluginInfo("audit-probe", "Audit probe", "1.0.0")

    @staticmethod
    @hookimpl
    def portal_routes() -> PluginRoutes:
        return PluginRoutes(public=[probe_rename])


@pytest.fixture
async def app(portal_app_factory: Any) -> Any:
    """A started app with the probe plugin registered."""
    return await portal_app_factory(ProbePlugin())


@pytest.fixture
async def tenant(make_tenant: Any) -> Any:
    """A tenant with the audit plugin (and the probe) enabled."""
    return await make_tenant(plugins=["audit", "audit-probe"])


async def tenant_ctx(app: Any, tenant: Any, organization: Any = None, actor: Actor = SYSTEM_ACTOR) -> Any:
    """A system context of a test tenant (the app's tenant snapshot refreshed first)."""
    runtime = app.state.portal
    await runtime.directory.refresh()
    return system_context(runtime, runtime.directory.get(tenant.id), organization=organization, actor=actor)


def event(tenant_id: uuid.UUID, type: str = "test.thing.changed", *, organization_id: uuid.UUID | None = None,
          time: datetime | None = None, actor: Actor | None = None, target: Target | None = None,
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
          outcome: str = "success", ip: str = "203.0.113.9") -> Event:
    """An event as ``emit`` builds it, with everything overridable (old times for retention tests)."""
    return Event(type=type, tenant_id=tenant_id, organization_id=organization_id,
                 actor=actor or Actor("user", str(uuid.uuid4()), "someone@example.com", "password"),
                 target=target or Target("thing", "t-1", "Thing one"), before=before, after=after, outcome=outcome,
                 ip=ip, user_agent="pytest", request_id=uuid.uuid4().hex, time=time or utcnow())


async def audit_rows(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every audit row of a tenant in chain order."""
    from plugins.audit.tables import AuditEvent

    return await AuditEvent.select().where(AuditEvent.tenant == tenant_id).order_by(AuditEvent.seq)


@asynccontextmanager
async def triggers_dropped() -> AsyncIterator[None]:
    """Take the append-only triggers away for a block (a tampering DBA would), then put them back."""
    from piccolo.engine import engine_finder

    db = engine_finder()
    drop = TRIGGERS.SQLITE_DROP_TRIGGERS if is_sqlite() else TRIGGERS.POSTGRES_DROP_TRIGGERS
    create = TRIGGERS.SQLITE_TRIGGERS if is_sqlite() else TRIGGERS.POSTGRES_TRIGGERS
    for statement in drop:
        await db.run_ddl(statement)
    try:
        yield
    finally:
        for statement in create:
            await db.run_ddl(statement)
