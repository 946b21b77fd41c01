"""The plugin through the hook contract: reminders (service and CLI), metrics, cards, demo seed, auth hook."""

import asyncio
import os
import sys
from datetime import timedelta

import pytest
from litestar.exceptions import NotAuthorizedException

from core.context import CurrentOrganization, RequestContext, system_context
from core.tables import DevMail, Notification, Organization, OutboxMessage
from core.testing import deliver_outbox
from plugins.apikeys import clock, service
from plugins.apikeys.tables import ApiKey, ApiKeyUsageDay
from plugins.apikeys.tests.conftest import bearer, create_key, signed_in


def _ctx(app, tenant_id, org=None):
    runtime = app.state.portal
    return system_context(runtime, runtime.directory.get(tenant_id), organization=org)


async def _org(tenant):
    row = await Organization.select().first().where(Organization.id == tenant.org_id)
    return row, CurrentOrganization(row["id"], row["slug"], row["name"])


async def test_expiry_reminder_event_mail_and_notification_once(app, tenant_factory, widgets):
    tenant = await tenant_factory()
    member = await signed_in(app, tenant, "member")
    soon = (clock.now() + timedelta(days=5)).date().isoformat()
    await create_key(member, tenant, name="Expiring soon", expiry="custom", expires_on=soon,
                     scopes=("widgets.read",))
    await create_key(member, tenant, name="Far away", expiry="365", scopes=("widgets.read",))
    reminded, _ = await service.remind_expiring(app.state.portal)  # every tenant of the database
    assert reminded >= 1
    assert await service.remind_expiring(app.state.portal) == (0, 0)  # idempotent
    events = [e for e in widgets.events if e.type == "apikeys.key.expiring" and e.tenant_id == tenant.id]
    assert len(events) == 1 and events[0].target.display == "Expiring soon" and events[0].actor.type == "system"
    await deliver_outbox(app)
    mails = await DevMail.select().where(DevMail.tenant == tenant.id)
    assert [m["recipient"] for m in mails] == [tenant.email("member")]
    assert "Expiring soon" in mails[0]["subject"] and f"/o/{tenant.org_slug}/api-keys/" in mails[0]["text"]
    assert await Notification.count().where(Notification.tenant == tenant.id) == 1


async def test_expired_keys_are_recorded_once(app, tenant_factory, widgets, monkeypatch):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    await create_key(owner, tenant, name="Short-lived", expiry="30")
    real = clock.now
    monkeypatch.setattr(clock, "now", lambda: real() + timedelta(days=31))
    _, expired = await service.remind_expiring(app.state.portal)
    assert expired >= 1
    assert await service.remind_expiring(app.state.portal) == (0, 0)
    mine = [e for e in widgets.events if e.tenant_id == tenant.id and e.type.startswith("apikeys.key.exp")]
    assert [(e.type, e.target.display) for e in mine] == [("apikeys.key.expired", "Short-lived")]


async def test_cli_remind_command(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    soon = (clock.now() + timedelta(days=2)).date().isoformat()
    await create_key(owner, tenant, name="CLI reminder", expiry="custom", expires_on=soon)
    process = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "portal"), "api-keys", "remind",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "reminder(s) sent" in out.decode()
    key = await ApiKey.select(ApiKey.id, ApiKey.reminded_at).first().where(ApiKey.tenant == tenant.id)
    assert key["reminded_at"] is not None
    assert await OutboxMessage.exists().where(OutboxMessage.dedupe_key.like(f"apikeys.expiring:{key['id']}:%"))


async def test_usage_metrics_and_dashboard_card(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant)
    await create_key(owner, tenant, name="Second")
    from core.testing import client_for

    async with client_for(app, tenant.host) as api:
        for _ in range(3):
            await api.get("/api/v1/api-keys/me", headers=bearer(key))
    _, org = await _org(tenant)
    ctx = _ctx(app, tenant.id, org)
    results = dict(await app.state.portal.plugins.call("portal_usage_metrics", tenant=ctx.tenant, ctx=ctx,
                                                        org=org))
    metrics = {m.key: m for m in results["api-keys"]}
    assert metrics["api_keys"].used == 2 and metrics["api_calls"].used == 3
    overview = await owner.get(f"/o/{tenant.org_slug}/")
    assert "API keys" in overview.text and "Manage keys" in overview.text


async def test_seed_demo_is_idempotent(app, tenant_factory):
    tenant = await tenant_factory()
    _, org = await _org(tenant)
    ctx = _ctx(app, tenant.id, org)
    for _ in range(2):
        await app.state.portal.plugins.call("portal_seed_demo", tenant=ctx.tenant, strict=True, ctx=ctx, org=org)
    keys = await ApiKey.select().where(ApiKey.tenant == tenant.id)
    assert sorted(k["name"] for k in keys) == ["CI pipeline", "Production server"]
    assert await ApiKeyUsageDay.count().where(ApiKeyUsageDay.tenant == tenant.id) > 20
    owner = await signed_in(app, tenant)
    listing = await owner.get(f"/o/{tenant.org_slug}/api-keys")
    assert "Production server" in listing.text and "Expires soon" in listing.text


async def test_authenticate_hook_as_the_core_calls_it(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant, scopes=("widgets.read",))
    runtime = app.state.portal
    ctx = RequestContext(runtime=runtime, tenant=runtime.directory.get(tenant.id), ip="192.0.2.1")
    call = runtime.plugins.call
    assert await call("portal_authenticate_api", tenant=ctx.tenant, strict=True, ctx=ctx,
                      authorization="Basic abc") == []
    [(slug, principal)] = await call("portal_authenticate_api", tenant=ctx.tenant, strict=True, ctx=ctx,
                                     authorization=f"Bearer {key}")
    assert slug == "api-keys" and principal.organization.id == tenant.org_id
    assert principal.permissions == frozenset({"widgets.read"}) and principal.actor.auth_method == "api_key"
    with pytest.raises(NotAuthorizedException):
        await call("portal_authenticate_api", tenant=ctx.tenant, strict=True, ctx=ctx, authorization="Bearer x")
