"""Branded invoice PDFs: a Jinja2 template of the tenant's theme, rendered by WeasyPrint.

The HTML is rendered in the request (fast); the PDF in a worker process, so a render
never holds the event loop or its GIL (the loop stays free for other requests while
ten PDFs render). Results are cached on disk under ``var/invoices/<tenant>/`` keyed by
the invoice, its status and the tenant's version (branding) and theme, so a branding
change or a payment gives a fresh PDF and everything else is a file read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from core.context import RequestContext
from core.db import as_utc, utcnow
from core.tables import Tenant
from core.themes import tenant_tokens
from plugins.billing.plans import billing_config, money
from plugins.billing.service import STATUS_BADGES

TEMPLATE = "billing/invoice_pdf.html"
POOL_KEY = "billing_pdf_pool"
_font_config: Any = None


def _render_pdf(html: str) -> bytes:
    """Runs in the worker: HTML → PDF bytes with one shared font configuration per process."""
    global _font_config
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    if _font_config is None:
        _font_config = FontConfiguration()
    return HTML(string=html, base_url="/").write_pdf(font_config=_font_config)


def pool_for(ctx: RequestContext) -> Executor | None:
    """The app's PDF worker pool (``PORTAL_BILLING_PDF_WORKERS``, default 2; 0 renders in a thread)."""
    state = ctx.runtime.state
    if POOL_KEY not in state:
        workers = int(ctx.runtime.settings.extra.get("billing_pdf_workers", "2"))
        state[POOL_KEY] = (ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
                           if workers > 0 else None)
    return state[POOL_KEY]


async def render_pdf(ctx: RequestContext, html: str) -> bytes:
    """Render off the event loop: in the worker pool, or a thread when pooling is switched off."""
    pool = pool_for(ctx)
    if pool is None:
        return await anyio.to_thread.run_sync(_render_pdf, html)
    return await asyncio.get_running_loop().run_in_executor(pool, _render_pdf, html)


def shutdown_pool(state: dict[str, Any]) -> None:
    """Stop the workers (app shutdown)."""
    pool = state.pop(POOL_KEY, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


async def logo_data_uri(ctx: RequestContext) -> str:
    """The tenant's logo (or its theme's) inline, so the PDF needs no HTTP fetch."""
    if ctx.tenant.has_logo:
        row = await Tenant.select(Tenant.logo, Tenant.logo_type).where(Tenant.id == ctx.tenant.id).first()
        if row and row["logo"]:
            return f"data:{row['logo_type']};base64,{base64.b64encode(bytes(row['logo'])).decode()}"
    path = ctx.theme.default_logo
    if path is None:
        return ""
    return f"data:image/svg+xml;base64,{base64.b64encode(path.read_bytes()).decode()}"


def _country(code: str, locale: str) -> str:
    from babel import Locale

    return Locale.parse(locale).territories.get(code.upper(), code) if code else ""


def _dt(value: Any) -> datetime | None:
    if isinstance(value, str):
        return as_utc(datetime.fromisoformat(value))
    return as_utc(value)


async def invoice_html(ctx: RequestContext, invoice: dict[str, Any], customer: dict[str, Any] | None,
                       org_name: str, *, sample: bool = False) -> str:
    """The invoice as HTML from the theme's ``billing/invoice_pdf.html``."""
    config = billing_config(ctx.tenant)
    env = ctx.runtime.themes.environment(ctx.theme)
    tokens = tenant_tokens(ctx.theme, ctx.tenant.branding)
    lines = [{**line, "period_start": _dt(line.get("period_start")), "period_end": _dt(line.get("period_end"))}
             for line in invoice["lines"]]
    return env.get_template(TEMPLATE).render(
        tenant=ctx.tenant, brand=ctx.tenant.branding, product_name=ctx.tenant.product_name, tokens=tokens,
        primary=tokens.get("color-primary", "#4f46e5"), accent=tokens.get("color-accent", "#f59e0b"),
        logo=await logo_data_uri(ctx), invoice={**invoice, "lines": lines}, customer=customer or {},
        org_name=org_name, country_name=_country((customer or {}).get("country", ""), config.locale),
        tax_label=config.tax_label, sample=sample, status_badges=STATUS_BADGES,
        money=lambda amount: money(amount, invoice["currency"], config.locale),
        issued=_dt(invoice["issued_at"]), due=_dt(invoice.get("due_at")), paid=_dt(invoice.get("paid_at")),
        period_start=_dt(invoice.get("period_start")), period_end=_dt(invoice.get("period_end")),
    )


def _stamp(value: Any) -> str:
    """A timestamp in one spelling whichever way the database returned it (naive SQLite, aware PostgreSQL)."""
    moment = _dt(value)
    return moment.isoformat() if moment is not None else ""


def cache_digest(ctx: RequestContext, state: dict[str, Any]) -> str:
    """The version of an invoice's PDF: its state (status, payment), the customer's details and the tenant's
    branding and theme. Also the download's ETag."""
    key = json.dumps([str(state["id"]), state["status"], int(state["amount_paid"] or 0), _stamp(state["paid_at"]),
                      ctx.tenant.version, ctx.tenant.theme, _stamp(state["customer_updated_at"])])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def cache_path(ctx: RequestContext, state: dict[str, Any]) -> Path:
    """Where the PDF of this invoice, in this state and this branding, is kept."""
    return (ctx.runtime.settings.var_dir / "invoices" / str(ctx.tenant.id)
            / f"{state['id']}-{cache_digest(ctx, state)}.pdf")


STATE_SQL = """
SELECT i.id, i.number, i.status, i.amount_paid, i.paid_at, c.updated_at AS customer_updated_at
FROM billing_invoice i
LEFT JOIN billing_customer c ON c.organization = i.organization AND c.tenant = i.tenant
WHERE i.id = {} AND i.tenant = {} AND i.organization = {}
"""


async def invoice_state(tenant_id: Any, org_id: Any, invoice_id: Any) -> dict[str, Any] | None:
    """What the cache key needs, in one query by primary key (None for another organization's invoice): the
    cached download costs this query and a file stat, never the invoice's lines or a render."""
    from plugins.billing.tables import Invoice

    rows = await Invoice.raw(STATE_SQL, invoice_id, tenant_id, org_id)
    return rows[0] if rows else None


async def write_cached(path: Path, data: bytes) -> None:
    """Write atomically: a concurrent reader sees the old file or the whole new one."""
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{id(data)}.tmp")
    await anyio.Path(tmp).write_bytes(data)
    os.replace(tmp, path)


async def invoice_pdf(ctx: RequestContext, invoice: dict[str, Any], customer: dict[str, Any] | None,
                      org_name: str, path: Path) -> bytes:
    """Render this version of the invoice and keep it at ``path`` (the caller found no cached file there)."""
    data = await render_pdf(ctx, await invoice_html(ctx, invoice, customer, org_name))
    await write_cached(path, data)
    return data


def sample_invoice(ctx: RequestContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample data for the tenant-admin preview: the tenant's first plan, a seat add-on, tax, paid."""
    from plugins.billing.service import add_months, tax_of

    config = billing_config(ctx.tenant)
    plan = config.plans[0] if config.plans else None
    currency = plan.currency if plan else config.currency
    price = plan.price if plan else 4900
    start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = add_months(start, 1)
    lines = [
        {"description": f"{plan.name if plan else 'Team'} plan (monthly)", "quantity": 1, "unit_amount": price,
         "amount": price, "period_start": start, "period_end": end},
        {"description": "Additional seats", "quantity": 3, "unit_amount": 900, "amount": 2700,
         "period_start": start, "period_end": end},
    ]
    subtotal = price + 2700
    tax = tax_of(subtotal, config.tax_rate)
    invoice = {"id": "sample", "number": "SAMPLE-0001", "status": "paid", "currency": currency, "subtotal": subtotal,
               "tax": tax, "tax_rate": str(config.tax_rate), "total": subtotal + tax, "amount_paid": subtotal + tax,
               "lines": lines, "issued_at": start, "due_at": start + timedelta(days=14), "paid_at": start,
               "period_start": start, "period_end": end, "payment_note": "Visa •••• 4242", "hosted_url": ""}
    customer = {"company_name": "Example Customer Ltd", "billing_email": "finance@customer.example",
                "address_line1": "1 Sample Street", "postal_code": "12345", "city": "Sampleton", "country": "DE",
                "tax_id": "DE136695976", "po_number": "PO-12345"}
    return invoice, customer


async def sample_pdf(ctx: RequestContext) -> bytes:
    """The preview PDF (never cached: the admin is checking a template they are editing)."""
    invoice, customer = sample_invoice(ctx)
    return await render_pdf(ctx, await invoice_html(ctx, invoice, customer, "Example Customer", sample=True))
