"""The sign-in round trip shared by both protocols: start (pending + cookie), finish (session), fail (event).

Routes call these; the protocol modules (``oidc``, ``saml``) only check what the IdP sent.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.response import Redirect

from core.context import RequestContext
from core.db import atomic
from core.events import Target, emit
from core.identity import set_session_cookie, start_session
from core.rendering import render
from plugins.sso import oidc
from plugins.sso.errors import SsoError
from plugins.sso.service import Identity, create_pending, provision, record_failure, record_test_result

OIDC_COOKIE = "portal_sso_oidc"
SAML_COOKIE = "portal_sso_saml"


def base_url(ctx: RequestContext) -> str:
    """This tenant host's origin as the IdP must call it back (https in production)."""
    assert ctx.request is not None
    url = ctx.request.url
    scheme = "https" if ctx.runtime.settings.production else url.scheme
    return f"{scheme}://{url.netloc}"


def oidc_redirect_uri(ctx: RequestContext, connection: dict[str, Any]) -> str:
    """The callback registered at the IdP for this connection."""
    return f"{base_url(ctx)}/sso/oidc/{connection['id']}/callback"


def set_binding_cookie(response: Response[Any], ctx: RequestContext, name: str, value: str | None) -> None:
    """The browser-binding cookie: Lax for OIDC (top-level GET back), None+Secure for SAML (cross-site POST)."""
    path = "/sso/"
    if value is None:
        response.delete_cookie(name, path=path)
        return
    if name == SAML_COOKIE:
        response.set_cookie(name, value, path=path, httponly=True, samesite="none", secure=True, max_age=900)
    else:
        response.set_cookie(name, value, path=path, httponly=True, samesite="lax", secure=ctx.secure, max_age=900)


async def start_oidc(ctx: RequestContext, connection: dict[str, Any], *, email_hint: str = "",
                     test_by: Any = None) -> Response[Any]:
    """Send the browser to the IdP with state, nonce and PKCE; the state lives server-side."""
    doc = await oidc.discover(ctx.runtime, connection["oidc_issuer"])
    pending = await create_pending(ctx, connection, email_hint=email_hint, test_by=test_by)
    url = oidc.authorization_url(doc, client_id=connection["oidc_client_id"], scopes=connection["oidc_scopes"],
                                 redirect_uri=oidc_redirect_uri(ctx, connection), state=pending.state,
                                 nonce=pending.nonce, code_verifier=pending.code_verifier, login_hint=email_hint)
    response = Redirect(url)
    set_binding_cookie(response, ctx, OIDC_COOKIE, pending.cookie)
    return response


async def start(ctx: RequestContext, connection: dict[str, Any], *, email_hint: str = "",
                test_by: Any = None) -> Response[Any]:
    """Start a sign-in (or a test run) with the connection's protocol."""
    if connection["protocol"] == "saml":
        from plugins.sso.saml import start_saml

        return await start_saml(ctx, connection, email_hint=email_hint, test_by=test_by)
    return await start_oidc(ctx, connection, email_hint=email_hint, test_by=test_by)


def settings_url(ctx: RequestContext, connection: dict[str, Any], org_slug: str) -> str:
    """The connection's configuration page."""
    return f"/o/{org_slug}/sso"


async def finish(ctx: RequestContext, connection: dict[str, Any], pending: dict[str, Any], identity: Identity,
                 *, protocol: str, cookie_name: str) -> Response[Any]:
    """All checks passed: a test run reports back; a sign-in provisions, starts the session and lands."""
    from core.tables import Organization

    org = await Organization.select(Organization.slug).where(Organization.id == connection["organization"]).first()
    assert org is not None
    if pending["test_by"] is not None:
        await record_test_result(ctx, connection, True, f"Signed in as {identity.email} "
                                 f"(groups: {', '.join(identity.groups) or 'none'}).")
        response: Response[Any] = Redirect(f"/o/{org['slug']}/sso?tested=1")
        set_binding_cookie(response, ctx, cookie_name, None)
        return response
    if not connection["enabled"]:
        raise SsoError("disabled", "Single sign-on is switched off for this organization.")
    async with atomic():
        user_id, org_slug = await provision(ctx, connection, identity)
        token = await start_session(ctx, user_id, protocol)
        await emit(ctx, "sso.login.succeeded", organization_id=connection["organization"],
                   target=Target("user", str(user_id), identity.email),
                   data={"protocol": protocol, "connection": str(connection["id"]), "subject": identity.subject[:200]})
    response = Redirect(f"/o/{org_slug}/")
    set_session_cookie(response, ctx, token)
    set_binding_cookie(response, ctx, cookie_name, None)
    return response


async def fail(ctx: RequestContext, connection: dict[str, Any] | None, pending: dict[str, Any] | None,
               error: SsoError, *, protocol: str, cookie_name: str, email: str = "") -> Response[Any]:
    """A refused sign-in: one event, no session, and a page that says why in plain words."""
    if pending is not None and pending["test_by"] is not None and connection is not None:
        from core.tables import Organization

        org = await Organization.select(Organization.slug).where(
            Organization.id == connection["organization"]).first()
        await record_test_result(ctx, connection, False, error.message)
        response: Response[Any] = Redirect(f"/o/{org['slug'] if org else ''}/sso?tested=0")
    else:
        await record_failure(ctx, connection, error, email=email, protocol=protocol)
        response = await render(ctx, "sso/error.html", status_code=400, error=error)
    set_binding_cookie(response, ctx, cookie_name, None)
    return response
