"""``/api/v1`` authentication with API keys: 401 / 403 / 429, rotation, revocation, usage and last-used."""

import asyncio
from datetime import timedelta

import pytest

from core.testing import client_for, form_post
from plugins.apikeys import auth, clock
from plugins.apikeys.keyformat import checksum, generate_key
from plugins.apikeys.tables import ApiKey, ApiKeyUsageDay
from plugins.apikeys.tests.conftest import bearer, create_key, signed_in

ME = "/api/v1/api-keys/me"


@pytest.fixture
def travel(monkeypatch):
    """``travel(timedelta)``: move the plugin's clock forward."""
    offset = timedelta(0)
    real = clock.now

    def shifted():
        return real() + offset

    def go(delta):
        nonlocal offset
        offset += delta

    monkeypatch.setattr(clock, "now", shifted)
    return go


async def _key_id(tenant, name="Production server"):
    return (await ApiKey.select(ApiKey.id).first().where(ApiKey.tenant == tenant.id, ApiKey.name == name))["id"]


async def test_me_and_list_with_a_valid_key(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant, scopes=("widgets.read", "api_keys.read"))
    async with client_for(app, tenant.host) as api:
        me = await api.get(ME, headers=bearer(key))
        assert me.status_code == 200
        body = me.json()
        assert body["organization"]["slug"] == tenant.org_slug
        assert body["key"]["name"] == "Production server" and body["key"]["environment"] == "live"
        assert body["scopes"] == ["api_keys.read", "widgets.read"]
        assert (await api.get("/api/v1/api-keys/whoami", headers=bearer(key))).json() == body
        listing = await api.get("/api/v1/api-keys", headers=bearer(key))
        assert listing.status_code == 200
        assert listing.json()[0]["key"] == f"pk_live_…{key[-4:]}" and key not in listing.text
        widgets = await api.get("/api/v1/widgets", headers=bearer(key))
        assert widgets.status_code == 200 and widgets.json()["organization"] == tenant.org_slug


async def test_401_for_missing_malformed_unknown_revoked_expired_and_foreign_keys(app, tenant_factory, travel, widgets):
    tenant = await tenant_factory()
    other = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, revoked = await create_key(owner, tenant, name="Revoked")
    _, expiring = await create_key(owner, tenant, name="Expiring", expiry="30")
    other_owner = await signed_in(app, other)
    _, foreign = await create_key(other_owner, other, name="Other tenant's")
    base = f"/o/{tenant.org_slug}/api-keys"
    revoked_id = await _key_id(tenant, "Revoked")
    assert (await form_post(owner, f"{base}/{revoked_id}/revoke", {}, token_from=base)).status_code == 302
    head = revoked[:-6]
    bad_checksum = head + ("000000" if checksum(head) != "000000" else "000001")
    async with client_for(app, tenant.host) as api:
        cases = {
            "missing": {},
            "not bearer": {"Authorization": f"Basic {revoked}"},
            "malformed": bearer("hello"),
            "bad checksum": bearer(bad_checksum),
            "unknown": bearer(generate_key()),
            "revoked": bearer(revoked),
            "foreign": bearer(foreign),
        }
        for case, headers in cases.items():
            response = await api.get(ME, headers=headers)
            assert response.status_code == 401, case
            assert response.json()["status"] == 401 and "WWW-Authenticate" in response.headers, case
        assert (await api.get(ME, headers=bearer(expiring))).status_code == 200
        travel(timedelta(days=31))
        expired = await api.get(ME, headers=bearer(expiring))
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
    async with client_for(app, other.host) as api:
        assert (await api.get(ME, headers=bearer(foreign))).status_code == 200
    denied = [e for e in widgets.events if e.type == "apikeys.key.revoked_use"]
    assert len(denied) == 1 and denied[0].outcome == "denied" and denied[0].actor.type == "api_key"
    assert denied[0].organization_id == tenant.org_id


async def test_missing_scope_is_403(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant, scopes=("widgets.read",))
    async with client_for(app, tenant.host) as api:
        assert (await api.get("/api/v1/widgets", headers=bearer(key))).status_code == 200
        assert (await api.get("/api/v1/widgets/admin", headers=bearer(key))).status_code == 403
        assert (await api.get("/api/v1/api-keys", headers=bearer(key))).status_code == 403
        assert (await api.get(ME, headers=bearer(key))).status_code == 200


async def test_rotation_with_grace_period(app, tenant_factory, travel, widgets):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, old = await create_key(owner, tenant, expiry="90")
    base = f"/o/{tenant.org_slug}/api-keys"
    old_id = await _key_id(tenant)
    rotated = await form_post(owner, f"{base}/{old_id}/rotate", {"grace": "1h"}, token_from=f"{base}/{old_id}")
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new = rotated.text.split('data-testid="new-key" readonly value="')[1].split('"')[0]
    assert new != old and new.startswith("pk_live_")
    rows = await ApiKey.select().where(ApiKey.tenant == tenant.id).order_by(ApiKey.created_at)
    assert len(rows) == 2 and rows[0]["replaced_by"] == rows[1]["id"]
    assert abs((rows[1]["expires_at"] - rows[1]["created_at"]) - timedelta(days=90)) < timedelta(seconds=5)
    again = await form_post(owner, f"{base}/{old_id}/rotate", {"grace": "1h"}, token_from=base)
    assert again.status_code == 400 and "already rotated" in again.text
    async with client_for(app, tenant.host) as api:
        assert (await api.get(ME, headers=bearer(old))).status_code == 200
        assert (await api.get(ME, headers=bearer(new))).status_code == 200
        travel(timedelta(minutes=59))
        assert (await api.get(ME, headers=bearer(old))).status_code == 200
        travel(timedelta(minutes=2))
        gone = await api.get(ME, headers=bearer(old))
        assert gone.status_code == 401 and "replaced" in gone.json()["error"]
        assert (await api.get(ME, headers=bearer(new))).status_code == 200
    event = next(e for e in widgets.events if e.type == "apikeys.key.rotated")
    assert event.actor.type == "user" and event.after["grace"] == "1h" and new not in repr(event)


async def test_rotation_without_grace_stops_the_old_key_now(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, old = await create_key(owner, tenant)
    base = f"/o/{tenant.org_slug}/api-keys"
    old_id = await _key_id(tenant)
    async with client_for(app, tenant.host) as api:
        assert (await api.get(ME, headers=bearer(old))).status_code == 200  # now cached in this process
        rotated = await form_post(owner, f"{base}/{old_id}/rotate", {"grace": "none"}, token_from=base)
        assert rotated.status_code == 200 and "has stopped working" in rotated.text
        assert (await api.get(ME, headers=bearer(old))).status_code == 401


async def test_member_cannot_rotate_a_key_with_scopes_beyond_their_role(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    await create_key(owner, tenant, scopes=("widgets.admin",))
    key_id = await _key_id(tenant)
    member = await signed_in(app, tenant, "member")
    base = f"/o/{tenant.org_slug}/api-keys"
    response = await form_post(member, f"{base}/{key_id}/rotate", {"grace": "1h"}, token_from=base)
    assert response.status_code == 400 and "ask an owner" in response.text
    assert await ApiKey.count().where(ApiKey.tenant == tenant.id) == 1


async def test_revocation_reaches_other_processes_within_the_cache_ttl(app, portal_app_factory, widgets,
                                                                       tenant_factory, monkeypatch):
    from plugins.apikeys.tests.conftest import APP_PLUGINS

    other_process = await portal_app_factory(widgets, builtin_plugins=APP_PLUGINS)
    monkeypatch.setattr(auth, "CACHE_TTL", 0.3)
    tenant = await tenant_factory()
    await other_process.state.portal.directory.refresh()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant)
    key_id = await _key_id(tenant)
    async with client_for(other_process, tenant.host) as api:
        assert (await api.get(ME, headers=bearer(key))).status_code == 200
        base = f"/o/{tenant.org_slug}/api-keys"
        assert (await form_post(owner, f"{base}/{key_id}/revoke", {}, token_from=base)).status_code == 302
        await asyncio.sleep(0.35)
        assert (await api.get(ME, headers=bearer(key))).status_code == 401


async def test_rate_limit_per_key(app, tenant_factory):
    tenant = await tenant_factory(settings={"api-keys": {"rate_limit_per_minute": 3}})
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant, name="A")
    _, other_key = await create_key(owner, tenant, name="B")
    async with client_for(app, tenant.host) as api:
        for _ in range(3):
            assert (await api.get(ME, headers=bearer(key))).status_code == 200
        limited = await api.get(ME, headers=bearer(key))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        assert (await api.get(ME, headers=bearer(other_key))).status_code == 200


async def test_burst_of_invalid_keys_from_one_address_is_429(app, tenant_factory):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant)
    async with client_for(app, tenant.host, client_ip="203.0.113.9") as attacker:
        for _ in range(auth.INVALID_LIMIT):
            assert (await attacker.get(ME, headers=bearer(generate_key()))).status_code == 401
        blocked = await attacker.get(ME, headers=bearer(generate_key()))
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert (await attacker.get(ME, headers=bearer(key))).status_code == 429
    async with client_for(app, tenant.host, client_ip="198.51.100.7") as honest:
        assert (await honest.get(ME, headers=bearer(key))).status_code == 200


async def test_usage_is_counted_in_batches_and_last_used_at_most_once_a_minute(app, tenant_factory, travel):
    tenant = await tenant_factory()
    owner = await signed_in(app, tenant)
    _, key = await create_key(owner, tenant)
    key_id = await _key_id(tenant)
    buffer = auth.state_of(app.state.portal).usage
    async with client_for(app, tenant.host) as api:
        for _ in range(5):
            assert (await api.get(ME, headers=bearer(key))).status_code == 200
        assert await ApiKeyUsageDay.count().where(ApiKeyUsageDay.api_key == key_id) == 0  # not per request
        assert (await ApiKey.select(ApiKey.last_used_at).first().where(ApiKey.id == key_id))["last_used_at"] is None
        await buffer.flush()
        first = (await ApiKey.select(ApiKey.last_used_at).first().where(ApiKey.id == key_id))["last_used_at"]
        assert first is not None
        day = await ApiKeyUsageDay.select().where(ApiKeyUsageDay.api_key == key_id)
        assert [r["requests"] for r in day] == [5]

        travel(timedelta(seconds=30))
        await api.get(ME, headers=bearer(key))
        await buffer.flush()
        assert (await ApiKey.select(ApiKey.last_used_at).first().where(ApiKey.id == key_id))["last_used_at"] == first

        travel(timedelta(seconds=45))
        await api.get(ME, headers=bearer(key))
        await buffer.flush()
        later = (await ApiKey.select(ApiKey.last_used_at).first().where(ApiKey.id == key_id))["last_used_at"]
        assert later > first
    day = await ApiKeyUsageDay.select().where(ApiKeyUsageDay.api_key == key_id)
    assert sum(r["requests"] for r in day) == 7
    detail = await owner.get(f"/o/{tenant.org_slug}/api-keys/{key_id}")
    assert 'data-testid="usage-total">7<' in detail.text and "<polyline" in detail.text


async def test_openapi_documents_the_bearer_scheme_and_the_key_routes(app, tenant_factory):
    tenant = await tenant_factory()
    async with client_for(app, tenant.host) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert "/api/v1/api-keys/me" in schema["paths"] and "/api/v1/api-keys" in schema["paths"]
