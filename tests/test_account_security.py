"""Account security: TOTP enrolment, two-step sign-in, recovery codes, throttling, sessions page.

Codes are computed in the test with ``pyotp`` from the seed the setup page shows. The
server's TOTP clock (``core.totp.time``) is a fake the test moves forward, so "a new
30-second window" is deterministic instead of a sleep.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest

from core import hookimpl
from core.contracts import PluginInfo
from core.db import utcnow
from core.security import token_hash
from core.tables import PendingLogin, RecoveryCode, TotpCredential, UserSession
from core.testing import PASSWORD, client_for, csrf_token, form_post, login

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
CODE_ITEM = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")
SECRET = re.compile(r'class="secret"[^>]*>([A-Z2-7 ]+)<')


class Clock:
    """The server's TOTP clock: starts now, moves only when the test says so."""

    def __init__(self) -> None:
        import time

        self.now = float(int(time.time()) // 30 * 30 + 10)

    def time(self) -> float:
        return self.now

    def advance(self, steps: int = 1) -> None:
        self.now += 30 * steps


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("core.totp.time", types.SimpleNamespace(time=fake.time))
    return fake


def recorder() -> types.ModuleType:
    """A plugin that keeps every event (the audit plugin's seat)."""
    module = types.ModuleType("security_recorder")
    module.EVENTS = []

    @hookimpl
    def portal_plugin():
        return PluginInfo("recorder", "Recorder", "0.1.0")

    @hookimpl
    async def portal_event(event):
        module.EVENTS.append(event)

    module.portal_plugin, module.portal_event = portal_plugin, portal_event
    return module


def code(secret: str, clock: Clock) -> str:
    return pyotp.TOTP(secret).at(clock.now)


def client(app: Any, host: str, agent: str = FIREFOX, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    c = client_for(app, host, client_ip=ip)
    c.headers["user-agent"] = agent
    return c


async def enrol(c: httpx.AsyncClient, clock: Clock) -> tuple[str, list[str]]:
    """Set up 2FA through the real pages; returns the seed and the recovery codes."""
    page = await c.get("/account/security/2fa/setup")
    assert page.status_code == 200 and "<svg" in page.text
    secret = SECRET.search(page.text).group(1).replace(" ", "")
    done = await form_post(c, "/account/security/2fa/setup", {"code": code(secret, clock),
                                                              "current_password": PASSWORD},
                           token_from="/account/security/2fa/setup")
    assert done.status_code == 200, done.text
    codes = CODE_ITEM.findall(done.text)
    assert len(codes) == 10
    clock.advance()
    return secret, codes


@asynccontextmanager
async def signed_in(app: Any, host: str, email: str, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in with the password (no 2FA yet)."""
    async with client(app, host, **kw) as c:
        assert (await login(c, email)).status_code == 302
        yield c


async def second_step(c: httpx.AsyncClient, value: str, **extra: str) -> httpx.Response:
    return await form_post(c, "/login/2fa", {"code": value, **extra}, token_from="/login")


async def session_row(c: httpx.AsyncClient) -> dict[str, Any] | None:
    token = c.cookies.get("portal_session")
    return await UserSession.select().where(UserSession.key_hash == token_hash(token)).first() if token else None


async def test_enrol_with_qr_code_and_confirmation_code(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    async with signed_in(app, tenant.host, tenant.email("member")) as c:
        account = await c.get("/account")
        assert 'href="/account/security"' in account.text and "Account security" in account.text
        overview = await c.get("/account/security")
        assert overview.status_code == 200 and "Set up two-factor authentication" in overview.text
        setup = await c.get("/account/security/2fa/setup")
        assert 'class="segno"' in setup.text and "<title>QR code for" in setup.text
        secret = SECRET.search(setup.text).group(1).replace(" ", "")
        assert (await c.get("/account/security/2fa/setup")).text.count(SECRET.search(setup.text).group(1)) == 1
        # the seed is stored encrypted, never in the clear
        row = await TotpCredential.select().where(TotpCredential.tenant == tenant.id).first()
        assert secret not in row["secret"] and app.state.portal.secrets.decrypt(row["secret"]) == secret
        assert row["confirmed_at"] is None

        wrong = await form_post(c, "/account/security/2fa/setup", {"code": "000000", "current_password": PASSWORD},
                                token_from="/account/security/2fa/setup")
        if wrong.status_code != 400:  # 000000 could be the real code once in a million
            pytest.skip("the random seed's current code was 000000")
        assert "That code does not match" in wrong.text and 'aria-invalid="true"' in wrong.text
        bad_password = await form_post(c, "/account/security/2fa/setup",
                                       {"code": code(secret, clock), "current_password": "wrong-password"},
                                       token_from="/account/security/2fa/setup")
        assert bad_password.status_code == 400 and "Your password is not correct." in bad_password.text
        assert (await TotpCredential.select().where(TotpCredential.tenant == tenant.id).first())["confirmed_at"] is None

        old_session = (await session_row(c))["id"]
        done = await form_post(c, "/account/security/2fa/setup", {"code": code(secret, clock),
                                                                  "current_password": PASSWORD},
                               token_from="/account/security/2fa/setup")
        assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
        codes = CODE_ITEM.findall(done.text)
        assert len(codes) == 10 and len(set(codes)) == 10
        stored = await RecoveryCode.select().where(RecoveryCode.tenant == tenant.id)
        assert len(stored) == 10 and not {r["code_hash"] for r in stored} & set(codes)
        assert (await session_row(c))["id"] != old_session  # rotated
        security = await c.get("/account/security")
        assert "Since" in security.text and "10 / 10" in security.text and "Set up two-factor" not in security.text
        # the codes are never shown again
        assert not CODE_ITEM.findall(security.text)
    enabled = [e for e in rec.EVENTS if e.type == "account.2fa.enabled"]
    assert len(enabled) == 1 and enabled[0].after == {"two_factor": True}
    assert enabled[0].target.display == tenant.email("member")


async def test_login_needs_the_second_step_and_the_half_state_is_no_session(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    async with signed_in(app, tenant.host, tenant.email("owner")) as c:
        secret, _codes = await enrol(c, clock)
    async with client(app, tenant.host) as c:
        first = await login(c, tenant.email("owner"), next_path="/account")
        assert first.status_code == 302 and first.headers["location"] == "/login/2fa"
        assert "portal_session" not in c.cookies and c.cookies.get("portal_2fa")
        assert "Path=/login" in first.headers["set-cookie"]
        for path in (f"/o/{tenant.org_slug}/", "/account", "/account/security", "/notifications"):
            blocked = await c.get(path)
            assert blocked.status_code == 302 and blocked.headers["location"].startswith("/login?next="), path
        # the challenge token is not a session token either
        c.cookies.set("portal_session", c.cookies.get("portal_2fa"))
        assert (await c.get("/account")).status_code == 302
        c.cookies.delete("portal_session")

        page = await c.get("/login/2fa")
        assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
        wrong = await second_step(c, "123456" if code(secret, clock) != "123456" else "654321")
        assert wrong.status_code == 400 and "4 attempts left" in wrong.text
        assert "portal_session" not in c.cookies
        ok = await second_step(c, code(secret, clock))
        assert ok.status_code == 302 and ok.headers["location"] == "/account"
        session = await session_row(c)
        assert session["auth_method"] == "password" and session["second_factor"] == "totp"
        assert "portal_2fa" not in c.cookies
        assert (await c.get("/account")).status_code == 200
        security = await c.get("/account/security")
        assert "Password + authenticator app" in security.text
        # the used challenge is dead: going back to the form starts over
        challenge = await PendingLogin.select().where(PendingLogin.tenant == tenant.id).first()
        assert challenge["consumed_at"] is not None
    types_seen = [e.type for e in rec.EVENTS]
    assert "auth.login.second_factor_required" in types_seen
    failed = [e for e in rec.EVENTS if e.type == "auth.login.failed"]
    assert failed and failed[-1].data["reason"] == "bad_second_factor"
    succeeded = [e for e in rec.EVENTS if e.type == "auth.login.succeeded"]
    assert succeeded[-1].data == {"second_factor": "totp"}


async def test_a_code_is_accepted_once_and_drift_is_one_step(portal_app, make_tenant, clock):
    tenant = await make_tenant()
    async with signed_in(portal_app, tenant.host, tenant.email("owner")) as c:
        secret, _ = await enrol(c, clock)
    used = code(secret, clock)
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        assert (await second_step(c, used)).status_code == 302
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        replay = await second_step(c, used)
        assert replay.status_code == 400 and "portal_session" not in c.cookies
        # two steps ahead is outside the allowed drift
        assert (await second_step(c, pyotp.TOTP(secret).at(clock.now + 60))).status_code == 400
        # one step ahead (a phone clock running fast) is fine
        assert (await second_step(c, pyotp.TOTP(secret).at(clock.now + 30))).status_code == 302


async def test_recovery_code_works_once(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    async with signed_in(app, tenant.host, tenant.email("admin")) as c:
        _secret, codes = await enrol(c, clock)
    async with client(app, tenant.host) as c:
        await login(c, tenant.email("admin"))
        page = await c.get("/login/2fa?method=recovery")
        assert "Recovery code" in page.text and 'name="method" value="recovery"' in page.text
        ok = await second_step(c, codes[0].upper().replace("-", " "), method="recovery")
        assert ok.status_code == 302
        assert (await session_row(c))["second_factor"] == "recovery"
        security = await c.get("/account/security")
        assert "9 / 10" in security.text and "Password + recovery code" in security.text
    async with client(app, tenant.host) as c:
        await login(c, tenant.email("admin"))
        again = await second_step(c, codes[0], method="recovery")
        assert again.status_code == 400 and "portal_session" not in c.cookies
        assert (await second_step(c, codes[1], method="recovery")).status_code == 302
    assert [e.type for e in rec.EVENTS].count("account.recovery_code.used") == 2


async def test_wrong_codes_are_throttled(portal_app, make_tenant, clock):
    tenant = await make_tenant()
    async with signed_in(portal_app, tenant.host, tenant.email("owner")) as c:
        secret, _ = await enrol(c, clock)
    wrong = "000000" if code(secret, clock) != "000000" else "111111"
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        for left in (4, 3, 2, 1):
            response = await second_step(c, wrong)
            assert response.status_code == 400 and f"{left} attempt" in response.text
        dead = await second_step(c, wrong)
        assert dead.status_code == 302 and dead.headers["location"] == "/login?notice=too-many-codes"
        # the challenge is spent: even the right code now starts over
        assert (await second_step(c, code(secret, clock))).headers["location"] == "/login?notice=expired"
        notice = await c.get("/login?notice=too-many-codes")
        assert "Too many wrong codes" in notice.text
        # a new password round gives five more tries, but the account limit (10 per 15 minutes) then bites
        await login(c, tenant.email("owner"))
        for _ in range(5):
            await second_step(c, wrong)
        await login(c, tenant.email("owner"))
        blocked = await second_step(c, code(secret, clock))
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert "Too many wrong codes" in blocked.text and "portal_session" not in c.cookies


async def test_expired_or_foreign_challenge_starts_over(portal_app, make_tenant, clock):
    tenant = await make_tenant()
    other = await make_tenant()
    async with signed_in(portal_app, tenant.host, tenant.email("owner")) as c:
        secret, _ = await enrol(c, clock)
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        token = c.cookies.get("portal_2fa")
        await PendingLogin.update({PendingLogin.expires_at: utcnow() - timedelta(seconds=1)}).where(
            PendingLogin.key_hash == token_hash(token))
        response = await c.get("/login/2fa")
        assert response.status_code == 302 and response.headers["location"] == "/login?notice=expired"
        assert (await second_step(c, code(secret, clock))).headers["location"] == "/login?notice=expired"
        assert "portal_session" not in c.cookies
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        token = c.cookies.get("portal_2fa")
    async with client(portal_app, other.host) as c:
        c.cookies.set("portal_2fa", token)
        assert (await c.get("/login/2fa")).headers["location"] == "/login?notice=expired"


async def test_disable_needs_password_and_code_and_ends_other_sessions(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    email = tenant.email("owner")
    async with signed_in(app, tenant.host, email) as c:
        secret, codes = await enrol(c, clock)
        async with client(app, tenant.host, agent=IPHONE) as other:
            await login(other, email)
            assert (await second_step(other, code(secret, clock))).status_code == 302
            clock.advance()
            bad_password = await form_post(c, "/account/security/2fa/disable",
                                           {"current_password": "nope-nope-nope", "code": code(secret, clock)},
                                           token_from="/account/security")
            assert bad_password.status_code == 400 and "Your password is not correct." in bad_password.text
            assert "open" in bad_password.text.split("Turn off two-factor authentication</summary>")[0][-200:]
            bad_code = await form_post(c, "/account/security/2fa/disable",
                                       {"current_password": PASSWORD, "code": "abcde-fghjk"},
                                       token_from="/account/security")
            assert bad_code.status_code == 400 and "That code is not valid" in bad_code.text
            assert await TotpCredential.exists().where(TotpCredential.tenant == tenant.id)
            done = await form_post(c, "/account/security/2fa/disable",
                                   {"current_password": PASSWORD, "code": code(secret, clock)},
                                   token_from="/account/security")
            assert done.status_code == 302 and done.headers["location"] == "/account/security?done=2fa-disabled"
            assert not await TotpCredential.exists().where(TotpCredential.tenant == tenant.id)
            assert not await RecoveryCode.exists().where(RecoveryCode.tenant == tenant.id)
            assert (await other.get("/account")).status_code == 302  # the other session ended
            page = await c.get("/account/security?done=2fa-disabled")
            assert "Two-factor authentication is off" in page.text
    async with client(app, tenant.host) as c:
        assert (await login(c, email)).headers["location"] != "/login/2fa"
    disabled = [e for e in rec.EVENTS if e.type == "account.2fa.disabled"]
    assert len(disabled) == 1 and disabled[0].data["other_sessions_ended"] == 1


async def test_new_recovery_codes_replace_the_old_ones(portal_app, make_tenant, clock):
    tenant = await make_tenant()
    async with signed_in(portal_app, tenant.host, tenant.email("billing")) as c:
        secret, old_codes = await enrol(c, clock)
        fresh = await form_post(c, "/account/security/recovery-codes",
                                {"current_password": PASSWORD, "code": old_codes[3]}, token_from="/account/security")
        assert fresh.status_code == 200
        new_codes = CODE_ITEM.findall(fresh.text)
        assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("billing"))
        assert (await second_step(c, old_codes[0])).status_code == 400
        assert (await second_step(c, new_codes[0])).status_code == 302


async def test_sessions_list_revoke_one_and_all_others(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    email = tenant.email("member")
    async with (signed_in(app, tenant.host, email, agent=FIREFOX, ip="10.0.0.1") as a,
                signed_in(app, tenant.host, email, agent=IPHONE, ip="10.0.0.2") as b):
        page = await a.get("/account/security")
        assert page.status_code == 200
        assert "Firefox on Linux" in page.text and "Safari on iPhone" in page.text
        assert "10.0.0.1" in page.text and "10.0.0.2" in page.text
        assert page.text.count("This session") == 1 and page.text.count('aria-current="true"') == 1
        assert "2 active sessions" in page.text and "Password" in page.text
        b_session = (await session_row(b))["id"]
        assert f'data-session="{b_session}"' in page.text
        revoked = await form_post(a, f"/account/security/sessions/{b_session}/revoke", {},
                                  token_from="/account/security")
        assert revoked.status_code == 302 and revoked.headers["location"] == "/account/security?done=session-revoked"
        after = await b.get("/account")
        assert after.status_code == 302 and after.headers["location"].startswith("/login")
        assert (await a.get("/account")).status_code == 200
        assert "Safari on iPhone" not in (await a.get("/account/security")).text
        # revoking again: it no longer exists
        assert (await form_post(a, f"/account/security/sessions/{b_session}/revoke", {},
                                token_from="/account/security")).status_code == 404

        async with signed_in(app, tenant.host, email, agent=IPHONE) as c2, signed_in(app, tenant.host, email) as c3:
            others = await form_post(a, "/account/security/sessions/revoke-others", {}, token_from="/account/security")
            assert others.headers["location"] == "/account/security?done=others-revoked"
            assert (await c2.get("/account")).status_code == 302 and (await c3.get("/account")).status_code == 302
            page = await a.get("/account/security?done=others-revoked")
            assert "1 active session<" in page.text and "not signed in anywhere else" in page.text

        # revoking the current session signs this client out
        mine = (await session_row(a))["id"]
        out = await form_post(a, f"/account/security/sessions/{mine}/revoke", {}, token_from="/account/security")
        assert out.headers["location"] == "/login"
        assert (await a.get("/account")).status_code == 302
    kinds = [e.type for e in rec.EVENTS]
    assert kinds.count("account.session.revoked") == 2 and "account.sessions.revoked_others" in kinds
    revoked_event = next(e for e in rec.EVENTS if e.type == "account.session.revoked")
    assert revoked_event.target.id == str(b_session) and revoked_event.target.display == "Safari on iPhone"
    bulk = next(e for e in rec.EVENTS if e.type == "account.sessions.revoked_others")
    assert bulk.data["sessions_ended"] == 2


async def test_sessions_of_another_user_or_tenant_cannot_be_revoked(portal_app, make_tenant, clock):
    tenant_a = await make_tenant()
    tenant_b = await make_tenant()
    async with (signed_in(portal_app, tenant_a.host, tenant_a.email("owner")) as victim,
                signed_in(portal_app, tenant_a.host, tenant_a.email("admin")) as colleague,
                signed_in(portal_app, tenant_b.host, tenant_b.email("owner")) as stranger):
        victim_session = (await session_row(victim))["id"]
        for attacker, host_page in ((stranger, "/account/security"), (colleague, "/account/security")):
            page = await attacker.get(host_page)
            assert str(victim_session) not in page.text
            response = await form_post(attacker, f"/account/security/sessions/{victim_session}/revoke", {},
                                       token_from="/account/security")
            assert response.status_code == 404
        assert (await session_row(victim))["revoked_at"] is None
        assert (await victim.get("/account")).status_code == 200
        # revoke-all-others of tenant B's user leaves tenant A's sessions alone
        await form_post(stranger, "/account/security/sessions/revoke-others", {}, token_from="/account/security")
        assert (await victim.get("/account")).status_code == 200
        assert (await form_post(stranger, f"/account/security/sessions/{uuid.uuid4()}/revoke", {},
                                token_from="/account/security")).status_code == 404


async def test_every_unsafe_route_needs_the_csrf_token(portal_app, make_tenant, clock):
    tenant = await make_tenant()
    async with signed_in(portal_app, tenant.host, tenant.email("owner")) as c:
        setup = await c.get("/account/security/2fa/setup")
        secret = SECRET.search(setup.text).group(1).replace(" ", "")
        forged = await c.post("/account/security/2fa/setup", data={"code": code(secret, clock),
                                                                   "current_password": PASSWORD})
        assert forged.status_code == 403 and not await totp_on(tenant)
        secret, codes = await enrol(c, clock)
        session_id = (await session_row(c))["id"]
        attempts = {
            "/account/security/2fa/disable": {"current_password": PASSWORD, "code": code(secret, clock)},
            "/account/security/recovery-codes": {"current_password": PASSWORD, "code": codes[0]},
            f"/account/security/sessions/{session_id}/revoke": {},
            "/account/security/sessions/revoke-others": {},
        }
        for path, data in attempts.items():
            assert (await c.post(path, data=data)).status_code == 403, path
            assert (await c.post(path, data={**data, "_csrf_token": "forged"})).status_code == 403, path
        assert await totp_on(tenant) and (await session_row(c))["revoked_at"] is None
        assert await RecoveryCode.count().where(RecoveryCode.tenant == tenant.id, RecoveryCode.used_at.is_null()) == 10
    async with client(portal_app, tenant.host) as c:
        await login(c, tenant.email("owner"))
        assert (await c.post("/login/2fa", data={"code": code(secret, clock)})).status_code == 403
        assert "portal_session" not in c.cookies
        assert (await c.post("/password/forgot", data={"email": tenant.email("owner")})).status_code == 403


async def totp_on(tenant: Any) -> bool:
    return await TotpCredential.exists().where(TotpCredential.tenant == tenant.id,
                                               TotpCredential.confirmed_at.is_not_null())


async def test_pages_need_a_signed_in_user(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client(portal_app, tenant.host) as c:
        for path in ("/account/security", "/account/security/2fa/setup"):
            response = await c.get(path)
            assert response.status_code == 302 and response.headers["location"].startswith("/login?next=")
        token = await csrf_token(c, "/login")
        response = await c.post("/account/security/sessions/revoke-others", data={"_csrf_token": token})
        assert response.status_code == 302 and response.headers["location"].startswith("/login")


async def test_owner_can_require_two_factor_for_members(portal_app_factory, make_tenant, clock):
    rec = recorder()
    app = await portal_app_factory(rec)
    tenant = await make_tenant(plugins=["recorder"])
    other = await make_tenant(plugins=["recorder"])
    switch = f"/account/security/organizations/{tenant.org_slug}/require-2fa"
    async with signed_in(app, tenant.host, tenant.email("owner")) as owner:
        page = await owner.get("/account/security")
        assert "Organizations you own" in page.text and f"Org {tenant.slug}" in page.text
        assert "5 of 5" in page.text
        assert (await owner.post(switch, data={"require": "on"})).status_code == 403  # no CSRF token
        refused = await form_post(owner, switch, {"require": "on"}, token_from="/account/security")
        assert refused.status_code == 400 and "for your own account first" in refused.text
        await enrol(owner, clock)
        done = await form_post(owner, switch, {"require": "on"}, token_from="/account/security")
        assert done.status_code == 302 and done.headers["location"] == "/account/security?done=org-required"
        page = await owner.get("/account/security?done=org-required")
        assert "4 of 5" in page.text and "Required" in page.text
        assert (await owner.get(f"/o/{tenant.org_slug}/")).status_code == 200
    async with signed_in(app, tenant.host, tenant.email("admin")) as admin:
        assert "Organizations you own" not in (await admin.get("/account/security")).text
        assert (await form_post(admin, switch, {"require": "off"}, token_from="/account/security")).status_code == 404
        blocked = await admin.get(f"/o/{tenant.org_slug}/")
        assert blocked.status_code == 302
        assert blocked.headers["location"] == f"/account/security/2fa/setup?required={tenant.org_slug}"
        setup = await admin.get(blocked.headers["location"])
        assert f"Org {tenant.slug} requires two-factor authentication" in setup.text
        assert (await admin.get("/account")).status_code == 200  # the account area stays open
        await enrol(admin, clock)
        assert (await admin.get(f"/o/{tenant.org_slug}/")).status_code == 200
    async with signed_in(app, other.host, other.email("owner")) as stranger:
        response = await form_post(stranger, switch, {"require": "off"}, token_from="/account/security")
        assert response.status_code == 404
    changed = [e for e in rec.EVENTS if e.type == "organization.two_factor_requirement.changed"]
    assert len(changed) == 1 and changed[0].organization_id == tenant.org_id
    assert changed[0].before == {"require_2fa": False} and changed[0].after == {"require_2fa": True}
    async with client(app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        secret = app.state.portal.secrets.decrypt((await TotpCredential.select().where(
            TotpCredential.user.email == tenant.email("owner"), TotpCredential.tenant == tenant.id).first())["secret"])
        assert (await second_step(owner, code(secret, clock))).status_code == 302
        off = await form_post(owner, switch, {"require": "off"}, token_from="/account/security")
        assert off.headers["location"] == "/account/security?done=org-optional"
    async with signed_in(app, tenant.host, tenant.email("viewer")) as viewer:
        assert (await viewer.get(f"/o/{tenant.org_slug}/")).status_code == 200
