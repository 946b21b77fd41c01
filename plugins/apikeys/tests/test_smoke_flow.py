"""The shortest path: create a key in the page, call the API with it."""

from core.testing import client_for
from plugins.apikeys.tests.conftest import bearer, create_key, signed_in


async def test_create_then_call_me(app, tenant_factory):
    tenant = await tenant_factory()
    client = await signed_in(app, tenant)
    response, key = await create_key(client, tenant)
    assert response.status_code == 200, response.text
    assert key and key.startswith("pk_live_")
    async with client_for(app, tenant.host) as api:
        me = await api.get("/api/v1/api-keys/me", headers=bearer(key))
    assert me.status_code == 200, me.text
    assert me.json()["organization"]["slug"] == tenant.org_slug
    assert me.json()["scopes"] == ["api_keys.read", "widgets.read"]
