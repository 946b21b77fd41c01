"""Invitations for real: the mail arrives over SMTP with each tenant's brand and link, and a second browser accepts."""

from __future__ import annotations

import re

import pytest

from core.testing import artifact, deliver_outbox, headless_chromium, live_server, login
from plugins.team.tests.conftest import role_of

LINK = re.compile(r"(https?://[^/\s]+)/invite/([A-Za-z0-9_\-]+)")


async def _invite(client, org_slug: str, email: str, role: str = "member"):
    from core.testing import form_post

    return await form_post(client, f"/o/{org_slug}/team/invitations", {"emails": email, "role": role},
                           token_from=f"/o/{org_slug}/team")


async def test_invitation_mail_arrives_over_smtp_branded_per_tenant(portal_app_factory, make_tenant, smtp_inbox):
    from core.testing import client_for

    app = await portal_app_factory(mail_backend="smtp", smtp_port=smtp_inbox.port)
    acme = await make_tenant(branding={"product_name": "Acme SMTP", "sender_email": "team@acme-smtp.example"})
    globex = await make_tenant(branding={"product_name": "Globex SMTP", "sender_email": "team@globex-smtp.example"})
    for tenant in (acme, globex):
        async with client_for(app, tenant.host) as client:
            await login(client, tenant.email("owner"))
            response = await _invite(client, tenant.org_slug, f"new@{tenant.slug}.example")
            assert response.status_code in (200, 302, 303)
    assert await deliver_outbox(app) >= 2
    for tenant, brand, sender in ((acme, "Acme SMTP", "team@acme-smtp.example"),
                                  (globex, "Globex SMTP", "team@globex-smtp.example")):
        [message] = smtp_inbox.to(f"new@{tenant.slug}.example")
        assert sender in message["From"] and brand in message["From"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        base, _token = LINK.search(text).groups()
        assert base == f"http://{tenant.host}"  # the tenant's stored domain, never the request's Host
        assert brand in html and f"http://{tenant.host}/invite/" in html


@pytest.mark.browser
async def test_invite_in_one_browser_and_accept_in_another(portal_app_factory, make_tenant):
    app = await portal_app_factory()
    tenant = await make_tenant(branding={"product_name": "Invite Co"})
    newcomer = f"colleague@{tenant.slug}.example"
    async with live_server(app) as port, headless_chromium() as browser:
        origin = f"http://{tenant.host}:{port}"
        owner = await browser.new_context()
        page = await owner.new_page()
        await page.goto(f"{origin}/login")
        await page.fill("#email", tenant.email("owner"))
        await page.fill("#password", "correct-horse-battery")
        await page.click("button[type=submit]")
        await page.goto(f"{origin}/o/{tenant.org_slug}/team")
        await page.fill("#invite-emails", newcomer)
        await page.select_option("#invite-role", "admin")
        await page.click("text=Send invitations")
        await page.wait_for_selector(f"text={newcomer}")
        await page.screenshot(path=artifact("team-invited.png"), full_page=True)

        await deliver_outbox(app)
        from core.tables import DevMail

        mail = await DevMail.select().where(DevMail.recipient == newcomer).first()
        link = LINK.search(mail["text"]).group(0).replace(f"http://{tenant.host}", origin)

        guest = await browser.new_context()  # a second browser: no cookies of the owner
        invited = await guest.new_page()
        await invited.goto(link)
        await invited.fill("#invite-name", "Casey Colleague")
        await invited.fill("#invite-password", "a-long-new-password")
        await invited.fill("#invite-confirm", "a-long-new-password")
        await invited.click("text=Create account and join")
        await invited.wait_for_url(f"**/o/{tenant.org_slug}/**")
        assert "Casey Colleague" in await invited.content()
        await invited.screenshot(path=artifact("team-accepted.png"), full_page=True)
        assert await role_of(tenant.org_id, newcomer) == "admin"
        reused = await (await browser.new_context()).new_page()
        await reused.goto(link)
        assert "Create account and join" not in await reused.content()
