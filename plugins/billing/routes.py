"""Billing pages (``/o/{org}/billing/...``), the invoice PDF download, the tenant-admin template preview
and the Stripe webhook endpoint.

Pages read the local copy only; the provider is reached only from POST actions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from core.context import Ctx, RequestContext
from core.guards import login_required, requires
from core.mail import tenant_base_url
from core.rendering import render
from plugins.billing import pdf
from plugins.billing.details import countries, validate_details
from plugins.billing.plans import LIMIT_LABELS, billing_config, limit_text, money
from plugins.billing.providers import BillingError, provider_for, save_details
from plugins.billing.service import (
    CANCEL_REASONS,
    INVOICES_PER_PAGE,
    STATUS_BADGES,
    allowed_targets,
    card_expired,
    change_refusal,
    customer_of,
    ensure_customer,
    invoice_of,
    list_invoices,
    overdue_invoices,
    pause_refusal,
    plan_choices,
    seats_used,
    subscription_view,
)

READ = requires("billing.read")
MANAGE = requires("billing.manage")


def _org(ctx: RequestContext) -> Any:
    assert ctx.organization is not None
    return ctx.organization


async def _common(ctx: RequestContext) -> dict[str, Any]:
    config = billing_config(ctx.tenant)
    return {"config": config, "money": lambda amount, currency: money(amount, currency, config.locale),
            "limit_text": limit_text, "limit_labels": LIMIT_LABELS, "status_badges": STATUS_BADGES,
            "billing_url": ctx.org_url("billing")}


def _flash(request: Request[Any, Any, Any]) -> tuple[str, str]:
    return request.query_params.get("ok", ""), request.query_params.get("error", "")


def _back(ctx: RequestContext, path: str = "", **query: str) -> Redirect:
    from urllib.parse import urlencode

    url = ctx.org_url(f"billing/{path}".rstrip("/"))
    return Redirect(f"{url}?{urlencode(query)}" if query else url, status_code=303)


@get("/", guards=[READ], name="billing_overview")
async def overview(ctx: Ctx, request: Request[Any, Any, Any], page: FromQuery[int] = 1) -> Response[str]:
    """Plan summary, past-due banner and the invoice list (paginated)."""
    org = _org(ctx)
    page = max(1, page)
    sub = await subscription_view(ctx, org.id)
    customer = await customer_of(ctx.tenant.id, org.id)
    invoices, total = await list_invoices(ctx.tenant.id, org.id, page)
    overdue = await overdue_invoices(ctx.tenant.id, org.id)
    used, _ = await seats_used(ctx, org)
    ok, error = _flash(request)
    pages = max(1, -(-total // INVOICES_PER_PAGE))
    return await render(
        ctx, "billing/overview.html", sub=sub, customer=customer, invoices=invoices, page=page, pages=pages,
        total=total, overdue=overdue, overdue_total=sum(i["total"] - i["amount_paid"] for i in overdue),
        seats_used=used, card_expired=card_expired(customer), ok=ok, error=error, **await _common(ctx))


@get("/invoices/{invoice_id:uuid}/pdf", guards=[READ], name="billing_invoice_pdf")
async def invoice_pdf(ctx: Ctx, request: Request[Any, Any, Any], invoice_id: FromPath[uuid.UUID]) -> Response[Any]:
    """The branded PDF of one invoice of this organization: after the permission check, one query by primary key
    (scoped to the tenant and organization) names the cached file, streamed as is; an unchanged one is a 304.
    Only a version with no file yet loads the invoice and renders it. ``Server-Timing`` says which it was and how
    long the handler took, so a benchmark (or the browser's devtools) can tell rendering from the request floor."""
    started = time.perf_counter()
    org = _org(ctx)
    state = await pdf.invoice_state(ctx.tenant.id, org.id, invoice_id)
    if state is None:
        raise NotFoundException()
    path = pdf.cache_path(ctx, state)
    etag = f'"{path.stem}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(b"", status_code=304, headers=headers)
    disposition = f'inline; filename="{state["number"]}.pdf"'
    source = "cache"
    try:
        data = path.read_bytes()  # tens of kB from the page cache: cheaper inline than a thread hop or a stream
    except FileNotFoundError:
        invoice = await invoice_of(ctx.tenant.id, org.id, invoice_id)
        if invoice is None:
            raise NotFoundException() from None
        data = await pdf.invoice_pdf(ctx, invoice, await customer_of(ctx.tenant.id, org.id), org.name, path)
        source = "render"
    timing = f'pdf;desc="{source}";dur={(time.perf_counter() - started) * 1000:.2f}'
    return Response(data, media_type="application/pdf",
                    headers={**headers, "Content-Disposition": disposition, "Server-Timing": timing})


async def _plans_page(ctx: RequestContext, ok: str = "", error: str = "", status_code: int = 200) -> Response[str]:
    org = _org(ctx)
    sub = await subscription_view(ctx, org.id)
    choices = await plan_choices(ctx, org, sub.plan if sub else None, sub.row["plan_id"] if sub else None)
    return await render(ctx, "billing/plans.html", status_code=status_code, sub=sub,
                        allowed_ids={p.id for p, refusal in choices if refusal is None},
                        refusals={p.id: refusal for p, refusal in choices if refusal},
                        customer=await customer_of(ctx.tenant.id, org.id), ok=ok, error=error, **await _common(ctx))


@get("/plans", guards=[READ], name="billing_plans")
async def plans_page(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[str]:
    """Plan comparison with the current plan marked; a plan some plugin refuses shows why, disabled."""
    ok, error = _flash(request)
    return await _plans_page(ctx, ok, error)


async def _target(ctx: RequestContext, plan_id: FromPath[str]) -> tuple[Any, Any, Any]:
    org = _org(ctx)
    sub = await subscription_view(ctx, org.id)
    customer = await customer_of(ctx.tenant.id, org.id)
    if sub is None or sub.plan is None or sub.display_status == "cancelled":
        raise BillingError("This organization has no active subscription to change.")
    if customer and customer["contract_terms"]:
        raise BillingError("Your plan is set by your contract; contact your account manager to change it.")
    target = billing_config(ctx.tenant).plan(plan_id)
    if target is None or target.retired or target.id == sub.plan.id:
        raise BillingError("That plan is not available for your organization.")
    refusal = await change_refusal(ctx, org, sub.plan, target)
    if refusal:
        raise BillingError(refusal)
    return sub, sub.plan, target


@get("/plans/{plan_id:str}", guards=[MANAGE], name="billing_change_preview")
async def change_preview(ctx: Ctx, plan_id: FromPath[str]) -> Response[Any]:
    """The proration preview: charged today, credit for unused time, new recurring amount, next date."""
    try:
        sub, current, target = await _target(ctx, plan_id)
    except BillingError as exc:
        return await _plans_page(ctx, error=str(exc), status_code=400)
    try:
        provider = await provider_for(ctx, _org(ctx).id)
        proration = await provider.preview(ctx, _org(ctx), sub.row, current, target)
    except BillingError as exc:
        return await _plans_page(ctx, error=str(exc), status_code=400)
    return await render(ctx, "billing/change.html", sub=sub, proration=proration, **await _common(ctx))


@post("/plans/{plan_id:str}", guards=[MANAGE], name="billing_change_confirm")
async def change_confirm(ctx: Ctx, plan_id: FromPath[str]) -> Response[Any]:
    """Confirm a plan change through the organization's provider; asked again of every plugin first, so a refusal
    that appeared since the preview (a member joined) is a 400 with its message and nothing changes."""
    try:
        _sub, _current, target = await _target(ctx, plan_id)
        result = await (await provider_for(ctx, _org(ctx).id)).change_plan(ctx, _org(ctx), target)
    except BillingError as exc:
        return await _plans_page(ctx, error=str(exc), status_code=400)
    return _back(ctx, ok=result.message)


@get("/cancel", guards=[MANAGE], name="billing_cancel_form")
async def cancel_form(ctx: Ctx) -> Response[Any]:
    """Cancellation with a reason and a retention offer (a cheaper plan the organization may move to)."""
    org = _org(ctx)
    sub = await subscription_view(ctx, org.id)
    if sub is None or sub.plan is None or sub.display_status in {"cancelling", "cancelled"}:
        return _back(ctx, error="There is no active subscription to cancel.")
    return await render(ctx, "billing/cancel.html", sub=sub, reasons=CANCEL_REASONS, errors={}, form={},
                        **await _retention(ctx, sub), **await _common(ctx))


async def _retention(ctx: RequestContext, sub: Any) -> dict[str, Any]:
    """What the cancel page offers instead: the dearest cheaper plan this organization may move to, and a pause of
    1 to ``pause_max_months`` months where the tenant allows pauses."""
    org = _org(ctx)
    if sub is None or sub.plan is None:
        return {"offer": None, "pause_months": []}
    cheaper = [p for p in await allowed_targets(ctx, org, sub.plan) if p.monthly_price < sub.plan.monthly_price]
    config = billing_config(ctx.tenant)
    can_pause = pause_refusal(config, sub.row, 1, await customer_of(ctx.tenant.id, org.id)) is None
    return {"offer": max(cheaper, key=lambda p: p.monthly_price) if cheaper else None,
            "pause_months": list(range(1, config.pause_max_months + 1)) if can_pause else []}


@post("/cancel", guards=[MANAGE], name="billing_cancel")
async def cancel(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Cancel at the period end; a reason is required, "other" needs a few words."""
    org = _org(ctx)
    form = dict(await request.form())
    reason, feedback = str(form.get("reason", "")), str(form.get("feedback", "")).strip()[:2000]
    errors = {}
    if reason not in CANCEL_REASONS:
        errors["reason"] = "Tell us why you are leaving."
    elif reason == "other" and not feedback:
        errors["feedback"] = "Tell us in a few words what made you cancel."
    if errors:
        sub = await subscription_view(ctx, org.id)
        return await render(ctx, "billing/cancel.html", status_code=400, sub=sub, reasons=CANCEL_REASONS,
                            errors=errors, form=form, **await _retention(ctx, sub), **await _common(ctx))
    try:
        result = await (await provider_for(ctx, org.id)).cancel(ctx, org, reason, feedback)
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    return _back(ctx, ok=result.message)


@post("/reactivate", guards=[MANAGE], name="billing_reactivate")
async def reactivate(ctx: Ctx) -> Redirect:
    """Undo a pending cancellation."""
    try:
        result = await (await provider_for(ctx, _org(ctx).id)).reactivate(ctx, _org(ctx))
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    return _back(ctx, ok=result.message)


@post("/pause", guards=[MANAGE], name="billing_pause")
async def pause(ctx: Ctx, request: Request[Any, Any, Any]) -> Redirect:
    """Pause instead of cancelling: from the end of the paid period for 1 to the tenant's maximum months."""
    form = await request.form()
    try:
        months = int(str(form.get("months", "")))
    except ValueError:
        return _back(ctx, "cancel", error="Choose how many months to pause.")
    try:
        result = await (await provider_for(ctx, _org(ctx).id)).pause(ctx, _org(ctx), months)
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    return _back(ctx, ok=result.message)


@post("/resume", guards=[MANAGE], name="billing_resume")
async def resume(ctx: Ctx) -> Redirect:
    """End a pause early (or call off one that has not started yet)."""
    try:
        result = await (await provider_for(ctx, _org(ctx).id)).resume(ctx, _org(ctx))
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    return _back(ctx, ok=result.message)


@post("/retry", guards=[MANAGE], name="billing_retry")
async def retry(ctx: Ctx) -> Redirect:
    """Retry collecting overdue invoices."""
    try:
        result = await (await provider_for(ctx, _org(ctx).id)).retry_payment(ctx, _org(ctx))
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    return _back(ctx, ok=result.message)


@post("/payment-method", guards=[MANAGE], name="billing_payment_method")
async def payment_method(ctx: Ctx) -> Response[Any]:
    """Send the person to the provider's card page (Stripe Customer Portal), returning to this tenant's domain."""
    org = _org(ctx)
    return_url = f"{tenant_base_url(ctx)}{ctx.org_url('billing')}"
    try:
        url = await (await provider_for(ctx, org.id)).payment_method_url(ctx, org, return_url)
    except BillingError as exc:
        return _back(ctx, error=str(exc))
    if url is None:
        support = ctx.tenant.branding.get("support_email") or "your provider"
        return _back(ctx, error=f"Cards for this account are updated by {ctx.tenant.product_name} billing: "
                                f"write to {support}.")
    return Redirect(url, status_code=303)


async def _details_page(ctx: RequestContext, values: dict[str, Any], errors: dict[str, str], ok: str = "",
                        status_code: int = 200) -> Response[str]:
    config = billing_config(ctx.tenant)
    return await render(ctx, "billing/details.html", status_code=status_code, values=values, errors=errors, ok=ok,
                        countries=countries(config.locale), **await _common(ctx))


@get("/details", guards=[READ], name="billing_details")
async def details(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[str]:
    """Billing details shown on invoices (editable with billing.manage)."""
    org = _org(ctx)
    customer = await ensure_customer(ctx, org.id, org.name)
    return await _details_page(ctx, customer, {}, ok=request.query_params.get("ok", ""))


@post("/details", guards=[MANAGE], name="billing_details_save")
async def details_save(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Validate (VAT number per country) and save; pushed to the provider's customer."""
    org = _org(ctx)
    await ensure_customer(ctx, org.id, org.name)
    values, errors = validate_details(dict(await request.form()), billing_config(ctx.tenant).locale)
    if errors:
        return await _details_page(ctx, values, errors, status_code=400)
    try:
        await (await provider_for(ctx, org.id)).sync_details(ctx, org, values)
    except BillingError as exc:
        return await _details_page(ctx, values, {"form": str(exc)}, status_code=400)
    await save_details(ctx, org, values)
    return _back(ctx, "details", ok="Billing details saved. They appear on your next invoices.")


@get("/admin/billing/invoice-preview", guards=[login_required], name="billing_invoice_preview")
async def invoice_preview(ctx: Ctx) -> Response[bytes]:
    """Tenant admins see the invoice template of their theme filled with sample data."""
    if ctx.user is None or not ctx.user.is_tenant_admin:
        raise PermissionDeniedException("Only tenant administrators can preview the invoice template.")
    data = await pdf.sample_pdf(ctx)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="invoice-preview.pdf"', "Cache-Control": "no-store"})


PAGES = [overview, invoice_pdf, plans_page, change_preview, change_confirm, cancel_form, cancel, reactivate, pause,
         resume, retry,
         payment_method, details, details_save]
PUBLIC = [invoice_preview]
