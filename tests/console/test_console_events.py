"""Every console change emits its event (actor, target, before/after) and bumps the tenant's version;
saving without a change emits nothing."""

from __future__ import annotations

import io
import uuid

from PIL import Image

from core import hookimpl
from core.console.domains import verification_token
from core.contracts import PluginInfo
from core.db import load_json, utcnow
from core.tables import Tenant, TenantDomain
from core.testing import csrf_token


def _png(colour=(20, 83, 45, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


async def _version(tenant) -> int:
    return (await Tenant.select(Tenant.version).where(Tenant.id == tenant.id).first())["version"]


class Widgets:
    """A second installed section to switch on."""

    @hookimpl
    def portal_plugin(self):
        return PluginInfo("widgets", "Widgets", "1.0", "A section for tests.")


BRANDING = {"product_name": "Evented", "theme": "default", "primary_color": "#14532d", "accent_color": "",
            "sender_name": "", "sender_email": "", "support_email": "", "support_url": "", "legal_name": "",
            "legal_address": "", "tax_id": ""}
PLAN = {"name": "Pro", "id": "", "price": "29.00", "currency": "EUR", "interval": "month", "limits": "seats = 10",
        "features": "", "stripe_price_id": ""}


async def test_every_console_change_emits_an_event(portal_app_factory, make_tenant, admin_client, recorder, dnsmasq):
    dnsmasq.serve()
    app = await portal_app_factory(recorder, Widgets(), extra={"dns_resolver": dnsmasq.address})
    tenant = await make_tenant(plugins=["recorder"])
    custom = f"portal.{tenant.slug}-events.test"
    changes: list[tuple[str, str, dict, dict | None]] = [
        ("console.branding.updated", "/admin/branding", BRANDING, None),
        ("console.logo.updated", "/admin/branding/logo", {}, {"logo": ("l.png", _png(), "image/png")}),
        ("console.logo.removed", "/admin/branding/logo", {"remove": "1"}, None),
        ("console.favicon.updated", "/admin/branding/favicon", {}, {"favicon": ("f.png", _png(), "image/png")}),
        ("console.favicon.removed", "/admin/branding/favicon", {"remove": "1"}, None),
        ("console.sections.updated", "/admin/sections", {"plugins": ["recorder", "widgets"]}, None),
        ("console.plan.created", "/admin/plans", PLAN, None),
        ("console.plan.updated", "/admin/plans/pro", {**PLAN, "price": "39.00"}, None),
        ("console.plan.retired", "/admin/plans/pro/retire", {}, None),
        ("console.plan.restored", "/admin/plans/pro/retire", {"restore": "1"}, None),
        ("console.domain.added", "/admin/domains", {"hostname": custom}, None),
    ]
    async with admin_client(app, tenant) as client:
        async def post(path: str, data: dict, files: dict | None = None):
            token = await csrf_token(client, "/admin/branding")
            response = await client.post(path, data={"_csrf_token": token, **data}, files=files)
            assert response.status_code in (200, 302), (path, response.status_code, response.text[:300])
            return response

        for event_type, path, data, files in changes:
            version = await _version(tenant)
            seen = len(recorder.events)
            await post(path, data, files)
            new = [e.type for e in recorder.events[seen:]]
            assert new == [event_type], (path, new)
            assert await _version(tenant) == version + 1, event_type

        row = await TenantDomain.select().where(TenantDomain.hostname == custom).first()
        dnsmasq.serve(txt={f"_portal-challenge.{custom}": "portal-verification="
                           + verification_token(app.state.portal.settings.secret_key, tenant.id, custom)})
        for event_type, path in (("console.domain.verified", f"/admin/domains/{row['id']}/verify"),
                                 ("console.domain.primary_changed", f"/admin/domains/{row['id']}/primary")):
            seen = len(recorder.events)
            await post(path, {})
            assert [e.type for e in recorder.events[seen:]] == [event_type]
        spare = uuid.uuid4()  # a pending domain put there directly, removed through the console
        await TenantDomain.insert(TenantDomain(id=spare, tenant=tenant.id, hostname=f"spare.{tenant.slug}.test",
                                               is_primary=False, verified=False, created_at=utcnow()))
        seen = len(recorder.events)
        await post(f"/admin/domains/{spare}/remove", {})
        assert [e.type for e in recorder.events[seen:]] == ["console.domain.removed"]

        # Saving what is already saved changes nothing and records nothing.
        seen, version = len(recorder.events), await _version(tenant)
        await post("/admin/branding", BRANDING)
        await post("/admin/sections", {"plugins": ["recorder", "widgets"]})
        assert recorder.events[seen:] == [] and await _version(tenant) == version

    console_events = [e for e in recorder.events if e.type.startswith("console.")]
    assert len(console_events) == len(changes) + 3
    for event in console_events:
        assert event.actor.type == "user" and event.actor.display == tenant.email("admin"), event.type
        assert event.tenant_id == tenant.id and event.target is not None, event.type
        assert event.before is not None or event.after is not None, event.type
    # What the console changed is now the console's: re-applying the tenant's manifest keeps it.
    owned = (await Tenant.select(Tenant.console_owned).where(Tenant.id == tenant.id).first())["console_owned"]
    assert sorted(load_json(owned)) == ["branding", "domains.primary", "logo", "plugins", "settings.billing.plans"]
    assert (await TenantDomain.select(TenantDomain.source).where(TenantDomain.hostname == custom).first()) == {
        "source": "console"}
