"""The tenant console at ``/admin`` (tenant admins only), the platform's ``/_tls/ask`` and operator view.

Pages: branding (with a live preview and logo upload), sections (plugins), domains,
plans and customers. Every form posts with the CSRF token and re-renders with errors
(400) on a mistake; every save redirects with a notice (post/redirect/get).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from core.console import customers as customer_service
from core.console import domains as domain_service
from core.console import favicon as favicon_service
from core.console import plans as plan_service
from core.console import support
from core.console.branding import BRANDING_FIELDS, parse_branding
from core.console.guard import tenant_admin
from core.console.images import MAX_FAVICON_BYTES, MAX_LOGO_BYTES, LogoError, clean_favicon, clean_logo
from core.console.operator_web import OPERATOR_HANDLERS
from core.console.service import ConsoleError, change_tenant, tenant_row
from core.console.tls import tls_ask
from core.context import Ctx, RequestContext
from core.contracts import NavItem
from core.db import atomic
from core.events import Target, emit
from core.plugins import CORE_SLUG
from core.rendering import page_context, render
from core.tables import Organization, Tenant
from core.tenancy import normalize_host
from core.themes import stylesheet, tenant_tokens

TEMPLATE_DIR = Path(__file__).parent / "templates"
INVOICE_PREVIEW = "/admin/billing/invoice-preview"
CONSOLE_NAV = [
    NavItem("Branding", "/admin/branding", order=10),
    NavItem("Domains", "/admin/domains", order=20),
    NavItem("Sections", "/admin/sections", order=30),
    NavItem("Plans", "/admin/plans", order=40),
    NavItem("Customers", "/admin/customers", order=50),
]
NOTICES = {
    "branding": "Branding saved. Every page of your portal uses it from now on.",
    "logo": "Logo updated.",
    "logo-removed": "Logo removed; your theme's logo is shown instead.",
    "favicon": "Favicon updated. Browsers may keep the old one for a few minutes.",
    "favicon-removed": "Favicon removed; your logo is used in browser tabs instead.",
    "sections": "Sections saved.",
    "primary": "Primary domain changed. Emails link to it from now on.",
    "removed": "Domain removed.",
    "plan-created": "Plan created.",
    "plan-updated": "Plan saved.",
    "plan-retired": "Plan retired: no new switches to it; organizations on it keep it.",
    "plan-restored": "Plan offered again.",
}


async def console_page(ctx: RequestContext, template: str, *, status_code: int = 200, **context: Any) -> Response[Any]:
    """A console page: the portal's layout with the console's navigation."""
    results = await ctx.runtime.plugins.call("portal_admin_nav_items", tenant=ctx.tenant, ctx=ctx)
    contributed = [item for _slug, items in results for item in items]
    nav = sorted([*CONSOLE_NAV, *contributed], key=lambda item: (item.order, item.label))
    return await render(ctx, template, status_code=status_code, nav_items=nav, console=True, **context)


def _notice(saved: str | None) -> str | None:
    return NOTICES.get(saved or "")


def _route_exists(request: Request[Any, Any, Any], path: str) -> bool:
    return any(route.path == path for route in request.app.routes)


# -- overview ------------------------------------------------------------------------------------------

@get("/", name="console_home")
async def console_home() -> Redirect:
    """The console opens on branding, the first thing a new reseller sets up."""
    return Redirect("/admin/branding")


# -- branding ------------------------------------------------------------------------------------------

async def _branding_page(ctx: RequestContext, request: Request[Any, Any, Any], *, status_code: int = 200,
                         values: dict[str, str] | None = None, theme: str | None = None,
                         errors: dict[str, str] | None = None, logo_error: str | None = None,
                         favicon_error: str | None = None, notice: str | None = None) -> Response[Any]:
    row = await tenant_row(ctx.tenant.id)
    branding = row["branding"]
    current_theme = ctx.runtime.themes.get(row["theme"])
    tokens = tenant_tokens(current_theme, {})
    form_values = values or {k: str(branding.get(k, "") or "") for k in BRANDING_FIELDS}
    chosen = theme or row["theme"]
    preview_query = urlencode({**{k: v for k, v in form_values.items() if v}, "theme": chosen})
    return await console_page(
        ctx, "console/branding.html", status_code=status_code, values=form_values, chosen_theme=chosen,
        themes=list(ctx.runtime.themes.themes.values()), errors=errors or {}, logo_error=logo_error,
        notice=notice, theme_tokens=tokens, preview_url=f"/admin/branding/preview?{preview_query}",
        invoice_preview=INVOICE_PREVIEW if _route_exists(request, INVOICE_PREVIEW)
        and ctx.runtime.plugins.is_enabled("billing", ctx.tenant) else None,
        has_logo=bool(row["logo_type"]), max_logo_kb=MAX_LOGO_BYTES // 1024,
        has_favicon=await favicon_service.has_favicon(ctx.tenant.id), favicon_error=favicon_error,
        max_favicon_kb=MAX_FAVICON_BYTES // 1024, favicon_version=row["version"],
    )


@get("/branding", name="console_branding")
async def branding_page(ctx: Ctx, request: Request[Any, Any, Any], saved: FromQuery[str | None] = None
                        ) -> Response[Any]:
    """Brand form, logo upload and the live preview."""
    return await _branding_page(ctx, request, notice=_notice(saved))


@post("/branding", name="console_branding_save")
async def branding_save(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Save branding and theme; colour combinations failing WCAG AA are refused with the reason."""
    form = await request.form()
    row = await tenant_row(ctx.tenant.id)
    draft = parse_branding(form, ctx.runtime.themes.themes, row["theme"])
    if draft.errors:
        return await _branding_page(ctx, request, status_code=400, values=draft.values, theme=draft.theme,
                                    errors=draft.errors)
    branding = draft.branding(row["branding"])
    before = {k: row["branding"].get(k) for k in BRANDING_FIELDS} | {"theme": row["theme"]}
    after = {k: branding.get(k) for k in BRANDING_FIELDS} | {"theme": draft.theme}
    changed = [k for k in after if before.get(k) != after.get(k)]
    if changed:
        await change_tenant(ctx, "console.branding.updated",
                            updates={Tenant.branding: branding, Tenant.theme: draft.theme},
                            before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return Redirect("/admin/branding?saved=branding")


@post("/branding/logo", name="console_logo", request_max_body_size=MAX_LOGO_BYTES * 2 + 64 * 1024)
async def logo_upload(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Upload (validated, sanitised) or remove the logo."""
    form = await request.form()
    if form.get("remove"):
        if (await tenant_row(ctx.tenant.id))["logo_type"]:
            await change_tenant(ctx, "console.logo.removed", updates={Tenant.logo: None, Tenant.logo_type: None},
                                before={"logo": True}, after={"logo": False})
        return Redirect("/admin/branding?saved=logo-removed")
    upload = form.get("logo")
    if not isinstance(upload, UploadFile):
        return await _branding_page(ctx, request, status_code=400, logo_error="Choose an image file to upload.")
    data = await upload.read(MAX_LOGO_BYTES + 1)
    try:
        image = clean_logo(data, upload.filename or "")
    except LogoError as exc:
        return await _branding_page(ctx, request, status_code=400, logo_error=str(exc))
    row = await tenant_row(ctx.tenant.id)
    await change_tenant(ctx, "console.logo.updated", updates={Tenant.logo: image.data, Tenant.logo_type:
                                                                image.content_type},
                        before={"logo_type": row["logo_type"]},
                        after={"logo_type": image.content_type, "bytes": len(image.data),
                               "filename": (upload.filename or "")[:200]})
    return Redirect("/admin/branding?saved=logo")


@post("/branding/favicon", name="console_favicon", request_max_body_size=MAX_FAVICON_BYTES * 2 + 64 * 1024)
async def favicon_upload(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Upload (ICO/PNG/SVG, validated and sanitised) or remove the favicon shown in browser tabs."""
    form = await request.form()
    if form.get("remove"):
        await favicon_service.remove(ctx)
        return Redirect("/admin/branding?saved=favicon-removed")
    upload = form.get("favicon")
    if not isinstance(upload, UploadFile):
        return await _branding_page(ctx, request, status_code=400, favicon_error="Choose an icon file to upload.")
    data = await upload.read(MAX_FAVICON_BYTES + 1)
    try:
        image = clean_favicon(data, upload.filename or "")
    except LogoError as exc:
        return await _branding_page(ctx, request, status_code=400, favicon_error=str(exc))
    await favicon_service.replace(ctx, image, upload.filename or "")
    return Redirect("/admin/branding?saved=favicon")


def _draft_from_query(ctx: RequestContext, request: Request[Any, Any, Any]) -> tuple[Any, dict[str, Any]]:
    draft = parse_branding(request.query_params, ctx.runtime.themes.themes, ctx.tenant.theme)
    clean = {k: v for k, v in draft.values.items() if v and k not in draft.errors}
    return draft, {**ctx.tenant.branding, **{k: None for k in BRANDING_FIELDS}, **clean}


@get("/branding/preview.css", name="console_preview_css")
async def preview_css(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[str]:
    """The stylesheet the portal would get with the draft values (nothing is saved)."""
    draft, branding = _draft_from_query(ctx, request)
    css = stylesheet(ctx.runtime.themes.get(draft.theme), branding)
    return Response(css, media_type="text/css", headers={"Cache-Control": "no-store"})


@get("/branding/preview", name="console_preview")
async def preview(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[str]:
    """A sample portal page rendered with the draft brand, for the preview pane (nothing is saved)."""
    draft, branding = _draft_from_query(ctx, request)
    theme = ctx.runtime.themes.get(draft.theme)
    context = await page_context(ctx)
    context.update(
        theme=theme, brand=branding, product_name=branding.get("product_name") or ctx.tenant.name,
        stylesheet_url="/admin/branding/preview.css?" + request.url.query,
        nav_items=[NavItem("Overview", "#overview"), NavItem("Billing", "#billing"), NavItem("Usage", "#usage"),
                   NavItem("Team", "#team"), NavItem("API keys", "#keys")],
        request_path="#overview", organization=None, problems=draft.errors,
    )
    html = ctx.runtime.themes.environment(theme).get_template("console/preview.html").render(**context)
    return Response(html, media_type="text/html", headers={"Cache-Control": "no-store"})


# -- sections ------------------------------------------------------------------------------------------

def _plugin_rows(ctx: RequestContext, stored: list[str] | None) -> list[dict[str, Any]]:
    enabled = ctx.runtime.plugins.enabled_for(ctx.tenant)
    rows = []
    for slug, loaded in sorted(ctx.runtime.plugins.plugins.items(), key=lambda item: item[1].info.label.lower()):
        if slug == CORE_SLUG:
            continue
        rows.append({"slug": slug, "label": loaded.info.label, "version": loaded.info.version,
                     "description": loaded.info.description, "source": loaded.source,
                     "enabled": slug in enabled})
    return rows


@get("/sections", name="console_sections")
async def sections_page(ctx: Ctx, saved: FromQuery[str | None] = None) -> Response[Any]:
    """Installed plugins with description and version, and whether this portal shows them."""
    row = await tenant_row(ctx.tenant.id)
    return await console_page(ctx, "console/sections.html", plugins=_plugin_rows(ctx, row["plugins"]),
                              notice=_notice(saved))


@post("/sections", name="console_sections_save")
async def sections_save(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Switch plugins on or off for this tenant (a disabled plugin's pages answer 404 here)."""
    form = await request.form()
    installed = {slug for slug in ctx.runtime.plugins.plugins if slug != CORE_SLUG}
    chosen = {str(s) for s in form.getall("plugins", [])} & installed
    row = await tenant_row(ctx.tenant.id)
    before = sorted(ctx.runtime.plugins.enabled_for(ctx.tenant) - {CORE_SLUG})
    kept_uninstalled = [s for s in (row["plugins"] or []) if s not in installed]
    stored = sorted(chosen) + kept_uninstalled
    if sorted(chosen) != before or row["plugins"] is None:
        await change_tenant(ctx, "console.sections.updated", updates={Tenant.plugins: stored},
                            before={"enabled": before}, after={"enabled": sorted(chosen)})
    return Redirect("/admin/sections?saved=sections")


# -- domains -------------------------------------------------------------------------------------------

async def _domains_page(ctx: RequestContext, *, status_code: int = 200, error: str | None = None,
                        notice: str | None = None, draft: str = "", check: Any = None,
                        checked_host: str | None = None) -> Response[Any]:
    rows = await domain_service.tenant_domains(ctx.tenant.id)
    for row in rows:
        row["records"] = [] if row["verified"] else domain_service.records_for(ctx, row["hostname"])
        row["pair"] = domain_service.partner_of(row["hostname"])
    current = ctx.request.url.hostname if ctx.request is not None else None
    return await console_page(ctx, "console/domains.html", status_code=status_code, domains=rows, error=error,
                              notice=notice, draft=draft, check=check, checked_host=checked_host,
                              current_host=normalize_host(current), cname_target=domain_service.cname_target(ctx),
                              ttl=int(ctx.runtime.settings.tenant_cache_ttl),
                              broadcast=getattr(ctx.runtime.directory, "broadcast", None) is not None)


@get("/domains", name="console_domains")
async def domains_page(ctx: Ctx, saved: FromQuery[str | None] = None) -> Response[Any]:
    """The tenant's domains, the DNS records pending ones need, and their actions."""
    return await _domains_page(ctx, notice=_notice(saved))


@post("/domains", name="console_domain_add")
async def domain_add(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Add a custom domain (pending until verified)."""
    form = await request.form()
    raw = str(form.get("hostname", ""))
    try:
        added = await domain_service.add_domain(ctx, raw, with_partner=bool(form.get("with_partner")))
    except ConsoleError as exc:
        return await _domains_page(ctx, status_code=400, error=str(exc), draft=raw[:253])
    return await _domains_page(ctx, notice=f"Added {' and '.join(added)}. Create the DNS records below, then "
                                           "press Verify.")


@post("/domains/{domain_id:str}/verify", name="console_domain_verify")
async def domain_verify(ctx: Ctx, domain_id: FromPath[str]) -> Response[Any]:
    """Check the DNS records; live on success, what was found otherwise."""
    limiter = ctx.runtime.limiter("dns_verify_limiter", 30, 60)
    key = str(ctx.tenant.id)
    if await limiter.retry_after(key):
        return await _domains_page(ctx, status_code=429, error="You checked DNS many times in a short while; "
                                                               "wait a minute and try again.")
    await limiter.hit(key)
    try:
        live, check = await domain_service.verify_domain(ctx, domain_id)
    except ConsoleError as exc:
        return await _domains_page(ctx, status_code=400, error=str(exc))
    host = next((d["hostname"] for d in await domain_service.tenant_domains(ctx.tenant.id)
                 if str(d["id"]) == domain_id), None)
    if live:
        return await _domains_page(ctx, notice=f"Verified: {' and '.join(live)} now serve your portal.",
                                   check=check, checked_host=host)
    return await _domains_page(ctx, status_code=400, check=check, checked_host=host,
                               error="We could not find the verification TXT record yet. DNS changes can take "
                                     "a few minutes (sometimes hours) to appear.")


@post("/domains/{domain_id:str}/primary", name="console_domain_primary")
async def domain_primary(ctx: Ctx, domain_id: FromPath[str]) -> Response[Any]:
    """Make a live domain primary."""
    try:
        await domain_service.set_primary(ctx, domain_id)
    except ConsoleError as exc:
        return await _domains_page(ctx, status_code=400, error=str(exc))
    return Redirect("/admin/domains?saved=primary")


@post("/domains/{domain_id:str}/remove", name="console_domain_remove")
async def domain_remove(ctx: Ctx, domain_id: FromPath[str]) -> Response[Any]:
    """Remove a domain (not the primary, not the last live one)."""
    current = normalize_host(ctx.request.url.hostname if ctx.request is not None else None)
    try:
        await domain_service.remove_domain(ctx, domain_id, current)
    except ConsoleError as exc:
        return await _domains_page(ctx, status_code=400, error=str(exc))
    return Redirect("/admin/domains?saved=removed")


# -- plans ---------------------------------------------------------------------------------------------

@get("/plans", name="console_plans")
async def plans_page(ctx: Ctx, saved: FromQuery[str | None] = None) -> Response[Any]:
    """The tenant's plans: active ones organizations can switch between, and retired ones."""
    plans = await plan_service.list_plans(ctx.tenant.id)
    switches = await plan_service.plan_switches(ctx.tenant.id)
    names = {p["id"]: p.get("name", p["id"]) for p in plans}
    for plan in plans:
        plan["display_price"] = plan_service.format_price(plan)
        targets = switches.get(plan["id"])
        plan["switch_names"] = None if targets is None else [names.get(t, t) for t in targets]
        plan["unit_price_rows"] = plan_service.unit_price_rows_of(plan)
    return await console_page(ctx, "console/plans.html", plans=plans, notice=_notice(saved),
                              billing_enabled=ctx.runtime.plugins.is_enabled("billing", ctx.tenant))


UNIT_PRICE_BLANK_ROWS = 3
"""Empty unit-price rows under the filled ones (the page's script shows them one at a time)."""


def _plan_form_values(plan: dict[str, Any] | None) -> dict[str, str]:
    if plan is None:
        return {"id": "", "name": "", "price": "", "currency": "EUR", "interval": "month",
                "limits": "seats = 5", "features": "", "stripe_price_id": "", "description": ""}
    limits = "\n".join(f"{k} = {'unlimited' if v == -1 else v}" for k, v in (plan.get("limits") or {}).items())
    return {"id": plan["id"], "name": plan.get("name", ""), "price": plan_service.major_units(plan),
            "currency": str(plan.get("currency", "")), "interval": plan.get("interval", "month"),
            "limits": limits, "features": "\n".join(plan.get("features") or []),
            "stripe_price_id": plan.get("stripe_price_id") or "", "description": str(plan.get("description") or "")}


async def _plan_form(ctx: RequestContext, plan: dict[str, Any] | None, *, values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None, status_code: int = 200,
                     switch_to: list[str] | None = None, keep_switches: bool = False,
                     unit_prices: list[dict[str, Any]] | None = None) -> Response[Any]:
    others = [p for p in await plan_service.list_plans(ctx.tenant.id) if not plan or p["id"] != plan["id"]]
    if plan is not None and not keep_switches:
        switch_to = (await plan_service.plan_switches(ctx.tenant.id)).get(plan["id"])
    return await console_page(ctx, "console/plan_form.html", status_code=status_code, plan=plan,
                              values=values or _plan_form_values(plan), errors=errors or {},
                              intervals=plan_service.INTERVALS, other_plans=others, switch_to=switch_to,
                              unit_prices=plan_service.unit_price_rows_of(plan) if unit_prices is None else unit_prices,
                              blank_unit_prices=UNIT_PRICE_BLANK_ROWS,
                              metric_choices=await plan_service.metric_choices(ctx))


@get("/plans/new", name="console_plan_new")
async def plan_new(ctx: Ctx) -> Response[Any]:
    """An empty plan form."""
    return await _plan_form(ctx, None)


async def _find_plan(ctx: RequestContext, plan_id: str) -> dict[str, Any] | None:
    return next((p for p in await plan_service.list_plans(ctx.tenant.id) if p.get("id") == plan_id), None)


@get("/plans/{plan_id:str}", name="console_plan_edit")
async def plan_edit(ctx: Ctx, plan_id: FromPath[str]) -> Response[Any]:
    """Edit a plan (its id stays)."""
    plan = await _find_plan(ctx, plan_id)
    if plan is None:
        return await console_page(ctx, "console/plans.html", status_code=404, plans=[], notice=None,
                                  error="That plan does not exist.", billing_enabled=True)
    return await _plan_form(ctx, plan)


async def _save_plan(ctx: RequestContext, request: Request[Any, Any, Any], existing: dict[str, Any] | None
                     ) -> Response[Any]:
    form = await request.form()
    taken = {p["id"] for p in await plan_service.list_plans(ctx.tenant.id)}
    plan, errors = plan_service.parse_plan(form, existing=existing, taken_ids=taken)
    switch_to = plan_service.parse_switches(form, plan["id"], taken)
    if errors:
        values = {k: str(form.get(k, "")) for k in _plan_form_values(None)}
        return await _plan_form(ctx, existing, values=values, errors=errors, status_code=400, switch_to=switch_to,
                                keep_switches=True, unit_prices=plan_service.unit_price_rows(form))
    try:
        created = await plan_service.save_plan(ctx, plan, switch_to)
    except ConsoleError as exc:
        return await _plan_form(ctx, existing, errors={"name": str(exc)}, status_code=400)
    return Redirect(f"/admin/plans?saved={'plan-created' if created else 'plan-updated'}")


@post("/plans", name="console_plan_create")
async def plan_create(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Create a plan."""
    return await _save_plan(ctx, request, None)


@post("/plans/{plan_id:str}", name="console_plan_update")
async def plan_update(ctx: Ctx, request: Request[Any, Any, Any], plan_id: FromPath[str]) -> Response[Any]:
    """Save a plan's changes."""
    plan = await _find_plan(ctx, plan_id)
    if plan is None:
        return Redirect("/admin/plans")
    return await _save_plan(ctx, request, plan)


@post("/plans/{plan_id:str}/retire", name="console_plan_retire")
async def plan_retire(ctx: Ctx, request: Request[Any, Any, Any], plan_id: FromPath[str]) -> Response[Any]:
    """Retire a plan, or offer it again (``restore=1``)."""
    form = await request.form()
    restore = bool(form.get("restore"))
    try:
        await plan_service.set_retired(ctx, plan_id, not restore)
    except ConsoleError:
        return Redirect("/admin/plans")
    return Redirect(f"/admin/plans?saved={'plan-restored' if restore else 'plan-retired'}")


# -- customers -----------------------------------------------------------------------------------------

@get("/customers", name="console_customers")
async def customers_page(ctx: Ctx, q: FromQuery[str] = "", page: FromQuery[int] = 1) -> Response[Any]:
    """The tenant's organizations with plan, status, seats, monthly revenue and last activity; search, pages."""
    data = await customer_service.customers_page(ctx, q, page)
    return await console_page(ctx, "console/customers.html", data=data, q=q.strip()[:100],
                              organizations=data.rows, total=data.total)


@post("/customers/{org_slug:str}/support", name="console_support_open")
async def support_open(ctx: Ctx, org_slug: FromPath[str]) -> Response[Any]:
    """Open the read-only support view of one organization (recorded in the audit log, time-limited)."""
    org = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.tenant == ctx.tenant.id, Organization.slug == org_slug).first()
    if org is None:
        return Redirect("/admin/customers")
    value, expires = support.issue(ctx, org["id"])
    async with atomic():
        await emit(ctx, "console.support_view.opened", target=Target("organization", str(org["id"]), org["name"]),
                   organization_id=org["id"], data={
                       "organization": org["slug"], "admin": ctx.user.email if ctx.user else None,
                       "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
                       "minutes": support.SUPPORT_MINUTES})
    return Redirect(f"/o/{org['slug']}/", cookies=[Cookie(
        key=support.COOKIE, value=value, path="/", httponly=True, samesite="lax", secure=ctx.secure,
        max_age=support.SUPPORT_MINUTES * 60)])


@post("/support/end", name="console_support_end")
async def support_end(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Leave the support view (recorded) and go back to Customers."""
    token = support.read(ctx, request.cookies.get(support.COOKIE))
    if token is not None:
        org = await Organization.select(Organization.id, Organization.name).where(
            Organization.id == token[0], Organization.tenant == ctx.tenant.id).first()
        if org is not None:
            async with atomic():
                await emit(ctx, "console.support_view.closed", organization_id=org["id"],
                           target=Target("organization", str(org["id"]), org["name"]))
    return Redirect("/admin/customers", cookies=[Cookie(key=support.COOKIE, value="", path="/", max_age=0,
                                                        httponly=True, samesite="lax", secure=ctx.secure)])


CONSOLE_PAGES = [
    console_home, branding_page, branding_save, logo_upload, favicon_upload, preview_css, preview, sections_page,
    sections_save, domains_page, domain_add, domain_verify, domain_primary, domain_remove, plans_page, plan_new,
    plan_edit, plan_create, plan_update, plan_retire, customers_page, support_open, support_end,
]


def console_handlers() -> list[Any]:
    """A fresh ``/admin`` router (tenant admins only) and the platform's ``/_tls/ask``, for one app."""
    return [Router(path="/admin", guards=[tenant_admin], include_in_schema=False, route_handlers=CONSOLE_PAGES),
            tls_ask, *OPERATOR_HANDLERS]
