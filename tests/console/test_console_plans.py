"""Plans editor: writes tenant.settings["billing"]["plans"] in the shape the billing plugin reads."""

from __future__ import annotations

from core.db import load_json
from core.tables import Tenant
from core.testing import csrf_token
from tests.console.conftest import make_tenant_admin


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


# -- unit prices (per usage metric, over the plan's limit) -----------------------------------------------------

PRICED_PLAN = {"id": "team", "name": "Team", "price": 4900, "currency": "EUR", "interval": "month",
               "limits": {"seats": 20, "api_calls": 100000, "emails_sent": 5000}, "features": ["Audit log"],
               "stripe_price_id": "", "description": "", "badge": "popular",
               "unit_prices": {"api_calls": 0.0005, "seats": 9.0}}
TEAM_FORM = {"name": "Team", "price": "49.00", "currency": "EUR", "interval": "month",
             "limits": "seats = 20\napi_calls = 100000\nemails_sent = 5000", "features": "Audit log",
             "stripe_price_id": "", "description": "", "unit_prices_form": "1"}
SECTIONS = ["billing", "usage", "team", "api-keys", "recorder"]


async def _priced_tenant(make_tenant, unit_prices=None):
    """A tenant selling ``team`` (with unit prices), metering ``emails_sent``, its organization subscribed."""
    import uuid
    from datetime import timedelta

    from core.db import utcnow
    from plugins.billing.tables import Subscription

    plan = {**PRICED_PLAN, "unit_prices": unit_prices or PRICED_PLAN["unit_prices"]}
    tenant = await make_tenant(plugins=SECTIONS, settings={
        "billing": {"provider": "local", "currency": "EUR", "plans": [plan]},
        "usage": {"metrics": {"emails_sent": {"label": "Emails sent", "unit": "emails"}}}})
    now = utcnow()
    await Subscription.insert(Subscription(
        id=uuid.uuid4(), tenant=tenant.id, organization=tenant.org_id, plan_id="team", status="active",
        current_period_start=now - timedelta(days=3), current_period_end=now + timedelta(days=27),
        created_at=now, updated_at=now))
    return tenant


async def _summary(app, tenant):
    """What ``portal_billing_summaries`` (the usage page's projected bill) says the organization pays."""
    from core.context import CurrentOrganization, system_context
    from core.tables import Organization
    from core.testing import refresh_tenants

    await refresh_tenants(app)
    runtime = app.state.portal
    record = runtime.directory.get(tenant.id)
    org = await Organization.select().where(Organization.id == tenant.org_id).first()
    organization = CurrentOrganization(org["id"], org["slug"], org["name"])
    ctx = system_context(runtime, record, organization=organization)
    summaries = await runtime.plugins.first("portal_billing_summaries", tenant=record, ctx=ctx, orgs=[organization])
    return summaries[organization.id]


def _rows(*rows):
    """Form fields of unit-price rows: ``(metric, price)`` or ``(metric, price, "remove")``."""
    data = {}
    for index, (metric, price, *remove) in enumerate(rows):
        data |= {f"unit_prices-{index}-metric": metric, f"unit_prices-{index}-price": price}
        if remove:
            data[f"unit_prices-{index}-remove"] = "1"
    return data


async def _console_owned(tenant):
    return load_json((await Tenant.select(Tenant.console_owned).where(Tenant.id == tenant.id).first())
                     ["console_owned"]) or []


async def test_unit_prices_edit_add_remove_reach_the_billing_summary(portal_app_factory, make_tenant, admin_client,
                                                                     recorder):
    from decimal import Decimal

    from core.settings import BUILTIN_PLUGINS

    app = await portal_app_factory(recorder, builtin_plugins=BUILTIN_PLUGINS)  # billing, usage, team, API keys
    tenant = await _priced_tenant(make_tenant)
    assert (await _summary(app, tenant)).unit_prices == {"api_calls": Decimal("0.0005"), "seats": Decimal("9.0")}
    async with admin_client(app, tenant) as client:
        form = await client.get("/admin/plans/team")
        assert form.status_code == 200
        row = form.text.split('data-testid="unit-price-api_calls"')[1].split("</tr>")[0]
        assert 'name="unit_prices-0-metric" value="api_calls"' in row and 'value="0.0005"' in row
        assert 'name="unit_prices-1-metric" value="seats"' in form.text and 'name="unit_prices-1-price" value="9"' \
            in form.text
        assert 'name="unit_prices-2-metric" value=""' in form.text  # an empty row to add one
        choices = form.text.split('<datalist id="metric-choices">')[1].split("</datalist>")[0]
        for key in ("api_calls", "api_keys", "emails_sent", "seats"):  # what billing, usage, team, apikeys meter
            assert f'<option value="{key}">' in choices, key
        assert '<option value="emails_sent">Emails sent</option>' in choices

        # change one, remove one (ticked), add one (an empty row), and a blank row is ignored
        response = await _post(client, "/admin/plans/team", {**TEAM_FORM, **_rows(
            ("api_calls", "0.0004"), ("seats", "9", "remove"), ("emails_sent", "0,000125"), ("", ""))})
        assert response.status_code == 302 and response.headers["location"] == "/admin/plans?saved=plan-updated"
        [plan] = (await _settings(tenant))["billing"]["plans"]
        assert plan["unit_prices"] == {"api_calls": 0.0004, "emails_sent": 0.000125}
        assert plan["badge"] == "popular" and plan["price"] == 4900  # the rest of the plan as it was
        assert (await _summary(app, tenant)).unit_prices == {"api_calls": Decimal("0.0004"),
                                                             "emails_sent": Decimal("0.000125")}
        listing = (await client.get("/admin/plans")).text.split('data-testid="unit-prices-team"')[1]
        assert "api_calls 0.0004 EUR" in listing and "emails_sent 0.000125 EUR" in listing

        # the event and the console's claim on the billing settings, as for every plan edit
        updated = recorder.of("console.plan.updated")[-1]
        assert updated.before["unit_prices"] == {"api_calls": 0.0005, "seats": 9.0}
        assert updated.after["unit_prices"] == {"api_calls": 0.0004, "emails_sent": 0.000125}
        assert updated.target.id == "team" and "settings.billing.plans" in await _console_owned(tenant)

        # a post without the unit-price fields (not from this form) leaves them alone
        bare = {k: v for k, v in TEAM_FORM.items() if k != "unit_prices_form"}
        assert (await _post(client, "/admin/plans/team", {**bare, "name": "Team 2"})).status_code == 302
        [plan] = (await _settings(tenant))["billing"]["plans"]
        assert plan["name"] == "Team 2" and plan["unit_prices"] == {"api_calls": 0.0004, "emails_sent": 0.000125}

        # clearing every row removes them all; whole prices are stored as whole numbers
        response = await _post(client, "/admin/plans/team", {**TEAM_FORM, **_rows(("", ""), ("", ""))})
        assert response.status_code == 302
        assert "unit_prices" not in (await _settings(tenant))["billing"]["plans"][0]
        assert (await _summary(app, tenant)).unit_prices == {}
        assert "unit-prices-team" not in (await client.get("/admin/plans")).text
        response = await _post(client, "/admin/plans/team", {**TEAM_FORM, **_rows(("seats", "12.000"))})
        assert response.status_code == 302
        assert (await _settings(tenant))["billing"]["plans"][0]["unit_prices"] == {"seats": 12}
        assert (await _summary(app, tenant)).unit_prices == {"seats": Decimal("12")}

        # a new plan can carry unit prices from the start
        response = await _post(client, "/admin/plans", {**PRO, "unit_prices_form": "1",
                                                          **_rows(("api_calls", "0.001"))})
        assert response.status_code == 302
        assert (await _settings(tenant))["billing"]["plans"][1]["unit_prices"] == {"api_calls": 0.001}
    types = [e.type for e in recorder.of("console.plan.")]
    assert types == ["console.plan.updated"] * 4 + ["console.plan.created"]


async def test_invalid_unit_prices_are_refused_and_nothing_is_saved(portal_app_factory, make_tenant, admin_client,
                                                                   recorder):
    app = await portal_app_factory(recorder)
    tenant = await _priced_tenant(make_tenant)
    before = await _settings(tenant)
    version = (await Tenant.select(Tenant.version).where(Tenant.id == tenant.id).first())["version"]
    async with admin_client(app, tenant) as client:
        response = await _post(client, "/admin/plans/team", {**TEAM_FORM, "name": "Renamed", **_rows(
            ("api_calls", "-1"), ("seats", "0.0000001"), ("Bad Key!", "1"), ("emails_sent", ""),
            ("", "2"), ("api_calls", "0.1"), ("storage_gb", "1e-3"), ("transfer_gb", "NaN"),
            ("projects", "abc", "remove"))})
        assert response.status_code == 400
        assert "The plan was not saved" in response.text
        expected = {
            "unit_prices-0-price": "cannot be negative", "unit_prices-1-price": "at most 6 decimals",
            "unit_prices-2-metric": "Use a metric key", "unit_prices-3-price": "Enter a price",
            "unit_prices-4-metric": "Choose the usage metric", "unit_prices-5-metric": "api_calls already has a price",
            "unit_prices-6-price": "Enter a number", "unit_prices-7-price": "Enter a number",
        }
        for field, message in expected.items():  # each message next to its own field
            error = response.text.split(f'<p class="field-error" id="{field}-error">')[1].split("</p>")[0]
            assert message in error, (field, error)
            assert f'id="{field}" ' in response.text and f'aria-describedby="{field}-error"' in response.text
        # what was typed is shown again, the removed row still ticked
        assert 'value="Renamed"' in response.text and 'value="0.0000001"' in response.text
        assert 'name="unit_prices-8-remove" value="1" style="width:auto" checked' in response.text

        too_large = await _post(client, "/admin/plans/team", {**TEAM_FORM, **_rows(("seats", "1000000.01"))})
        assert too_large.status_code == 400 and "too large" in too_large.text
    assert await _settings(tenant) == before  # no partial write: not the name, not the valid rows
    assert (await Tenant.select(Tenant.version).where(Tenant.id == tenant.id).first())["version"] == version
    assert recorder.of("console.plan.") == []


async def test_a_manifests_finer_unit_price_survives_an_edit(portal_app, make_tenant, admin_client):
    from decimal import Decimal

    tenant = await _priced_tenant(make_tenant, unit_prices={"api_calls": 0.00000025})
    async with admin_client(portal_app, tenant) as client:
        form = await client.get("/admin/plans/team")
        assert 'value="0.00000025"' in form.text  # never 2.5E-7
        response = await _post(client, "/admin/plans/team", {**TEAM_FORM, "name": "Team+",
                                                              **_rows(("api_calls", "0.00000025"))})
        assert response.status_code == 302
        [plan] = (await _settings(tenant))["billing"]["plans"]
        assert plan["name"] == "Team+" and plan["unit_prices"] == {"api_calls": 0.00000025}
        refused = await _post(client, "/admin/plans/team", {**TEAM_FORM, **_rows(("api_calls", "0.00000035"))})
        assert refused.status_code == 400 and "at most 6 decimals" in refused.text
    assert Decimal(str(plan["unit_prices"]["api_calls"])) == Decimal("0.00000025")


async def test_unit_prices_need_a_tenant_admin_and_a_csrf_token(portal_app, make_tenant):
    from core.testing import client_for, csrf_token, login

    tenant = await _priced_tenant(make_tenant)
    before = await _settings(tenant)
    change = {**TEAM_FORM, **_rows(("api_calls", "9"))}
    async with client_for(portal_app, tenant.host) as client:  # an organization owner is no tenant admin
        assert (await login(client, tenant.email("owner"))).status_code == 302
        assert (await client.get("/admin/plans/team")).status_code == 403
        token = await csrf_token(client, "/account")
        response = await client.post("/admin/plans/team", data={"_csrf_token": token, **change})
        assert response.status_code == 403 and "administrators of this portal" in response.text
    await make_tenant_admin(tenant, "billing")
    async with client_for(portal_app, tenant.host) as client:  # a tenant admin, but a forged or missing token
        assert (await login(client, tenant.email("billing"))).status_code == 302
        assert (await client.post("/admin/plans/team", data=change)).status_code == 403
        assert (await client.post("/admin/plans/team", data={"_csrf_token": "forged", **change})).status_code == 403
    assert await _settings(tenant) == before
