"""The members list: keyset pages, search, how members sign in, htmx fragments."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta

from core.db import utcnow
from core.security import token_hash
from core.tables import Membership, User, UserSession
from core.testing import client_for, login
from plugins.team.queries import decode_cursor, encode_cursor, member_page


async def _bulk_members(tenant, count):
    now = utcnow()
    users = [User(id=uuid.uuid4(), tenant=tenant.id, email=f"person{i:03d}@bulk.example", name=f"Person {i:03d}",
                  created_at=now) for i in range(count)]
    await User.insert(*users)
    await Membership.insert(*[Membership(id=uuid.uuid4(), tenant=tenant.id, organization=tenant.org_id, user=u.id,
                                         role="member", created_at=now) for u in users])
    return users


async def test_keyset_pages_cover_everyone_once(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    await _bulk_members(tenant, 60)
    seen, after = [], None
    while True:
        page = await member_page(tenant.id, tenant.org_id, after=after, size=25)
        assert page.total == 65
        seen.extend(row.email for row in page.rows)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 65
    # and backwards from the last page
    back = await member_page(tenant.id, tenant.org_id, before=encode_cursor(seen[-5]), size=25)
    assert [r.email for r in back.rows] == seen[-30:-5] and back.prev_cursor is not None
    assert decode_cursor("%%%") is None and decode_cursor(None) is None
    assert (await member_page(tenant.id, tenant.org_id, after="!!garbage!!")).rows[0].email == seen[0]


async def test_search_and_pager_in_the_page(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    await _bulk_members(tenant, 30)
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        page = await client.get(base)
        assert "35 members, by email" in page.text
        assert page.text.count('<tr id="member-') == 25
        next_link = re.search(r'rel="next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        second = await client.get(next_link)
        assert second.text.count('<tr id="member-') == 10 and 'rel="prev"' in second.text
        found = await client.get(base, params={"q": "PERSON 01"})
        assert "10 members match" in found.text
        assert "person010@bulk.example" in found.text and "person020@bulk.example" not in found.text
        by_email = await client.get(base, params={"q": "viewer@"})
        assert "1 members match" in by_email.text or "Viewer User" in by_email.text
        none = await client.get(base, params={"q": "zzz-nobody"})
        assert "No members match" in none.text and "show everyone" in none.text
        fragment = await client.get(base, params={"q": "person02"}, headers={"HX-Request": "true",
                                                                            "HX-Target": "member-list"})
        assert fragment.text.lstrip().startswith('<div id="member-list">') and "<html" not in fragment.text


async def test_sign_in_method_and_last_active(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    sso_user = await User.select(User.id).where(User.email == tenant.email("member")).first()
    now = utcnow()
    for method, age in (("password", 3), ("oidc", 1)):
        await UserSession.insert(UserSession(
            id=uuid.uuid4(), key_hash=token_hash(secrets.token_hex(8)), tenant=tenant.id, user=sso_user["id"],
            auth_method=method, created_at=now - timedelta(days=age), last_seen_at=now,
            expires_at=now + timedelta(days=1)))
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = await client.get(base)
    rows = {email: chunk for chunk in page.text.split('<tr id="member-')[1:]
            for email in [tenant.email(r) for r in ("owner", "member", "viewer")] if email in chunk}
    member_row = rows[tenant.email("member")]
    assert "SSO (OIDC)" in member_row
    owner_row = rows[tenant.email("owner")]
    assert "Password" in owner_row and "just now" in owner_row
    viewer_row = rows[tenant.email("viewer")]
    assert "Not signed in yet" in viewer_row and "Never" in viewer_row


async def test_htmx_role_change_returns_the_row(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    from plugins.team.tests.conftest import membership_id, post

    target = await membership_id(tenant.org_id, tenant.email("viewer"))
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        page = await client.get(base)
        assert 'src="/static/plugins/team/htmx.min.js"' in page.text
        response = await post(client, f"{base}/members/{target}/role", {"role": "billing"}, token_from=base,
                              htmx=True)
        assert response.status_code == 200
        assert response.text.lstrip().startswith(f'<tr id="member-{target}">')
        assert 'value="billing" selected' in response.text
        assert "The role was changed." in response.text and 'hx-swap-oob="true"' in response.text
        refused = await post(client, f"{base}/members/{target}/role", {"role": "owner"}, token_from=base, htmx=True)
        assert refused.status_code == 403 and "above your own" in refused.text
