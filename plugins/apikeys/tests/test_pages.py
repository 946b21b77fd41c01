"""Key pages: create (scope ceiling), shown once, hash-only storage, roles, isolation, disabled plugin."""

import logging
import uuid

from piccolo.table import TABLE_REGISTRY

from core.db import utcnow
from core.security import token_hash
from core.tables import Membership, Organization, User
from core.testing import ROLES, client_for, form_post
from plugins.apikeys.tables import ApiKey
from plugins.apikeys.tests.conftest import bearer, create_key, signed_in


async def test_key_is_shown_once_and_only_its_hash_is_stored(app, tenant_factory, widgets, caplog):
    caplog.set_level(logging.DEBUG)
    tenant = await tenant_factory()
    client = await signed_in(app, tenant)
    response, key = await create_key(client, tenant, name="Production server")
    assert response.status_code == 200 and key
    assert response.headers["cache-control"] == "no-store"
    assert "only time the key is shown" in response.text and 'id="copy-key"' in response.text

    row = await ApiKey.select().where(ApiKey.tenant == tenant.id).first()
    assert row["key_hash"] == token_hash(key) and row["last4"] == key[-4:]
    for table in TABLE_REGISTRY:  # every table of every app, this session's whole database
        rows = await table.select()
        assert key not in repr(rows), f"plaintext key found in {table._meta.tablename}"
    assert key not in caplog.text
    assert all(key not in repr(event) for event in widgets.events)

    listing = await client.get(f"/o/{tenant.org_slug}/api-keys")
    detail = await client.get(f"/o/{tenant.org_slug}/api-keys/{row['id']}")
    for page in (listing, detail):
        assert page.status_code == 200
        assert key not in page.text
        assert f"pk_live_…{key[-4:]}" in page.text
    assert "Owner User" in listing.text  # creator
    created = [e for e in widgets.events if e.type == "apikeys.key.created"]
    assert len(created) == 1
    assert created[0].actor.type == "user" and created[0].after["scopes"] == ["api_keys.read", "widgets.read"]


async def test_tenant_prefix_is_used(app, tenant_factory):
    tenant = await tenant_factory(settings={"api-keys": {"prefix": "acme"}})
    client = await signed_in(app, tenant)
    _, key = await create_key(client, tenant, environment="test")
    assert key.startswith("acme_test_")


async def test_scopes_never_exceed_the_creators_role(app, tenant_factory):
    tenant = await tenant_factory()
    member = await signed_in(app, tenant, "member")
    form = await member.get(f"/o/{tenant.org_slug}/api-keys/new")
    assert 'value="widgets.admin"' in form.text and "your role cannot grant this" in form.text
    response, key = await create_key(member, tenant, scopes=("widgets.read", "widgets.admin"))
    assert response.status_code == 400 and key is None
    assert "does not allow you to grant widgets.admin" in response.text
    response, key = await create_key(member, tenant, scopes=("nonsense.scope",))
    assert response.status_code == 400 and "Unknown scope" in response.text
    response, key = await create_key(member, tenant, scopes=())
    assert response.status_code == 400 and "at least one scope" in response.text
    response, key = await create_key(member, tenant, name="", scopes=("widgets.read",))
    assert response.status_code == 400 and "Give the key a name" in response.text
    assert await ApiKey.count().where(ApiKey.tenant == tenant.id) == 0

    owner = await signed_in(app, tenant, "owner")
    response, key = await create_key(owner, tenant, scopes=("widgets.read", "widgets.admin"))
    assert response.status_code == 200 and key


async def test_expiry_choices(app, tenant_factory):
    tenant = await tenant_factory()
    client = await signed_in(app, tenant)
    response, _ = await create_key(client, tenant, expiry="custom", expires_on="2001-01-01")
    assert response.status_code == 400 and "future" in response.text
    response, _ = await create_key(client, tenant, expiry="30")
    assert response.status_code == 200
    row = await ApiKey.select(ApiKey.expires_at).first().where(ApiKey.tenant == tenant.id)
    assert 29 <= (row["expires_at"].replace(tzinfo=None) - utcnow().replace(tzinfo=None)).days <= 30


async def test_role_by_action_matrix(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant, name="Owner's key")
    key_id = (await ApiKey.select(ApiKey.id).first().where(ApiKey.tenant == tenant.id))["id"]
    base = f"/o/{tenant.org_slug}/api-keys"
    allowed = {"owner", "admin", "member"}
    for role in ROLES:
        client = await signed_in(app, tenant, role)
        expected = 200 if role in allowed else 403
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert (f'href="{base}"' in overview.text) == (role in allowed), role
        for path in (base, f"{base}/new", f"{base}/{key_id}", f"{base}/{key_id}/revoke"):
            assert (await client.get(path)).status_code == expected, (role, path)
        if role in allowed:
            created, _ = await create_key(client, tenant, name=f"{role} key", scopes=("api_keys.read",))
            assert created.status_code == 200, role
            own = (await ApiKey.select(ApiKey.id).first().where(ApiKey.name == f"{role} key",
                                                                 ApiKey.tenant == tenant.id))["id"]
            rotated = await form_post(client, f"{base}/{own}/rotate", {"grace": "1h"}, token_from=base)
            assert rotated.status_code == 200 and "keeps working until" in rotated.text, role
            revoked = await form_post(client, f"{base}/{own}/revoke", {}, token_from=base)
            assert revoked.status_code == 302, role
        else:
            for path, data in ((f"{base}/{key_id}/rotate", {"grace": "1h"}), (f"{base}/{key_id}/revoke", {}),
                               (base, {"name": "x", "scopes": ["api_keys.read"], "expiry": "never"})):
                assert (await form_post(client, path, data, token_from="/account")).status_code == 403, (role, path)
    row = await ApiKey.select(ApiKey.revoked_at, ApiKey.replaced_by).first().where(ApiKey.id == key_id)
    assert row == {"revoked_at": None, "replaced_by": None}
    assert await ApiKey.count().where(ApiKey.tenant == tenant.id) == 1 + 2 * len(allowed)  # each: created + rotated
    async with client_for(app, tenant.host) as api:
        assert (await api.get("/api/v1/api-keys/me", headers=bearer(key))).status_code == 200


async def test_other_organizations_keys_are_invisible(app, tenant_factory):
    tenant_a = await tenant_factory()
    tenant_b = await tenant_factory()
    owner_a = await signed_in(app, tenant_a)
    await create_key(owner_a, tenant_a, name="Secret pipeline A")
    key_a = (await ApiKey.select(ApiKey.id).first().where(ApiKey.tenant == tenant_a.id))["id"]

    # a second organization in tenant A, whose owner is tenant A's admin
    org2 = uuid.uuid4()
    await Organization.insert(Organization(id=org2, tenant=tenant_a.id, slug="second-org", name="Second Org",
                                           created_at=utcnow()))
    admin = await User.select(User.id).first().where(User.email == tenant_a.email("admin"))
    await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant_a.id, organization=org2, user=admin["id"],
                                       role="owner", created_at=utcnow()))
    admin_a = await signed_in(app, tenant_a, "admin")
    listing = await admin_a.get("/o/second-org/api-keys")
    assert listing.status_code == 200 and "Secret pipeline A" not in listing.text and "No API keys yet" in listing.text
    for path in (f"/o/second-org/api-keys/{key_a}", f"/o/second-org/api-keys/{key_a}/revoke"):
        assert (await admin_a.get(path)).status_code == 404
    revoke = await form_post(admin_a, f"/o/second-org/api-keys/{key_a}/revoke", {}, token_from="/o/second-org/api-keys")
    assert revoke.status_code == 404

    owner_b = await signed_in(app, tenant_b)
    assert (await owner_b.get(f"/o/{tenant_b.org_slug}/api-keys/{key_a}")).status_code == 404
    assert (await owner_b.get(f"/o/{tenant_a.org_slug}/api-keys")).status_code == 404
    assert (await ApiKey.select(ApiKey.revoked_at).first().where(ApiKey.id == key_a))["revoked_at"] is None


async def test_disabled_plugin_answers_404(app, tenant_factory):
    enabled = await tenant_factory()
    owner = await signed_in(app, enabled)
    _, key = await create_key(owner, enabled, scopes=("api_keys.read",))
    disabled = await tenant_factory(plugins=["widgets"])
    client = await signed_in(app, disabled)
    assert (await client.get(f"/o/{disabled.org_slug}/api-keys")).status_code == 404
    assert (await client.get(f"/o/{disabled.org_slug}/api-keys/new")).status_code == 404
    overview = await client.get(f"/o/{disabled.org_slug}/")
    assert "/api-keys" not in overview.text
    async with client_for(app, disabled.host) as api:
        assert (await api.get("/api/v1/api-keys/me", headers=bearer(key))).status_code == 404


async def test_revoke_asks_first_and_warns_when_recently_used(app, tenant_factory):
    tenant = await tenant_factory()
    client = await signed_in(app, tenant)
    _, key = await create_key(client, tenant, name="Busy key")
    _, idle = await create_key(client, tenant, name="Idle key")
    rows = {r["name"]: r["id"] for r in await ApiKey.select(ApiKey.id, ApiKey.name).where(ApiKey.tenant == tenant.id)}
    async with client_for(app, tenant.host) as api:
        assert (await api.get("/api/v1/api-keys/me", headers=bearer(key))).status_code == 200
    base = f"/o/{tenant.org_slug}/api-keys"
    busy = await client.get(f"{base}/{rows['Busy key']}/revoke")
    assert busy.status_code == 200 and 'data-testid="recent-use-warning"' in busy.text
    quiet = await client.get(f"{base}/{rows['Idle key']}/revoke")
    assert 'data-testid="recent-use-warning"' not in quiet.text and "not been used" in quiet.text
    busy_path = f"{base}/{rows['Busy key']}/revoke"
    done = await form_post(client, busy_path, {}, token_from=busy_path)
    assert done.status_code == 302 and done.headers["location"] == f"{base}?done=revoked"
    listing = await client.get(done.headers["location"])
    assert "was revoked" in listing.text and "Revoked, expired and replaced keys" in listing.text
    again = await form_post(client, f"{base}/{rows['Busy key']}/revoke", {}, token_from=base)
    assert again.status_code == 400 and "already revoked" in again.text
    async with client_for(app, tenant.host) as api:
        assert (await api.get("/api/v1/api-keys/me", headers=bearer(key))).status_code == 401
        assert (await api.get("/api/v1/api-keys/me", headers=bearer(idle))).status_code == 200
