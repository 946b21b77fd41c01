"""The viewer and exports: permissions, isolation, filters, cursor pages, diffs, CSV and JSON Lines."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta

import pytest

from core.context import Actor
from core.db import atomic, new_id, utcnow
from core.events import Target
from core.tables import Membership, Organization, User
from core.testing import client_for, login
from plugins.audit import service
from plugins.audit.query import Filters, Scope, page

from .conftest import audit_rows, event

ENTRY = re.compile(r'id="entry-(\d+)"')


async def add_org(tenant, slug: str, members: dict[str, str]) -> uuid.UUID:
    """A second organization in a test tenant with some of its users (email -> role)."""
    org_id = new_id()
    await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug=slug, name=slug.title(),
                                           created_at=utcnow()))
    for email, role in members.items():
        user = await User.select(User.id).where(User.email == email).first()
        await Membership.insert(Membership(id=new_id(), tenant=tenant.id, organization=org_id, user=user["id"],
                                           role=role, created_at=utcnow()))
    return org_id


async def record(tenant_id, org_id, action="team.member.role_changed", **kwargs):
    async with atomic():
        return await service.record(event(tenant_id, action, organization_id=org_id, **kwargs))


def entries(html: str) -> list[int]:
    return [int(seq) for seq in ENTRY.findall(html)]


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("billing", 403), ("member", 403),
                                         ("viewer", 403)])
async def test_audit_read_permission_matrix(app, tenant, role, status):
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email(role))
        response = await client.get(f"/o/{tenant.org_slug}/audit")
        assert response.status_code == status
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert (f'href="/o/{tenant.org_slug}/audit"' in overview.text) == (status == 200)
        assert (await client.get(f"/o/{tenant.org_slug}/audit/export.csv")).status_code == status
        assert (await client.get(f"/o/{tenant.org_slug}/audit/export.jsonl")).status_code == status


async def test_empty_log_says_what_will_appear(app, tenant):
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        response = await client.get(f"/o/{tenant.org_slug}/audit")
    assert "No activity recorded yet" in response.text


async def test_an_org_admin_sees_only_their_organization(app, tenant):
    other_org = await add_org(tenant, f"other-{tenant.slug}", {tenant.email("owner"): "owner"})
    mine = await record(tenant.id, tenant.org_id, target=Target("membership", "m1", "mine@example.com"))
    theirs = await record(tenant.id, other_org, target=Target("membership", "m2", "theirs@example.com"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("admin"))  # also writes a tenant-level sign-in row
        response = await client.get(f"/o/{tenant.org_slug}/audit")
        assert entries(response.text) == [mine["seq"]]
        assert "mine@example.com" in response.text and "theirs@example.com" not in response.text
        assert "Signed in" not in response.text
        exported = await client.get(f"/o/{tenant.org_slug}/audit/export.jsonl")
        lines = [json.loads(line) for line in exported.text.splitlines()]
        assert {line["seq"] for line in lines} >= {mine["seq"]}
        assert theirs["seq"] not in {line["seq"] for line in lines}
        assert all(line["organization"] == str(tenant.org_id) for line in lines)
        # Not a member of the other organization: it does not exist for them.
        assert (await client.get(f"/o/other-{tenant.slug}/audit")).status_code == 404
        assert (await client.get(f"/o/other-{tenant.slug}/audit/export.csv")).status_code == 404
        # A cursor cannot reach into another organization's rows.
        paged = await client.get(f"/o/{tenant.org_slug}/audit", params={"before": theirs["seq"] + 1})
        assert theirs["seq"] not in entries(paged.text)


async def test_cross_tenant_reads_get_404(app, tenant, make_tenant):
    other = await make_tenant(plugins=["audit"])
    secret = await record(other.id, other.org_id, target=Target("membership", "x", "other-tenant@example.com"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        assert (await client.get(f"/o/{other.org_slug}/audit")).status_code == 404
        assert (await client.get(f"/o/{other.org_slug}/audit/export.jsonl")).status_code == 404
        own = await client.get(f"/o/{tenant.org_slug}/audit", params={"before": secret["seq"] + 1})
        assert "other-tenant@example.com" not in own.text
    await User.update({User.is_tenant_admin: True}).where(User.email == tenant.email("owner"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        wide = await client.get("/admin/audit", params={"q": "other-tenant"})
        assert wide.status_code == 200 and "other-tenant@example.com" not in wide.text
        export = await client.get("/admin/audit/export.jsonl")
        assert "other-tenant@example.com" not in export.text
        assert all(json.loads(line)["id"] != secret["id"] for line in export.text.splitlines())


async def test_tenant_admins_see_the_tenant_wide_log(app, tenant):
    other_org = await add_org(tenant, f"second-{tenant.slug}", {tenant.email("owner"): "owner"})
    await record(tenant.id, tenant.org_id, target=Target("membership", "a", "in-first@example.com"))
    await record(tenant.id, other_org, target=Target("membership", "b", "in-second@example.com"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        assert (await client.get("/admin/audit")).status_code == 403  # an org owner is not a tenant admin
    await User.update({User.is_tenant_admin: True}).where(User.email == tenant.email("owner"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        response = await client.get("/admin/audit")
        assert response.status_code == 200
        assert "in-first@example.com" in response.text and "in-second@example.com" in response.text
        assert "Signed in" in response.text and "Portal-wide" in response.text
        only_second = await client.get("/admin/audit", params={"organization": str(other_org)})
        assert "in-second@example.com" in only_second.text and "in-first@example.com" not in only_second.text
        tenant_level = await client.get("/admin/audit", params={"organization": "none"})
        assert "Signed in" in tenant_level.text and "in-first@example.com" not in tenant_level.text
        csv_export = await client.get("/admin/audit/export.csv", params={"organization": "none"})
        assert csv_export.status_code == 200
        actions = {row["action"] for row in csv.DictReader(io.StringIO(csv_export.text))}
        assert "auth.login.succeeded" in actions and "team.member.role_changed" not in actions
    async with client_for(app, tenant.host) as anonymous:
        assert (await anonymous.get("/admin/audit")).status_code in (302, 303, 401)


async def test_filters(app, tenant):
    now = utcnow()
    alice = Actor("user", "u-alice", "alice@example.com", "password")
    bob = Actor("api_key", "k-bob", "Bob's CI key", None)
    a = await record(tenant.id, tenant.org_id, "team.member.removed", actor=alice,
                     target=Target("membership", "m-7", "carol@example.com"), time=now - timedelta(days=10),
                     before={"role": "admin"})
    b = await record(tenant.id, tenant.org_id, "api-keys.key.created", actor=bob,
                     target=Target("api_key", "key-1", "Deploy key"), after={"name": "Deploy 100%_key"})
    c = await record(tenant.id, tenant.org_id, "team.member.role_changed", actor=alice,
                     target=Target("membership", "m-8", "dave@example.com"), before={"role": "member"},
                     after={"role": "billing"}, ip="192.0.2.44")
    scope = Scope(tenant.id, tenant.org_id)

    async def seqs(**params):
        return [r["seq"] for r in (await page(scope, Filters.from_params(params))).rows]

    assert await seqs() == [c["seq"], b["seq"], a["seq"]]
    assert await seqs(actor="ALICE@") == [c["seq"], a["seq"]]
    assert await seqs(actor="k-bob") == [b["seq"]]
    assert await seqs(action="team.member") == [c["seq"], a["seq"]]
    assert await seqs(action="member") == []  # a prefix, not a substring
    assert await seqs(target="dave") == [c["seq"]]
    assert await seqs(target="api_key") == [b["seq"]]
    assert await seqs(target="m-7") == [a["seq"]]
    assert await seqs(since=(now - timedelta(days=1)).date().isoformat()) == [c["seq"], b["seq"]]
    assert await seqs(until=(now - timedelta(days=5)).date().isoformat()) == [a["seq"]]
    assert await seqs(q="192.0.2.44") == [c["seq"]]
    assert await seqs(q="billing") == [c["seq"]]
    assert await seqs(q="100%_") == [b["seq"]]  # LIKE wildcards in the search are literal
    assert await seqs(q="%") == [b["seq"]]
    assert await seqs(actor="alice", action="team.member.removed") == [a["seq"]]

    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        response = await client.get(f"/o/{tenant.org_slug}/audit", params={"actor": "alice", "q": "dave"})
        assert entries(response.text) == [c["seq"]]
        assert 'value="alice"' in response.text and "Clear" in response.text
        assert f"/o/{tenant.org_slug}/audit/export.csv?actor=alice&amp;q=dave" in response.text
        none = await client.get(f"/o/{tenant.org_slug}/audit", params={"actor": "nobody"})
        assert "No entries match these filters" in none.text
        bad = await client.get(f"/o/{tenant.org_slug}/audit", params={"since": "31/01/2025"})
        assert bad.status_code == 400 and "Enter a date like 2025-01-31." in bad.text
        backwards = await client.get(f"/o/{tenant.org_slug}/audit", params={"since": "2025-02-01",
                                                                             "until": "2025-01-01"})
        assert backwards.status_code == 400 and "before the start date" in backwards.text


async def test_cursor_pages_walk_the_whole_log(app, tenant):
    async with atomic():
        for i in range(120):
            await service.record(event(tenant.id, f"test.step.n{i}", organization_id=tenant.org_id))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        first = await client.get(f"/o/{tenant.org_slug}/audit")
        assert entries(first.text) == list(range(120, 70, -1))
        assert "Newer" not in first.text
        older = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
        second = await client.get(older)
        assert entries(second.text) == list(range(70, 20, -1))
        third = await client.get(re.search(r'href="([^"]+)" rel="next"', second.text).group(1).replace("&amp;", "&"))
        assert entries(third.text) == list(range(20, 0, -1))
        assert 'rel="next"' not in third.text
        back = await client.get(re.search(r'href="([^"]+)" rel="prev"', third.text).group(1).replace("&amp;", "&"))
        assert entries(back.text) == list(range(70, 20, -1))
        back_to_top = await client.get(re.search(r'href="([^"]+)" rel="prev"', back.text).group(1).replace("&amp;",
                                                                                                            "&"))
        assert entries(back_to_top.text) == list(range(120, 70, -1))
        garbage = await client.get(f"/o/{tenant.org_slug}/audit", params={"before": "drop table"})
        assert garbage.status_code == 200 and entries(garbage.text) == list(range(120, 70, -1))


async def test_each_row_expands_to_a_readable_diff(app, tenant):
    await record(tenant.id, tenant.org_id, "sso.connection.updated",
                 before={"issuer": "https://old.idp", "client_secret": "old-S3CRET-value"},
                 after={"issuer": "https://new.idp", "client_secret": "new-S3CRET-value", "enabled": True})
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        html = (await client.get(f"/o/{tenant.org_slug}/audit")).text
    assert "<details>" in html and "3 changed fields" in html
    assert "<del>https://old.idp</del>" in html and "<ins>https://new.idp</ins>" in html
    assert "S3CRET" not in html and ">hidden<" in html
    assert "<ins>true</ins>" in html and "client secret" in html
    assert "203.0.113.9" in html  # the address is in the details


async def test_exports_stream_the_filtered_view(app, tenant):
    async with atomic():
        for i in range(1205):  # more than one export batch
            await service.record(event(tenant.id, "test.bulk.created" if i % 2 else "test.bulk.deleted",
                                       organization_id=tenant.org_id, after={"n": i, "formula": "=1+1"}))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        response = await client.get(f"/o/{tenant.org_slug}/audit/export.csv", params={"action": "test.bulk.created"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        assert f"audit-{tenant.org_slug}-" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 602 and {r["action"] for r in rows} == {"test.bulk.created"}
        assert [int(r["seq"]) for r in rows] == sorted((int(r["seq"]) for r in rows), reverse=True)
        assert json.loads(rows[0]["after"])["formula"] == "=1+1"  # a JSON cell never starts with "="
        assert rows[0]["actor_display"] == "someone@example.com" and rows[0]["hash"]

        jsonl = await client.get(f"/o/{tenant.org_slug}/audit/export.jsonl")
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        records = [json.loads(line) for line in jsonl.text.splitlines()]
        # Every row of the organization, including the record of the CSV export and of this one.
        assert len(records) == 1205 + 2
        assert records[0]["action"] == "audit.log.exported" and records[0]["data"]["format"] == "jsonl"
        assert records[1]["data"] == {"format": "csv", "filters": {"action": "test.bulk.created"}}
        assert records[-1]["seq"] == 1 and records[-1]["after"] == {"n": 0, "formula": "=1+1"}
    assert len(await audit_rows(tenant.id)) >= 1205 + 2


async def test_csv_cells_cannot_become_formulas(app, tenant):
    await record(tenant.id, tenant.org_id, target=Target("membership", "=HYPERLINK(\"x\")", "@SUM(A1)"))
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        response = await client.get(f"/o/{tenant.org_slug}/audit/export.csv", params={"target": "@SUM"})
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["target_display"] == "'@SUM(A1)" and row["target_id"] == "'=HYPERLINK(\"x\")"
