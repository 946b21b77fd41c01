"""Recording: one row per change, in the change's transaction; secrets redacted; the table is append-only."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter

import pytest

from core.db import atomic, load_json
from core.events import Target, emit
from core.tables import User
from core.testing import PASSWORD, client_for, form_post, login
from plugins.audit import service
from plugins.audit.chain import verify
from plugins.audit.service import REDACTED, is_sensitive, redact
from plugins.audit.tables import AuditEvent

from .conftest import ProbeError, audit_rows, event, tenant_ctx

POSTGRES = os.environ.get("PORTAL_DATABASE_URL", "").startswith("postgres")


async def test_scripted_scenario_records_exactly_one_row_per_change(app, tenant):
    owner = await User.select().where(User.email == tenant.email("owner")).first()
    async with client_for(app, tenant.host, client_ip="198.51.100.7") as client:
        assert (await login(client, tenant.email("owner"), "wrong-password")).status_code == 400
        assert (await login(client, tenant.email("owner"))).status_code == 302
        assert (await form_post(client, "/account/profile", {"name": "Olga Owner", "email": tenant.email("owner")},
                                token_from="/account")).status_code == 302
        new_password = "another-long-passphrase"
        assert (await form_post(client, "/account/password", {
            "current_password": PASSWORD, "new_password": new_password, "confirm_password": new_password,
        }, token_from="/account")).status_code == 302
        renamed = await client.post("/probe/rename", data={"user": str(owner["id"]), "name": "Olga O."})
        assert renamed.status_code == 201
        assert (await form_post(client, "/logout", {}, token_from="/account")).status_code == 302

    rows = await audit_rows(tenant.id)
    assert Counter(r["action"] for r in rows) == Counter({
        "auth.login.failed": 1, "auth.login.succeeded": 1, "account.profile.updated": 1,
        "account.password.changed": 1, "probe.user.renamed": 1, "auth.logout": 1,
    })
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    by_action = {r["action"]: r for r in rows}
    failed = by_action["auth.login.failed"]
    assert failed["outcome"] == "failure" and failed["actor_type"] == "anonymous"
    assert failed["target_display"] == tenant.email("owner") and failed["organization"] is None
    assert load_json(failed["data"]) == {"reason": "bad_credentials"}
    profile = by_action["account.profile.updated"]
    assert profile["actor_id"] == str(owner["id"]) and profile["actor_auth_method"] == "password"
    assert profile["ip"] == "198.51.100.7" and profile["request_id"]
    assert load_json(profile["before"]) == {"name": "Owner User"}
    assert load_json(profile["after"]) == {"name": "Olga Owner"}
    renamed = by_action["probe.user.renamed"]
    assert load_json(renamed["after"]) == {"name": "Olga O.", "api_token": REDACTED}
    assert (await verify(tenant.id)).ok


async def test_a_rolled_back_change_leaves_no_row(app, tenant):
    owner = await User.select().where(User.email == tenant.email("owner")).first()
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        before = len(await audit_rows(tenant.id))
        response = await client.post("/probe/rename", data={"user": str(owner["id"]), "name": "Never", "fail": "1"})
        assert response.status_code == 500
    assert len(await audit_rows(tenant.id)) == before
    assert (await User.select(User.name).where(User.id == owner["id"]).first())["name"] == "Owner User"

    ctx = await tenant_ctx(app, tenant)
    with pytest.raises(ProbeError):
        async with atomic():
            await emit(ctx, "test.thing.created", target=Target("thing", "1", "One"))
            raise ProbeError("after the emit")
    assert len(await audit_rows(tenant.id)) == before


async def test_a_failing_audit_insert_fails_the_change(app, tenant, monkeypatch):
    owner = await User.select().where(User.email == tenant.email("owner")).first()
    ctx = await tenant_ctx(app, tenant)

    async def broken_insert(row):
        raise RuntimeError("audit storage unavailable")

    monkeypatch.setattr(service, "insert_row", broken_insert)
    with pytest.raises(RuntimeError, match="audit storage unavailable"):
        async with atomic():
            await User.update({User.name: "Changed"}).where(User.id == owner["id"])
            await emit(ctx, "test.user.renamed", target=Target("user", str(owner["id"]), "Changed"))
    monkeypatch.undo()
    assert (await User.select(User.name).where(User.id == owner["id"]).first())["name"] == "Owner User"

    # A database-level failure too: the same event id twice violates the primary key and undoes the change.
    same = event(tenant.id)
    with pytest.raises(Exception):  # noqa: B017 - driver-specific integrity error
        async with atomic():
            await User.update({User.name: "Changed again"}).where(User.id == owner["id"])
            await service.record(same)
            await service.record(same)
    assert (await User.select(User.name).where(User.id == owner["id"]).first())["name"] == "Owner User"
    assert await audit_rows(tenant.id) == []


async def test_the_hook_contract_records_through_the_plugin_host(app, tenant):
    runtime = app.state.portal
    await runtime.directory.refresh()
    record = runtime.directory.get(tenant.id)
    ev = event(tenant.id, "team.member.removed", organization_id=tenant.org_id,
               before={"role": "admin", "password": "x"}, after=None)
    async with atomic():
        results = await runtime.plugins.call("portal_event", tenant=record, strict=True, event=ev)
    assert results == []  # the hook returns nothing; its effect is the row
    [row] = await audit_rows(tenant.id)
    assert row["id"] == ev.id and row["organization"] == tenant.org_id and row["action"] == "team.member.removed"
    assert load_json(row["before"]) == {"role": "admin", "password": REDACTED} and row["after"] is None


async def test_a_tenant_without_the_plugin_records_nothing(app, make_tenant):
    other = await make_tenant(plugins=["audit-probe"])
    async with client_for(app, other.host) as client:
        assert (await login(client, other.email("owner"))).status_code == 302
    assert await audit_rows(other.id) == []


def test_secrets_are_redacted_at_any_depth():
    assert is_sensitive("password") and is_sensitive("client_secret") and is_sensitive("totpSeed")
    assert is_sensitive("recovery_codes") and is_sensitive("stripe_api_key") and is_sensitive("token_hash")
    assert not is_sensitive("key_prefix") and not is_sensitive("totp_enabled") and not is_sensitive("name")
    assert not is_sensitive("monkey") and not is_sensitive("password_changed_at")
    value = {"name": "Ada", "password": "hunter2", "sso": {"client_secret": "s3cr3t", "issuer": "https://idp"},
             "keys": [{"key": "k1", "key_id": "kid"}], "totp_seed": None}
    assert redact(value) == {"name": "Ada", "password": REDACTED, "sso": {"client_secret": REDACTED,
                             "issuer": "https://idp"}, "keys": [{"key": REDACTED, "key_id": "kid"}],
                             "totp_seed": None}


async def test_concurrent_writers_never_fork_the_chain(app, tenant):
    async def write(i: int) -> None:
        async with atomic():
            await service.record(event(tenant.id, f"test.concurrent.{i}"))

    await asyncio.gather(*(write(i) for i in range(12)))
    rows = await audit_rows(tenant.id)
    assert [r["seq"] for r in rows] == list(range(1, 13))
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 12))
    assert (await verify(tenant.id)).ok


async def test_the_table_rejects_update_and_delete(app, tenant):
    async with atomic():
        await service.record(event(tenant.id))
    with pytest.raises(Exception, match="append-only"):
        await AuditEvent.update({AuditEvent.action: "forged"}).where(AuditEvent.tenant == tenant.id)
    with pytest.raises(Exception, match="append-only"):
        await AuditEvent.delete().where(AuditEvent.tenant == tenant.id)
    with pytest.raises(Exception, match="append-only"):
        await AuditEvent.raw("UPDATE audit_event SET hash = 'x' WHERE tenant = {}", tenant.id)
    [row] = await audit_rows(tenant.id)
    assert row["action"] == "test.thing.changed"


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL only (run with --portal-db=postgres)")
async def test_postgres_rejects_truncate_and_deletes_outside_the_prune_gate(app, tenant):
    async with atomic():
        await service.record(event(tenant.id))
    with pytest.raises(Exception, match="append-only: TRUNCATE rejected"):
        await AuditEvent.raw("TRUNCATE audit_event")
    with pytest.raises(Exception, match="append-only: DELETE rejected"):
        await AuditEvent.raw("DELETE FROM audit_event WHERE tenant = {}", tenant.id)
    with pytest.raises(Exception, match="append-only: UPDATE rejected"):
        async with atomic():  # the prune gate opens DELETE only, never UPDATE
            await AuditEvent.raw("SET LOCAL portal.audit_prune = 'on'")
            await AuditEvent.raw("UPDATE audit_event SET action = 'x' WHERE tenant = {}", tenant.id)
    # A session-level SET outside the prune transaction does not leak to other transactions' rows...
    async with atomic():
        await AuditEvent.raw("SET LOCAL portal.audit_prune = 'on'")
    with pytest.raises(Exception, match="append-only"):
        await AuditEvent.raw("DELETE FROM audit_event WHERE tenant = {}", tenant.id)
    assert len(await audit_rows(tenant.id)) == 1


@pytest.mark.skipif(POSTGRES, reason="SQLite only")
async def test_sqlite_gate_is_closed_outside_prune(app, tenant):
    async with atomic():
        await service.record(event(tenant.id))
    gate = await AuditEvent.raw("SELECT open FROM audit_prune_gate")
    assert all(row["open"] == 0 for row in gate)
    with pytest.raises(Exception, match="append-only: DELETE rejected"):
        await AuditEvent.raw("DELETE FROM audit_event WHERE tenant = {}", tenant.id)


async def test_stored_json_is_the_hashed_text(app, tenant):
    ev = event(tenant.id, before={"b": 1, "a": [1, 2]}, after={"when": uuid.UUID(int=1), "ü": "ö"})
    async with atomic():
        await service.record(ev)
    [row] = await AuditEvent.raw("SELECT before, after, hash FROM audit_event WHERE tenant = {}", tenant.id)
    assert row["before"] == '{"a":[1,2],"b":1}'
    assert json.loads(row["after"]) == {"when": str(uuid.UUID(int=1)), "ü": "ö"}
    assert (await verify(tenant.id)).ok


async def test_demo_seed_is_realistic_and_idempotent(app, tenant):
    from core.context import CurrentOrganization
    from core.tables import Organization

    row = await Organization.select().where(Organization.id == tenant.org_id).first()
    org = CurrentOrganization(row["id"], row["slug"], row["name"])
    ctx = await tenant_ctx(app, tenant, CurrentOrganization(org["id"], org["slug"], org["name"]))
    await app.state.portal.plugins.call("portal_seed_demo", tenant=ctx.tenant, strict=True, ctx=ctx, org=org)
    rows = await audit_rows(tenant.id)
    assert len(rows) >= 5 and all(r["organization"] == tenant.org_id for r in rows)
    assert {"team.invitation.sent", "team.member.role_changed", "api-keys.key.created"} <= {r["action"] for r in rows}
    key = next(r for r in rows if r["action"] == "api-keys.key.created")
    assert load_json(key["after"])["secret"] == REDACTED
    await app.state.portal.plugins.call("portal_seed_demo", tenant=ctx.tenant, strict=True, ctx=ctx, org=org)
    assert len(await audit_rows(tenant.id)) == len(rows)
    assert (await verify(tenant.id)).ok
