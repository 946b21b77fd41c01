"""HTTP handlers: public sign-in routes (``/sso/...``) and the configuration page (``/o/{org}/sso``)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from core.context import Ctx, RequestContext
from core.db import utcnow
from core.guards import requires
from core.identity import normalize_email
from core.rendering import render
from plugins.sso import domains, oidc, saml, service
from plugins.sso.certs import self_signed
from plugins.sso.errors import SsoError
from plugins.sso.signin import OIDC_COOKIE, SAML_COOKIE, base_url, fail, finish, oidc_redirect_uri, start

log = logging.getLogger("portal.sso")
MANAGE = "sso.manage"


# -- public: sign-in --------------------------------------------------------------------------------------------

@get("/sso/start", name="sso_start")
async def start_page(ctx: Ctx, email: Annotated[str, QueryParameter(name="email")] = "") -> Response[Any]:
    """Ask for the work email that decides which identity provider to use."""
    return await render(ctx, "sso/start.html", email=email[:320], error=None)


@post("/sso/start", name="sso_start_submit")
async def start_submit(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Email → organization by verified domain → that organization's IdP."""
    form = await request.form()
    email = normalize_email(str(form.get("email", "")))[:320]
    if "@" not in email:
        return await render(ctx, "sso/start.html", status_code=400, email=email,
                            error="Enter your work email address.")
    connection = await service.route_email(ctx.tenant.id, email)
    if connection is None:
        return await render(ctx, "sso/start.html", status_code=400, email=email,
                            error=f"Single sign-on is not set up for @{service.email_domain(email)} on this portal. "
                                  "Sign in with your password, or ask your IT administrator.")
    try:
        return await start(ctx, connection, email_hint=email)
    except SsoError as error:
        await service.record_failure(ctx, connection, error, email=email)
        return await render(ctx, "sso/start.html", status_code=502, email=email,
                            error=f"Your identity provider cannot be reached right now: {error.message}")


@get("/sso/oidc/{connection_id:str}/callback", name="sso_oidc_callback")
async def oidc_callback(ctx: Ctx, request: Request[Any, Any, Any], connection_id: FromPath[str]) -> Response[Any]:
    """The IdP sends the browser back with a code: every check, then a session (or one failure event)."""
    connection = await service.connection_by_id(ctx.tenant.id, connection_id)
    if connection is None or connection["protocol"] != "oidc":
        raise NotFoundException()
    params = request.query_params
    pending = None
    email = ""
    try:
        pending = await service.consume_pending(ctx, connection, request.cookies.get(OIDC_COOKIE),
                                                state=str(params.get("state", ""))[:200])
        if pending["test_by"] is not None and (ctx.user is None or ctx.user.id != pending["test_by"]):
            raise SsoError("browser_mismatch", "This test was started by another user.")
        if params.get("error"):
            raise SsoError("idp_refused", f"The identity provider refused the sign-in: "
                                          f"{str(params.get('error'))[:100]} "
                                          f"{str(params.get('error_description', ''))[:300]}".strip())
        code = str(params.get("code", ""))
        if not code:
            raise SsoError("missing_code", "The identity provider sent no authorization code.")
        identity = await oidc_identity(ctx, connection, pending, code)
        email = identity.email
        if not await service.domain_allowed(connection, identity.email):
            raise SsoError("domain_not_verified", f"{identity.email} is not in a domain this organization has "
                                                  "verified, so it cannot sign in through this connection.")
        return await finish(ctx, connection, pending, identity, protocol="oidc", cookie_name=OIDC_COOKIE)
    except SsoError as error:
        return await fail(ctx, connection, pending, error, protocol="oidc", cookie_name=OIDC_COOKIE, email=email)


@get("/sso/saml/{connection_id:str}/metadata", name="sso_saml_metadata")
async def saml_metadata(ctx: Ctx, connection_id: FromPath[str]) -> Response[Any]:
    """The SP metadata of a SAML connection, for the customer's IdP (public: IdPs fetch it themselves)."""
    connection = await service.connection_by_id(ctx.tenant.id, connection_id)
    if connection is None or not connection["saml_sp_cert"]:
        raise NotFoundException()
    sp_key = ctx.runtime.secrets.decrypt(connection["saml_sp_key"])
    xml = await anyio.to_thread.run_sync(saml.sp_metadata, connection, sp_key, base_url(ctx))
    return Response(xml, media_type="application/samlmetadata+xml", headers={
        "Content-Disposition": f'attachment; filename="sp-metadata-{connection_id[:8]}.xml"'})


@post("/sso/saml/{connection_id:str}/acs", name="sso_saml_acs", opt={"exclude_from_csrf": True},
      request_max_body_size=saml.MAX_RESPONSE_BYTES * 2)
async def saml_acs(ctx: Ctx, request: Request[Any, Any, Any], connection_id: FromPath[str]) -> Response[Any]:
    """The IdP posts the SAML response here (cross-site by design; the checks in ``saml`` protect it)."""
    connection = await service.connection_by_id(ctx.tenant.id, connection_id)
    if connection is None or connection["protocol"] != "saml":
        raise NotFoundException()
    pending = None
    email = ""
    try:
        form = await request.form()
        raw = str(form.get("SAMLResponse", ""))
        parsed = saml.decode_response(raw)
        origin = base_url(ctx)
        entity_id, acs_url = saml.sp_urls(origin, connection["id"])
        if parsed.in_response_to:
            pending = await service.consume_pending(ctx, connection, request.cookies.get(SAML_COOKIE),
                                                    request_id=parsed.in_response_to[:100])
            if pending["test_by"] is not None and (ctx.user is None or ctx.user.id != pending["test_by"]):
                raise SsoError("browser_mismatch", "This test was started by another user.")
        elif not connection["saml_idp_initiated"]:
            raise SsoError("unsolicited", "The identity provider sent a sign-in nobody asked for (IdP-initiated "
                                          "sign-in is switched off for this connection). Start from the portal.")
        sp_key = ctx.runtime.secrets.decrypt(connection["saml_sp_key"])
        idp = saml.parse_idp_metadata(connection["saml_metadata"])
        await anyio.to_thread.run_sync(saml.verify_signature, parsed, idp.certificates, connection, sp_key, origin)
        now = utcnow()
        saml.check_semantics(parsed, idp_entity_id=connection["saml_idp_entity_id"], entity_id=entity_id,
                             acs_url=acs_url, request_id=parsed.in_response_to, now=now)
        await anyio.to_thread.run_sync(saml.second_layer, parsed, raw, connection, sp_key, origin,
                                       parsed.in_response_to)
        email, name, subject, groups = saml.identity_of(parsed, connection)
        email = normalize_email(email)
        await service.remember_assertion(connection, parsed.assertion_id, saml.assertion_expiry(parsed, now))
        if not await service.domain_allowed(connection, email):
            raise SsoError("domain_not_verified", f"{email} is not in a domain this organization has verified, so "
                                                  "it cannot sign in through this connection.")
        identity = service.Identity(email=email, name=name[:200], subject=subject, groups=groups)
        return await finish(ctx, connection, pending or {"test_by": None}, identity, protocol="saml",
                            cookie_name=SAML_COOKIE)
    except SsoError as error:
        return await fail(ctx, connection, pending, error, protocol="saml", cookie_name=SAML_COOKIE, email=email)


async def oidc_identity(ctx: RequestContext, connection: dict[str, Any], pending: dict[str, Any],
                        code: str) -> service.Identity:
    """Exchange the code, verify the ID token and map its claims (userinfo fills a missing email)."""
    doc = await oidc.discover(ctx.runtime, connection["oidc_issuer"])
    try:
        secret = ctx.runtime.secrets.decrypt(connection["oidc_client_secret"]) if connection["oidc_client_secret"] \
            else ""
    except ValueError:
        raise SsoError("secret_unreadable", "The stored client secret cannot be read: enter it again.") from None
    tokens = await oidc.exchange_code(doc, client_id=connection["oidc_client_id"], client_secret=secret,
                                      scopes=connection["oidc_scopes"],
                                      redirect_uri=oidc_redirect_uri(ctx, connection), code=code,
                                      code_verifier=pending["code_verifier"])
    claims = await oidc.verify_id_token(ctx.runtime, doc, tokens["id_token"], client_id=connection["oidc_client_id"],
                                        algorithms=oidc.parse_algorithms(connection["oidc_algorithms"]),
                                        nonce=pending["nonce"])
    email_claim, name_claim = connection["oidc_email_claim"] or "email", connection["oidc_name_claim"] or "name"
    groups_claim = connection["groups_attribute"] or "groups"
    if not claims.get(email_claim):
        extra = await oidc.userinfo(doc, str(tokens.get("access_token", "")))
        if extra.get("sub") != claims["sub"]:
            raise SsoError("userinfo_mismatch", "The userinfo endpoint describes another user than the ID token.")
        claims = {**extra, **claims}
    email = claims.get(email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise SsoError("no_email", f"The identity provider sent no email address (claim {email_claim!r}). Add it "
                                   "to the ID token or the userinfo response, or change the claim mapping.")
    if claims.get("email_verified") is False:
        raise SsoError("email_unverified", "The identity provider says this email address is not verified.")
    groups = claims.get(groups_claim) or []
    groups = [str(g) for g in groups] if isinstance(groups, list) else [str(groups)]
    name = claims.get(name_claim)
    return service.Identity(email=normalize_email(email), name=str(name or "")[:200], subject=str(claims["sub"]),
                            groups=groups)


# -- organization pages: configuration --------------------------------------------------------------------------

async def settings_page(ctx: RequestContext, *, status_code: int = 200, errors: dict[str, str] | None = None,
                        notice: str = "", form: dict[str, Any] | None = None) -> Response[Any]:
    """The configuration page with the current connection, domains and the SP details for the IT admin."""
    assert ctx.organization is not None
    connection = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    view = service.public_view(connection) if connection else None
    domain_rows = await service.org_domains(ctx.tenant.id, ctx.organization.id)
    for row in domain_rows:
        row["record_name"] = domains.record_name(row["domain"])
        row["record_value"] = domains.record_value(row["token"])
    origin = base_url(ctx)
    return await render(
        ctx, "sso/settings.html", status_code=status_code, connection=view, domains=domain_rows,
        errors=errors or {}, notice=notice, form=form or {}, origin=origin,
        redirect_uri=f"{origin}/sso/oidc/{view['id']}/callback" if view else "",
        acs_url=f"{origin}/sso/saml/{view['id']}/acs" if view else "",
        metadata_url=f"{origin}/sso/saml/{view['id']}/metadata" if view else "",
        roles=service.ASSIGNABLE_ROLES, algorithms=oidc.ASYMMETRIC_ALGORITHMS,
    )


@get("/", name="sso_settings", guards=[requires(MANAGE)])
async def settings(ctx: Ctx, tested: Annotated[str, QueryParameter(name="tested")] = "") -> Response[Any]:
    """``/o/{org}/sso``: connection, policy, domains and the last test result."""
    notice = {"1": "The test sign-in worked.", "0": "The test sign-in failed; see the result below."}.get(tested, "")
    return await settings_page(ctx, notice=notice)


def _text(form: Any, name: str, limit: int = 500) -> str:
    return str(form.get(name, "")).strip()[:limit]


@post("/connection", name="sso_create_connection", guards=[requires(MANAGE)])
async def create_connection(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Create the (switched-off) connection so the page can show the callback URL and SP metadata first."""
    assert ctx.organization is not None
    form = await request.form()
    protocol = _text(form, "protocol")
    if protocol not in {"oidc", "saml"}:
        return await settings_page(ctx, status_code=400, errors={"protocol": "Choose OIDC or SAML."})
    current = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    changes: dict[str, Any] = {"protocol": protocol}
    if current is None and protocol == "saml":
        key, cert = self_signed(f"{ctx.organization.name} SSO")
        changes.update(saml_sp_key=ctx.runtime.secrets.encrypt(key), saml_sp_cert=cert)
    await service.save_connection(ctx, ctx.organization.id, changes)
    return Redirect(ctx.org_url("sso"))


@post("/oidc", name="sso_save_oidc", guards=[requires(MANAGE)])
async def save_oidc(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Save the OIDC connection: the issuer is checked by fetching its discovery document."""
    assert ctx.organization is not None
    form = await request.form()
    errors: dict[str, str] = {}
    values = {k: _text(form, k) for k in ("oidc_issuer", "oidc_client_id", "oidc_scopes", "oidc_algorithms",
                                            "oidc_email_claim", "oidc_name_claim")}
    secret = str(form.get("oidc_client_secret", ""))[:2000]
    try:
        values["oidc_issuer"] = oidc.check_issuer_url(values["oidc_issuer"], production=ctx.runtime.settings.production)
        await oidc.discover(ctx.runtime, values["oidc_issuer"])
    except SsoError as error:
        errors["oidc_issuer"] = error.message
    if not values["oidc_client_id"]:
        errors["oidc_client_id"] = "Enter the client id your identity provider gave you."
    try:
        values["oidc_algorithms"] = ",".join(oidc.parse_algorithms(values["oidc_algorithms"] or "RS256"))
    except SsoError as error:
        errors["oidc_algorithms"] = error.message
    scopes = values["oidc_scopes"].split() or ["openid", "email", "profile"]
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    values["oidc_scopes"] = " ".join(scopes)
    values["oidc_email_claim"] = values["oidc_email_claim"] or "email"
    values["oidc_name_claim"] = values["oidc_name_claim"] or "name"
    current = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    if not secret and not (current and current["oidc_client_secret"]):
        errors["oidc_client_secret"] = "Enter the client secret."
    if errors:
        return await settings_page(ctx, status_code=400, errors=errors, form=values)
    changes: dict[str, Any] = {**values, "protocol": "oidc"}
    if secret:
        changes["oidc_client_secret"] = ctx.runtime.secrets.encrypt(secret)
    await service.save_connection(ctx, ctx.organization.id, changes)
    return Redirect(ctx.org_url("sso?saved=1"))


@post("/saml", name="sso_save_saml", guards=[requires(MANAGE)])
async def save_saml(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Save the SAML connection from pasted/uploaded metadata or a metadata URL."""
    assert ctx.organization is not None
    form = await request.form()
    url = _text(form, "saml_metadata_url")
    upload = form.get("saml_metadata_file")
    xml = str(form.get("saml_metadata", ""))[: saml.MAX_METADATA_BYTES + 1].strip()
    if upload is not None and hasattr(upload, "read"):
        content = await upload.read()
        if content:
            xml = content[: saml.MAX_METADATA_BYTES + 1].decode("utf-8", "replace").strip()
    values = {"saml_metadata_url": url, "saml_email_attribute": _text(form, "saml_email_attribute", 200) or "email",
              "saml_name_attribute": _text(form, "saml_name_attribute", 200) or "name",
              "saml_idp_initiated": form.get("saml_idp_initiated") == "on"}
    try:
        if not xml and url:
            xml = await saml.fetch_metadata(url, production=ctx.runtime.settings.production)
        if not xml:
            raise SsoError("bad_metadata", "Paste or upload the identity provider's metadata, or give its URL.")
        idp = saml.parse_idp_metadata(xml)
    except SsoError as error:
        return await settings_page(ctx, status_code=400, errors={"saml_metadata": error.message}, form=values)
    current = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    changes: dict[str, Any] = {**values, "protocol": "saml", "saml_metadata": xml,
                               "saml_idp_entity_id": idp.entity_id}
    if current is None or not current["saml_sp_cert"]:
        key, cert = self_signed(f"{ctx.organization.name} SSO")
        changes.update(saml_sp_key=ctx.runtime.secrets.encrypt(key), saml_sp_cert=cert)
    await service.save_connection(ctx, ctx.organization.id, changes)
    return Redirect(ctx.org_url("sso?saved=1"))


@post("/policy", name="sso_save_policy", guards=[requires(MANAGE)])
async def save_policy(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Switch SSO on or off, optional or required, the default role and the group → role mapping."""
    assert ctx.organization is not None
    form = await request.form()
    current = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    if current is None:
        return await settings_page(ctx, status_code=400, errors={"policy": "Set up a connection first."})
    errors: dict[str, str] = {}
    policy = _text(form, "policy") or "optional"
    role = _text(form, "default_role") or "member"
    if policy not in {"optional", "required"}:
        errors["policy"] = "Choose optional or required."
    if role not in service.ASSIGNABLE_ROLES:
        errors["default_role"] = "Choose a role SSO may grant."
    try:
        mapping = service.parse_group_roles(_text(form, "group_roles", 5000))
    except SsoError as error:
        errors["group_roles"] = error.message
        mapping = {}
    enabled = form.get("enabled") == "on"
    if enabled and not any(d["verified_at"] for d in await service.org_domains(ctx.tenant.id, ctx.organization.id)):
        errors["enabled"] = "Verify at least one email domain before switching single sign-on on."
    if errors:
        return await settings_page(ctx, status_code=400, errors=errors)
    await service.save_connection(ctx, ctx.organization.id, {
        "policy": policy, "default_role": role, "group_roles": mapping, "enabled": enabled,
        "groups_attribute": _text(form, "groups_attribute", 200) or "groups",
    })
    return Redirect(ctx.org_url("sso?saved=1"))


@post("/domains", name="sso_add_domain", guards=[requires(MANAGE)])
async def add_domain(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Claim an email domain; the page then shows the TXT record to publish."""
    assert ctx.organization is not None
    form = await request.form()
    try:
        domain = domains.normalize_domain(_text(form, "domain", 300))
        await service.add_domain(ctx, ctx.organization.id, domain)
    except SsoError as error:
        return await settings_page(ctx, status_code=400, errors={"domain": error.message},
                                   form={"domain": _text(form, "domain", 300)})
    return Redirect(ctx.org_url("sso"))


@post("/domains/{domain_id:str}/verify", name="sso_verify_domain", guards=[requires(MANAGE)])
async def verify_domain(ctx: Ctx, domain_id: FromPath[str]) -> Response[Any]:
    """Look up the TXT record now; verified domains route their users to this organization's IdP."""
    assert ctx.organization is not None
    row = await service.domain_of_org(ctx.tenant.id, ctx.organization.id, domain_id)
    if row is None:
        raise NotFoundException()
    try:
        await domains.check_txt(row["domain"], row["token"], domains.resolver_address(ctx.runtime, ctx.tenant))
    except SsoError as error:
        await service.mark_domain_checked(ctx, row, error)
        return await settings_page(ctx, status_code=400, errors={f"domain-{row['id']}": error.message})
    try:
        await service.mark_domain_checked(ctx, row, None)
    except SsoError as error:
        return await settings_page(ctx, status_code=409, errors={f"domain-{row['id']}": error.message})
    return await settings_page(ctx, notice=f"{row['domain']} is verified.")


@post("/domains/{domain_id:str}/delete", name="sso_remove_domain", guards=[requires(MANAGE)])
async def remove_domain(ctx: Ctx, domain_id: FromPath[str]) -> Response[Any]:
    """Stop claiming a domain."""
    assert ctx.organization is not None
    row = await service.domain_of_org(ctx.tenant.id, ctx.organization.id, domain_id)
    if row is None:
        raise NotFoundException()
    await service.remove_domain(ctx, row)
    return Redirect(ctx.org_url("sso"))


@post("/test", name="sso_test", guards=[requires(MANAGE)])
async def test_connection(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Run a sign-in through the IdP without signing anyone in; the result lands on this page."""
    assert ctx.organization is not None and ctx.user is not None
    form = await request.form()
    hint = normalize_email(_text(form, "email", 320))
    connection = await service.connection_for_org(ctx.tenant.id, ctx.organization.id)
    if connection is None:
        return await settings_page(ctx, status_code=400, errors={"test": "Set up a connection first."})
    try:
        return await start(ctx, connection, email_hint=hint, test_by=ctx.user.id)
    except SsoError as error:
        await service.record_test_result(ctx, connection, False, error.message)
        return Redirect(ctx.org_url("sso?tested=0"))


PUBLIC_HANDLERS: list[Any] = [start_page, start_submit, oidc_callback, saml_metadata, saml_acs]
PAGE_HANDLERS: list[Any] = [settings, create_connection, save_oidc, save_saml, save_policy, add_domain, verify_domain,
                            remove_domain, test_connection]
