"""Events fan out through ``portal_event`` inside the caller's transaction."""

from __future__ import annotations

import types
import uuid

import pytest

from core import hookimpl
from core.context import system_context
from core.contracts import PluginInfo
from core.db import atomic, utcnow
from core.events import Target, changed_fields, emit
from core.tables import Organization
from core.testing import client_for, login
from tests.plugins import everything


def _failing_plugin() -> types.ModuleType:
    module = types.ModuleType("failing_audit")

    @hookimpl
    def portal_plugin():
        return PluginInfo("failing-audit", "Failing audit", "0.1.0")

    @hookimpl
    async def portal_event(event):
        raise RuntimeError("audit store unavailable")

    module.portal_plugin, module.portal_event = portal_plugin, portal_event
    return module


async def test_event_carries_who_what_where(portal_app_factory, make_tenant):
    everything.EVENTS.clear()
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=["everything"])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
    event = next(e for e in everything.EVENTS if getattr(e, "type", "") == "auth.login.succeeded")
    assert event.tenant_id == tenant.id
    assert event.actor.type == "user" and event.actor.display == tenant.email("owner")
    assert event.target.display == tenant.email("owner")
    assert event.ip == "127.0.0.1" and event.request_id and event.time.tzinfo is not None


async def test_event_is_not_delivered_to_a_tenant_that_disabled_the_plugin(portal_app_factory, make_tenant):
    everything.EVENTS.clear()
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=[])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
    assert not [e for e in everything.EVENTS if getattr(e, "tenant_id", None) == tenant.id]


async def test_a_failing_event_handler_rolls_the_change_back(portal_app_factory, make_tenant):
    app = await portal_app_factory(_failing_plugin())
    tenant = await make_tenant(plugins=["failing-audit"])
    ctx = system_context(app.state.portal, app.state.portal.directory.lookup(tenant.host))
    slug = f"doomed-{tenant.slug}"
    with pytest.raises(RuntimeError, match="audit store unavailable"):
        async with atomic():
            await Organization.insert(Organization(id=uuid.uuid4(), tenant=tenant.id, slug=slug, name="Doomed",
                                                   created_at=utcnow()))
            await emit(ctx, "organization.created", target=Target("organization", None, "Doomed"))
    assert not await Organization.exists().where(Organization.slug == slug)


def test_changed_fields_keeps_only_differences():
    before, after = changed_fields({"name": "A", "email": "a@x", "role": "member"},
                                   {"name": "A", "email": "b@x", "role": "admin"})
    assert before == {"email": "a@x", "role": "member"} and after == {"email": "b@x", "role": "admin"}


async def test_permission_denial_is_an_event_once_a_minute(portal_app_factory, make_tenant):
    everything.EVENTS.clear()
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=["everything"])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        for _ in range(3):
            assert (await client.get(f"/o/{tenant.org_slug}/everything")).status_code == 403
    denials = [e for e in everything.EVENTS if getattr(e, "type", "") == "auth.permission.denied"]
    assert len(denials) == 1
    assert denials[0].outcome == "denied" and denials[0].data["missing"] == ["everything.view"]
    assert denials[0].organization_id == tenant.org_id and denials[0].actor.display == tenant.email("viewer")
