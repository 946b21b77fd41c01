"""Plans editor: writes tenant.settings["billing"]["plans"] in the shape the billing plugin reads."""

from __future__ import annotations

from core.db import load_json
from core.tables import Tenant
from core.testing import csrf_token


async def _post(client, path, data):
    token = await csrf_token(client, "/admin/plans/new")
    return await client.post(path, data={"_csrf_token": token, **data})


async def _settings(tenant):
    return load_json((await Tenant.select(Tenant.settings).where(Tenant.id == tenant.id).first())["settings"])


PRO = {"name": "Pro", "id": "", "price": "29.00", "currency": "EUR", "interval": "month",
       "limits": "seats = 10\napi_calls = unlimited", "features": "Single sign-on\nPriority support\n",
       "stripe_price_id": "price_1Pro"}


async def test_create_edit_retire_plan(portal_app_factory, make_tenant, admin_client, recorder):
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["recorder"], settings={"billing": {"provider": "local"}, "other": 1})
    async with admin_client(app, tenant) as client:
        empty = await client.get("/admin/plans")
        assert empty.status_code == 200 and "No plans yet" in empty.text
        response = await _post(client, "/admin/plans", PRO)
        assert response.status_code == 302 and response.headers["location"] == "/admin/plans?saved=plan-created"
        settings = await _settings(tenant)
        assert settings["other"] == 1 and settings["billing"]["provider"] == "local"
        assert settings["billing"]["plans"] == [{
            "id": "pro", "name": "Pro", "price": 2900, "currency": "EUR", "interval": "month",
            "limits": {"seats": 10, "api_calls": -1}, "features": ["Single sign-on", "Priority support"],
            "stripe_price_id": "price_1Pro", "retired": False, "description": "",
        }]
        assert "allowed_plan_changes" not in settings["billing"]
        listing = await client.get("/admin/plans")
        assert "29.00 EUR / month" in listing.text and "unlimited" in listing.text

        edit = await client.get("/admin/plans/pro")
        assert edit.status_code == 200 and 'value="29.00"' in edit.text and "seats = 10" in edit.text
        response = await _post(client, "/admin/plans/pro", {**PRO, "name": "Pro Plus", "price": "39.5",
                                                             "interval": "year", "stripe_price_id": ""})
        assert response.status_code == 302
        [plan] = (await _settings(tenant))["billing"]["plans"]
        assert plan["id"] == "pro" and plan["name"] == "Pro Plus" and plan["price"] == 3950
        assert plan["interval"] == "year" and plan["stripe_price_id"] == ""

        response = await _post(client, "/admin/plans", {**PRO, "name": "Yen", "currency": "jpy", "price": "1200",
                                                          "switch_mode": "listed", "switch_to": ["pro", "nope"]})
        assert response.status_code == 302
        billing = (await _settings(tenant))["billing"]
        assert billing["plans"][1]["price"] == 1200 and billing["plans"][1]["currency"] == "JPY"
        assert billing["allowed_plan_changes"] == {"yen": ["pro"]}
        assert "Pro Plus" in (await client.get("/admin/plans")).text.split('data-testid="plan-yen"')[1]
        response = await _post(client, "/admin/plans/yen", {**PRO, "name": "Yen", "currency": "JPY", "price": "1200",
                                                             "switch_mode": "any"})
        assert response.status_code == 302
        assert (await _settings(tenant))["billing"]["allowed_plan_changes"] == {}

        response = await _post(client, "/admin/plans/pro/retire", {})
        assert response.status_code == 302
        assert (await _settings(tenant))["billing"]["plans"][0]["retired"] is True
        assert "retired" in (await client.get("/admin/plans")).text
        await _post(client, "/admin/plans/pro/retire", {"restore": "1"})
        assert (await _settings(tenant))["billing"]["plans"][0]["retired"] is False
    types = [e.type for e in recorder.events if e.type.startswith("console.plan")]
    assert types == ["console.plan.created", "console.plan.updated", "console.plan.created", "console.plan.updated",
                     "console.plan.retired", "console.plan.restored"]
    updated = recorder.of("console.plan.updated")[0]
    assert updated.before["price"] == 2900 and updated.after["price"] == 3950


async def test_plan_validation(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    async with admin_client(portal_app, tenant) as client:
        response = await _post(client, "/admin/plans", {**PRO, "name": "", "price": "12.345", "currency": "euro",
                                                          "interval": "weekly", "limits": "seats ten",
                                                          "stripe_price_id": "prod_123", "id": "Bad Id"})
        assert response.status_code == 400
        for message in ("Give the plan a name", "at most 2 decimals", "three-letter currency code",
                        "Choose monthly or yearly", "Line 1: write one limit per line",
                        "A Stripe price id looks like", "Use lower-case letters"):
            assert message in response.text, message
        response = await _post(client, "/admin/plans", {**PRO, "limits": "seats = many"})
        assert response.status_code == 400 and "seats needs a whole number" in response.text
        assert (await _post(client, "/admin/plans", PRO)).status_code == 302
        duplicate = await _post(client, "/admin/plans", PRO)
        assert duplicate.status_code == 400 and "already a plan with the id pro" in duplicate.text
        assert len((await _settings(tenant))["billing"]["plans"]) == 1


async def test_plans_are_per_tenant(portal_app, make_tenant, admin_client):
    tenant_a = await make_tenant()
    tenant_b = await make_tenant()
    async with admin_client(portal_app, tenant_a) as client:
        assert (await _post(client, "/admin/plans", PRO)).status_code == 302
    async with admin_client(portal_app, tenant_b) as client:
        assert "No plans yet" in (await client.get("/admin/plans")).text
        assert (await client.get("/admin/plans/pro")).status_code == 404
        response = await _post(client, "/admin/plans/pro", {**PRO, "price": "0"})
        assert response.status_code == 302
        await _post(client, "/admin/plans/pro/retire", {})
    assert (await _settings(tenant_b)).get("billing") is None
    [plan] = (await _settings(tenant_a))["billing"]["plans"]
    assert plan["price"] == 2900 and plan["retired"] is False


async def test_manifest_keys_survive_an_edit(portal_app, make_tenant, admin_client):
    manifest_plan = {"id": "team", "name": "Team", "price": 4900, "currency": "EUR", "interval": "month",
                     "limits": {"seats": 20}, "features": ["Audit log"], "stripe_price_id": "price_team",
                     "description": "For growing teams.", "badge": "popular"}
    tenant = await make_tenant(settings={"billing": {"plans": [manifest_plan], "currency": "EUR",
                                                     "allowed_plan_changes": {"team": []}}})
    async with admin_client(portal_app, tenant) as client:
        form = await client.get("/admin/plans/team")
        assert 'value="For growing teams."' in form.text and 'value="listed" style="width:auto" checked' in form.text
        response = await _post(client, "/admin/plans/team", {**PRO, "name": "Team", "price": "59.00",
                                                              "description": "For growing teams.",
                                                              "switch_mode": "listed"})
        assert response.status_code == 302
    billing = (await _settings(tenant))["billing"]
    [plan] = billing["plans"]
    assert plan["badge"] == "popular" and plan["price"] == 5900 and plan["description"] == "For growing teams."
    assert billing["currency"] == "EUR" and billing["allowed_plan_changes"] == {"team": []}
