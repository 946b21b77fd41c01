"""The operator view on the platform host (``PORTAL_PLATFORM_HOST``): tenants, domains, suspend / resume.

Who gets in: platform operator accounts (``platform_operator``), created from the shell with
``portal operators create EMAIL`` (a generated password and an authenticator key are printed
once), signed in at ``/operator/login`` with email, password and a current authenticator code
(TOTP, each code accepted once). Why accounts and not a shared credential from the
environment: each action is attributed to a named person in the audit log, one person can
be disabled (``portal operators disable``) without rotating anyone else's secret, and
sessions can be listed and ended. Operators are not tenant users: a tenant admin's account
cannot reach this view and an operator's cannot sign in on a tenant host.

Hardening: the whole view answers only on the platform host (every other host, and every
host when ``PORTAL_PLATFORM_HOST`` is unset, gets the same 404 as today); sign-in is throttled
per address and per email; the session cookie is host-only, HttpOnly, ``SameSite=Strict``,
scoped to ``/operator`` and Secure in production; sessions end after an hour idle or eight
hours in all; every form carries the CSRF token; suspend / resume is one transaction with
its ``operator.tenant.*`` event naming the operator.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.utils.scope.state import ScopeState
from piccolo.query.functions.aggregate import Count

from core.console.operator import OperatorError, set_status
from core.console.tables import DomainCheck, OperatorSession, PlatformOperator
from core.context import Actor
from core.db import as_utc, atomic, load_json, utcnow
from core.identity import normalize_email
from core.security import token_hash
from core.tables import Organization, Tenant, TenantDomain
from core.tenancy import client_address, normalize_host, request_host
from core.themes import stylesheet
from core.totp import matching_step, normalize_code

COOKIE = "portal_operator"
COOKIE_PATH = "/operator"
IDLE = timedelta(hours=1)
ABSOLUTE = timedelta(hours=8)
TOUCH = timedelta(minutes=1)
LOGIN_LIMIT = (10, 300.0)  # attempts per address and per email in five minutes
PLATFORM = {"platform": True}
PAGE_SIZE = 50
CORE_CSS = Path(__file__).resolve().parent.parent / "static" / "portal.css"


@lru_cache(maxsize=1)
def _core_css() -> str:
    """The core stylesheet, inlined: the platform host serves no tenant's static files."""
    return CORE_CSS.read_text()


def platform_host(runtime: Any) -> str | None:
    """The platform's own hostname (``PORTAL_PLATFORM_HOST``), normalised; None disables the view."""
    return normalize_host(runtime.settings.extra.get("platform_host"))


def _runtime(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.portal


def _client(request: Request[Any, Any, Any]) -> str:
    runtime = _runtime(request)
    ip = request.client.host if request.client else None
    return client_address(request.headers, ip, runtime.settings.trusted_proxies)


def _require_platform_host(request: Request[Any, Any, Any]) -> None:
    """404 (the platform's, or the tenant's themed one) anywhere but on the platform host."""
    runtime = _runtime(request)
    expected = platform_host(runtime)
    ip = request.client.host if request.client else None
    if expected is None or request_host(request.headers, ip, runtime.settings.trusted_proxies) != expected:
        raise NotFoundException()


async def current_operator(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
    """The signed-in operator (``id``, ``email``, ``name``, ``session_id``) or None."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    row = await OperatorSession.select(
        OperatorSession.id, OperatorSession.last_seen_at, OperatorSession.expires_at,
        OperatorSession.operator.id.as_alias("operator_id"), OperatorSession.operator.email.as_alias("email"),
        OperatorSession.operator.name.as_alias("name"), OperatorSession.operator.disabled.as_alias("disabled"),
    ).where(OperatorSession.key_hash == token_hash(token), OperatorSession.revoked_at.is_null()).first()
    if row is None:
        return None
    now = utcnow()
    if row["disabled"] or as_utc(row["expires_at"]) <= now or as_utc(row["last_seen_at"]) + IDLE <= now:
        await OperatorSession.update({OperatorSession.revoked_at: now}).where(OperatorSession.id == row["id"])
        return None
    if now - as_utc(row["last_seen_at"]) > TOUCH:
        await OperatorSession.update({OperatorSession.last_seen_at: now}).where(OperatorSession.id == row["id"])
    return {"id": row["operator_id"], "email": row["email"], "name": row["name"], "session_id": row["id"]}


def _page(request: Request[Any, Any, Any], template: str, *, status_code: int = 200, **context: Any
          ) -> Response[str]:
    runtime = _runtime(request)
    theme = runtime.themes.get("default")
    token = ScopeState.from_scope(request.scope).csrf_token
    html = runtime.themes.environment(theme).get_template(template).render(
        csrf_token=token if isinstance(token, str) else "", platform_host=platform_host(runtime),
        theme_css=stylesheet(theme, {}), core_css=_core_css(), **context)
    return Response(html, status_code=status_code, media_type="text/html",
                    headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                             "Referrer-Policy": "same-origin"})


async def _signed_in(request: Request[Any, Any, Any]) -> dict[str, Any] | Redirect:
    _require_platform_host(request)
    operator = await current_operator(request)
    if operator is None:
        return Redirect("/operator/login")
    return operator


# -- sign-in -------------------------------------------------------------------------------------------

@get("/operator/login", name="operator_login", opt=PLATFORM, include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The operator sign-in form."""
    _require_platform_host(request)
    if await current_operator(request) is not None:
        return Redirect("/operator")
    return _page(request, "operator/login.html", email="", error=None)


@post("/operator/login", name="operator_login_submit", opt=PLATFORM, include_in_schema=False)
async def login_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    """Check email and password (throttled); start a session."""
    _require_platform_host(request)
    runtime = _runtime(request)
    form = await request.form()
    email = normalize_email(str(form.get("email", ""))[:320])
    password = str(form.get("password", ""))[:1000]
    limiter = runtime.limiter("operator_login", *LOGIN_LIMIT)
    keys = [f"ip:{_client(request)}", f"email:{email}"]
    if wait := max([await limiter.retry_after(key) for key in keys]):
        return _page(request, "operator/login.html", status_code=429, email=email,
                     error=f"Too many sign-in attempts. Try again in {max(1, wait // 60)} minute(s).")
    code = normalize_code(str(form.get("code", "")))
    row = await PlatformOperator.select().where(PlatformOperator.email == email).first() if email else None
    ok = runtime.passwords.verify(row["password_hash"] if row else None, password)
    step = _code_step(runtime, row, code) if ok and row is not None else None
    if not ok or row is None or row["disabled"] or step is None:
        for key in keys:
            await limiter.hit(key)
        return _page(request, "operator/login.html", status_code=400, email=email,
                     error="Email, password or authenticator code is wrong, or this operator account is disabled.")
    async with atomic():  # each code once: a step at or below the last accepted one is a replay
        used = await PlatformOperator.update({PlatformOperator.totp_last_step: step}).where(
            PlatformOperator.id == row["id"], PlatformOperator.totp_last_step < step).returning(PlatformOperator.id)
    if not used:
        return _page(request, "operator/login.html", status_code=400, email=email,
                     error="That authenticator code was already used; wait for the next one.")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await OperatorSession.insert(OperatorSession(
        id=uuid.uuid4(), key_hash=token_hash(token), operator=row["id"], created_at=now, last_seen_at=now,
        expires_at=now + ABSOLUTE, ip=_client(request)[:64]))
    await PlatformOperator.update({PlatformOperator.last_login_at: now}).where(PlatformOperator.id == row["id"])
    return Redirect("/operator", cookies=[Cookie(
        key=COOKIE, value=token, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=runtime.settings.production, max_age=int(ABSOLUTE.total_seconds()))])


def _code_step(runtime: Any, row: dict[str, Any], code: str) -> int | None:
    """The time step of a valid authenticator code for this operator (None: wrong, or no key issued)."""
    if not row.get("totp_secret"):
        return None
    try:
        seed = runtime.secrets.decrypt(row["totp_secret"])
    except Exception:  # noqa: BLE001 - a key encrypted under another PORTAL_SECRET_KEY reads as no key
        return None
    return matching_step(seed, code)


@post("/operator/logout", name="operator_logout", opt=PLATFORM, include_in_schema=False)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End this operator session."""
    _require_platform_host(request)
    operator = await current_operator(request)
    if operator is not None:
        await OperatorSession.update({OperatorSession.revoked_at: utcnow()}).where(
            OperatorSession.id == operator["session_id"])
    return Redirect("/operator/login", cookies=[Cookie(key=COOKIE, value="", path=COOKIE_PATH, max_age=0,
                                                       httponly=True, samesite="strict")])


# -- tenants -------------------------------------------------------------------------------------------

def domain_state(verified: bool, tenant_status: str) -> str:
    """``pending`` (DNS not proven), ``verified`` (proven, tenant not serving) or ``active`` (live, gets TLS)."""
    if not verified:
        return "pending"
    return "active" if tenant_status == "active" else "verified"


async def tenant_rows(query: str = "") -> list[dict[str, Any]]:
    """Every tenant with its status, sections, primary domain, organization and domain counts."""
    select = Tenant.select(Tenant.id, Tenant.slug, Tenant.name, Tenant.status, Tenant.plugins, Tenant.created_at)
    term = query.strip().lower()[:100]
    tenants = await select.order_by(Tenant.slug)
    if term:
        tenants = [t for t in tenants if term in t["slug"].lower() or term in t["name"].lower()]
    orgs = await Organization.select(Organization.tenant, Count(Organization.id, alias="n")).group_by(
        Organization.tenant)
    org_count = {str(r["tenant"]): r["n"] for r in orgs}
    domains = await TenantDomain.select(TenantDomain.tenant, TenantDomain.hostname, TenantDomain.is_primary,
                                        TenantDomain.verified)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for domain in domains:
        by_tenant.setdefault(str(domain["tenant"]), []).append(domain)
    for tenant in tenants:
        mine = by_tenant.get(str(tenant["id"]), [])
        plugins = load_json(tenant["plugins"])
        tenant["plugins"] = None if plugins is None else sorted(plugins)
        tenant["organizations"] = org_count.get(str(tenant["id"]), 0)
        tenant["primary"] = next((d["hostname"] for d in mine if d["is_primary"]), None)
        tenant["live_domains"] = sum(1 for d in mine if d["verified"])
        tenant["pending_domains"] = sum(1 for d in mine if not d["verified"])
    return tenants


async def tenant_domains_with_checks(tenant_id: uuid.UUID, tenant_status: str) -> list[dict[str, Any]]:
    """A tenant's domains with their state and the last DNS check."""
    rows = await TenantDomain.select().where(TenantDomain.tenant == tenant_id)
    checks = {c["hostname"]: c for c in await DomainCheck.select().where(DomainCheck.tenant == tenant_id)}
    rows.sort(key=lambda r: (not r["is_primary"], not r["verified"], r["hostname"]))
    for row in rows:
        row["state"] = domain_state(bool(row["verified"]), tenant_status)
        check = checks.get(row["hostname"])
        row["last_check"] = None if check is None else {**check, "checked_at": as_utc(check["checked_at"])}
        row["created_at"] = as_utc(row["created_at"])
    return rows


@get("/operator", name="operator_home", opt=PLATFORM, include_in_schema=False)
async def tenants_page(request: Request[Any, Any, Any], q: FromQuery[str] = "", page: FromQuery[int] = 1
                       ) -> Response[Any]:
    """Every tenant at a glance (``PAGE_SIZE`` a page, by slug)."""
    operator = await _signed_in(request)
    if isinstance(operator, Redirect):
        return operator
    tenants = await tenant_rows(q)
    pages = max(1, -(-len(tenants) // PAGE_SIZE))
    page = min(max(1, page), pages)
    return _page(request, "operator/tenants.html", operator=operator, q=q.strip()[:100],
                 tenants=tenants[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], page=page, pages=pages,
                 totals={"tenants": len(tenants), "active": sum(1 for t in tenants if t["status"] == "active")})


async def _tenant(slug: str) -> dict[str, Any]:
    row = await Tenant.select(Tenant.id, Tenant.slug, Tenant.name, Tenant.status, Tenant.plugins, Tenant.theme,
                              Tenant.created_at).where(Tenant.slug == slug).first()
    if row is None:
        raise NotFoundException()
    row["plugins"] = load_json(row["plugins"])
    return row


@get("/operator/tenants/{slug:str}", name="operator_tenant", opt=PLATFORM, include_in_schema=False)
async def tenant_page(request: Request[Any, Any, Any], slug: FromPath[str], saved: FromQuery[str | None] = None
                      ) -> Response[Any]:
    """One tenant: its domains with their state and last DNS check, and suspend / resume."""
    operator = await _signed_in(request)
    if isinstance(operator, Redirect):
        return operator
    tenant = await _tenant(slug)
    tenant["organizations"] = await Organization.count().where(Organization.tenant == tenant["id"])
    domains = await tenant_domains_with_checks(tenant["id"], tenant["status"])
    notice = {"suspended": "Tenant suspended: its hosts answer 404 and get no certificates.",
              "active": "Tenant resumed: its hosts serve again."}.get(saved or "")
    return _page(request, "operator/tenant.html", operator=operator, tenant=tenant, domains=domains, notice=notice)


async def _set(request: Request[Any, Any, Any], slug: str, status: str) -> Response[Any]:
    operator = await _signed_in(request)
    if isinstance(operator, Redirect):
        return operator
    actor = Actor("operator", str(operator["id"]), operator["email"])
    try:
        await set_status(_runtime(request), slug, status, actor=actor)
    except OperatorError:
        raise NotFoundException() from None
    return Redirect(f"/operator/tenants/{slug}?saved={status}")


@post("/operator/tenants/{slug:str}/suspend", name="operator_suspend", opt=PLATFORM, include_in_schema=False)
async def suspend(request: Request[Any, Any, Any], slug: FromPath[str]) -> Response[Any]:
    """Suspend a tenant (data kept; hosts answer 404; no certificates)."""
    return await _set(request, slug, "suspended")


@post("/operator/tenants/{slug:str}/resume", name="operator_resume", opt=PLATFORM, include_in_schema=False)
async def resume(request: Request[Any, Any, Any], slug: FromPath[str]) -> Response[Any]:
    """Resume a suspended tenant."""
    return await _set(request, slug, "active")


OPERATOR_HANDLERS = [login_page, login_submit, logout, tenants_page, tenant_page, suspend, resume]
