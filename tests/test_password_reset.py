"""Password reset by email: generic answer, single-use one-hour link on the tenant's stored domain."""

from __future__ import annotations

import re
from datetime import timedelta

from core.db import utcnow
from core.tables import DevMail, PasswordReset
from core.testing import PASSWORD, client_for, deliver_outbox, form_post, login

NEW_PASSWORD = "a-brand-new-passphrase"
GENERIC = "has an account here, we've sent it a link"


async def _mails(app, tenant):
    await deliver_outbox(app)
    return await DevMail.select().where(DevMail.tenant == tenant.id).order_by(DevMail.created_at)


async def _request(client, email):
    return await form_post(client, "/password/forgot", {"email": email}, token_from="/password/forgot")


async def test_reset_link_is_mailed_on_the_stored_domain_and_works_once(portal_app, make_tenant):
    tenant = await make_tenant(extra_hosts=["portal.reset-brand.example"], branding={"product_name": "Reset Cloud"})
    async with client_for(portal_app, tenant.host) as other_session:
        await login(other_session, tenant.email("member"))
        # the request arrives on a secondary host; the link must use the stored primary domain
        async with client_for(portal_app, "portal.reset-brand.example") as c:
            login_page = await c.get("/login")
            assert 'href="/password/forgot"' in login_page.text
            response = await _request(c, tenant.email("member").upper())
            assert response.status_code == 200 and GENERIC in response.text
            [mail] = await _mails(portal_app, tenant)
            assert mail["recipient"] == tenant.email("member") and "Reset Cloud" in mail["subject"]
            link = re.search(r"(http://[^\s]+/password/reset/[A-Za-z0-9_-]+)", mail["text"]).group(1)
            assert link.startswith(f"http://{tenant.host}/password/reset/")
            assert link in mail["html"]
            path = link.split(tenant.host, 1)[1]
            page = await c.get(path)
            assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
            assert "Choose a new password" in page.text
            short = await form_post(c, path, {"new_password": "short", "confirm_password": "short"}, token_from=path)
            assert short.status_code == 400 and "at least 10" in short.text
            mismatch = await form_post(c, path, {"new_password": NEW_PASSWORD, "confirm_password": "different-one"},
                                       token_from=path)
            assert mismatch.status_code == 400 and "do not match" in mismatch.text
            done = await form_post(c, path, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
                                   token_from=path)
            assert done.status_code == 302 and done.headers["location"] == "/login?notice=password-reset"
            assert "Sign in with your new password" in (await c.get("/login?notice=password-reset")).text
            reused = await c.get(path)
            assert reused.status_code == 400 and "This link no longer works" in reused.text
            again = await form_post(c, path, {"new_password": "another-passphrase", "confirm_password":
                                              "another-passphrase"}, token_from="/password/forgot")
            assert again.status_code == 400
            assert (await login(c, tenant.email("member"))).status_code == 400
            assert (await login(c, tenant.email("member"), NEW_PASSWORD)).status_code == 302
        # every session that existed before the reset ended
        assert (await other_session.get("/account")).status_code == 302


async def test_unknown_email_gets_the_same_answer_and_no_mail(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as c:
        unknown = await _request(c, "nobody@nowhere.example")
        assert unknown.status_code == 200 and GENERIC in unknown.text
        invalid = await _request(c, "not-an-email")
        assert invalid.status_code == 400 and "Enter the email address" in invalid.text
    assert await _mails(portal_app, tenant) == []
    assert not await PasswordReset.exists().where(PasswordReset.tenant == tenant.id)


async def test_expired_newer_and_foreign_links_are_refused(portal_app, make_tenant):
    tenant = await make_tenant()
    other = await make_tenant()
    async with client_for(portal_app, tenant.host) as c:
        await _request(c, tenant.email("owner"))
        await _request(c, tenant.email("owner"))
        first, second = await _mails(portal_app, tenant)
        old_path, new_path = (re.search(r"(/password/reset/[A-Za-z0-9_-]+)", m["text"]).group(1)
                              for m in (first, second))
        assert (await c.get(old_path)).status_code == 400  # a newer link kills the older one
        async with client_for(portal_app, other.host) as foreign:
            assert (await foreign.get(new_path)).status_code == 400
        await PasswordReset.update({PasswordReset.expires_at: utcnow() - timedelta(seconds=1)}).where(
            PasswordReset.tenant == tenant.id)
        expired = await c.get(new_path)
        assert expired.status_code == 400 and 'href="/password/forgot"' in expired.text
        assert (await c.get("/password/reset/not-a-token")).status_code == 400
    assert (await login(client_for(portal_app, tenant.host), tenant.email("owner"), PASSWORD)).status_code == 302


async def test_reset_requests_are_throttled_per_account_silently(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as c:
        for _ in range(5):
            response = await _request(c, tenant.email("viewer"))
            assert response.status_code == 200 and GENERIC in response.text
    assert len(await _mails(portal_app, tenant)) == 3


async def test_no_reset_link_where_password_sign_in_is_refused(portal_app_factory, make_tenant):
    import types

    from core import hookimpl
    from core.contracts import PluginInfo

    plugin = types.ModuleType("sso_only")

    @hookimpl
    def portal_plugin():
        return PluginInfo("sso-only", "SSO only", "0.1.0")

    @hookimpl
    def portal_password_login_policy(ctx, email):
        return "Use single sign-on." if email.startswith("admin@") else None

    plugin.portal_plugin, plugin.portal_password_login_policy = portal_plugin, portal_password_login_policy
    app = await portal_app_factory(plugin)
    tenant = await make_tenant(plugins=["sso-only"])
    async with client_for(app, tenant.host) as c:
        refused = await _request(c, tenant.email("admin"))
        assert refused.status_code == 200 and GENERIC in refused.text
        allowed = await _request(c, tenant.email("owner"))
        assert allowed.status_code == 200 and GENERIC in allowed.text
    assert [m["recipient"] for m in await _mails(app, tenant)] == [tenant.email("owner")]
