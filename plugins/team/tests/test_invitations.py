"""Invitation lifecycle: invite (one or several), the branded mail and its link, resend, revoke, accept."""

from __future__ import annotations

from datetime import timedelta

from core.db import as_utc, utcnow
from core.tables import User, UserSession
from core.testing import client_for, login
from plugins.team.tables import Invitation
from plugins.team.tests.conftest import add_member, invite_link, mails_to, post, role_of, second_org


async def test_invite_mail_is_branded_and_links_to_the_primary_domain(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"], extra_hosts=["alias.example.test"],
                               branding={"product_name": "Rocket Portal", "sender_name": "Rocket Team",
                                         "sender_email": "team@rocket.example"})
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, "alias.example.test") as client:  # request arrives on the alias host
        await login(client, tenant.email("admin"))
        response = await post(client, f"{base}/invitations", {"emails": "new.person@example.com", "role": "member"},
                              token_from=base)
        assert response.status_code == 302
        assert response.headers["location"] == f"{base}?done=invited"
    link_base, token = await invite_link(portal_app, tenant.id, "new.person@example.com")
    assert link_base == f"http://{tenant.host}"  # the stored primary domain, never the request's Host
    mail = (await mails_to(tenant.id, "new.person@example.com"))[-1]
    assert mail["sender"] == "Rocket Team <team@rocket.example>"
    assert "Rocket Portal" in mail["subject"] and f"Org {tenant.slug}" in mail["subject"]
    assert "Admin User invited you" in mail["text"] and "as Member" in mail["text"]
    assert f"{link_base}/invite/{token}" in mail["html"]
    assert "alias.example.test" not in mail["text"] + mail["html"]
    row = await Invitation.select().where(
        Invitation.email == "new.person@example.com", Invitation.tenant == tenant.id).first()
    assert token not in str(row.values()) and len(row["token_hash"]) == 64  # only the hash is stored
    assert as_utc(row["expires_at"]) - utcnow() > timedelta(days=6, hours=23)


async def test_expiry_days_come_from_tenant_settings(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"], settings={"team": {"invitation_days": 2}})
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, f"{base}/invitations", {"emails": "x@example.com", "role": "viewer"}, token_from=base)
    row = await Invitation.select().where(Invitation.tenant == tenant.id).first()
    left = as_utc(row["expires_at"]) - utcnow()
    assert timedelta(days=1, hours=23) < left <= timedelta(days=2)
    _, _token = await invite_link(portal_app, tenant.id, "x@example.com")
    assert "expires in 2 days" in (await mails_to(tenant.id, "x@example.com"))[-1]["text"]


async def test_invite_several_at_once_and_new_person_accepts(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as admin:
        await login(admin, tenant.email("admin"))
        response = await post(admin, f"{base}/invitations",
                              {"emails": "Ann <ANN@example.com>, bob@example.com\ncid@example.com; bob@example.com",
                               "role": "billing"}, token_from=base)
        assert response.status_code == 302
        page = await admin.get(f"{base}?done=invited_many")
        assert "Invitations sent." in page.text
        for email in ("ann@example.com", "bob@example.com", "cid@example.com"):
            assert email in page.text
    assert await Invitation.count().where(Invitation.tenant == tenant.id) == 3
    _, token = await invite_link(portal_app, tenant.id, "ann@example.com")
    async with client_for(portal_app, tenant.host) as newcomer:
        page = await newcomer.get(f"/invite/{token}")
        assert page.status_code == 200
        assert "Create account and join" in page.text and "as Billing" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        bad = await post(newcomer, f"/invite/{token}", {"name": "Ann", "password": "short",
                                                       "confirm_password": "short"}, token_from=f"/invite/{token}")
        assert bad.status_code == 400 and "at least 10 characters" in bad.text
        assert not await User.exists().where(User.tenant == tenant.id, User.email == "ann@example.com")
        done = await post(newcomer, f"/invite/{token}", {"name": "Ann Example", "password": "a-long-password",
                                                        "confirm_password": "a-long-password"},
                          token_from=f"/invite/{token}")
        assert done.status_code == 302 and done.headers["location"] == f"/o/{tenant.org_slug}/"
        assert "portal_session" in done.headers.get("set-cookie", "")
        inside = await newcomer.get(f"/o/{tenant.org_slug}/")
        assert inside.status_code == 200 and "Ann Example" in inside.text
    assert await role_of(tenant.org_id, "ann@example.com") == "billing"
    user = await User.select().where(User.tenant == tenant.id, User.email == "ann@example.com").first()
    assert user["name"] == "Ann Example" and user["password_hash"].startswith("$argon2")
    assert await UserSession.count().where(UserSession.user == user["id"], UserSession.revoked_at.is_null()) == 1
    row = await Invitation.select().where(Invitation.email == "ann@example.com", Invitation.tenant == tenant.id).first()
    assert row["accepted_at"] is not None and row["accepted_by"] == user["id"]
    # the new member signs in with the password they chose
    async with client_for(portal_app, tenant.host) as again:
        assert (await login(again, "ann@example.com", "a-long-password")).status_code == 302


async def test_existing_user_joins_with_one_click(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    other = await second_org(tenant, "sister-co")
    await add_member(tenant, tenant.email("owner"), "owner", org_id=other)
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, "/o/sister-co/team/invitations", {"emails": tenant.email("viewer"), "role": "member"},
                   token_from="/o/sister-co/team")
    _, token = await invite_link(portal_app, tenant.id, tenant.email("viewer"))
    async with client_for(portal_app, tenant.host) as viewer:
        anonymous = await viewer.get(f"/invite/{token}")
        assert "Sign in to accept" in anonymous.text
        assert f'/login?next=/invite/{token}' in anonymous.text
        await login(viewer, tenant.email("viewer"))
        page = await viewer.get(f"/invite/{token}")
        assert "Join Other Org" in page.text and 'name="password"' not in page.text
        response = await post(viewer, f"/invite/{token}", token_from=f"/invite/{token}")
        assert response.status_code == 302 and response.headers["location"] == "/o/sister-co/"
        assert (await viewer.get("/o/sister-co/team")).status_code == 200
    assert await role_of(other, tenant.email("viewer")) == "member"
    assert await role_of(tenant.org_id, tenant.email("viewer")) == "viewer"  # other memberships untouched


async def test_resend_kills_the_old_link_and_revoke_kills_the_new(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, f"{base}/invitations", {"emails": "late@example.com", "role": "member"}, token_from=base)
        _, first = await invite_link(portal_app, tenant.id, "late@example.com")
        row = await Invitation.select().where(
            Invitation.email == "late@example.com", Invitation.tenant == tenant.id).first()
        response = await post(client, f"{base}/invitations/{row['id']}/resend", token_from=base)
        assert response.status_code == 302
        _, second = await invite_link(portal_app, tenant.id, "late@example.com")
        assert first != second
        assert len(await mails_to(tenant.id, "late@example.com")) == 2
        async with client_for(portal_app, tenant.host) as invitee:
            assert (await invitee.get(f"/invite/{first}")).status_code == 404
            assert (await invitee.get(f"/invite/{second}")).status_code == 200
        response = await post(client, f"{base}/invitations/{row['id']}/revoke", token_from=base)
        assert response.status_code == 302
        async with client_for(portal_app, tenant.host) as invitee:
            page = await invitee.get(f"/invite/{second}")
            assert page.status_code == 410 and "withdrawn" in page.text
        again = await post(client, f"{base}/invitations/{row['id']}/revoke", token_from=base)
        assert again.status_code == 409 and "already revoked" in again.text
    row = await Invitation.select().where(Invitation.id == row["id"]).first()
    assert row["send_count"] == 2 and row["revoked_at"] is not None


async def test_bad_input_changes_nothing(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        cases = [
            ({"emails": "good@example.com, not-an-email", "role": "member"}, 400, "not valid email addresses"),
            ({"emails": "", "role": "member"}, 400, "at least one email"),
            ({"emails": "good@example.com", "role": "superuser"}, 400, "Choose one of the roles"),
            ({"emails": f"good@example.com, {tenant.email('member')}", "role": "member"}, 409, "Already members"),
        ]
        for data, status, message in cases:
            response = await post(client, f"{base}/invitations", data, token_from=base)
            assert response.status_code == status, data
            assert message in response.text
            assert "good@example.com" in response.text or not data["emails"]  # the form keeps what was typed
        assert await Invitation.count().where(Invitation.tenant == tenant.id) == 0
        await post(client, f"{base}/invitations", {"emails": "dup@example.com", "role": "member"}, token_from=base)
        duplicate = await post(client, f"{base}/invitations", {"emails": "dup@example.com, fresh@example.com",
                                                                "role": "member"}, token_from=base)
        assert duplicate.status_code == 409 and "Already invited" in duplicate.text
    assert await Invitation.count().where(Invitation.tenant == tenant.id) == 1


async def test_expired_invitation_can_be_replaced_by_a_new_one(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, f"{base}/invitations", {"emails": "slow@example.com", "role": "member"}, token_from=base)
        await Invitation.update({Invitation.expires_at: utcnow() - timedelta(minutes=1)}).where(
            Invitation.email == "slow@example.com", Invitation.tenant == tenant.id)
        page = await client.get(base)
        assert "Expired" in page.text
        response = await post(client, f"{base}/invitations", {"emails": "slow@example.com", "role": "viewer"},
                              token_from=base)
        assert response.status_code == 302
    rows = await Invitation.select().where(
        Invitation.email == "slow@example.com", Invitation.tenant == tenant.id).order_by(Invitation.created_at)
    assert len(rows) == 2 and rows[0]["revoked_at"] is not None and rows[1]["role"] == "viewer"
