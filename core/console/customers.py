"""The Customers page's data: the tenant's organizations with plan, status, seats, revenue and activity.

Plan, status and monthly revenue come from whichever plugin answers ``portal_billing_summaries``
(the billing plugin, from its local copy: no provider call); with none, the columns say so.
Seats are the organization's members. Monthly recurring revenue (MRR) is summed per currency
over every organization matching the search (not only the page shown), counting
subscriptions whose status still bills (active, trialing, past due); amounts are formatted
with Babel in the tenant's billing locale (``settings.billing.locale``, ``en`` by default).
The hook answers every matching organization in one call (billing: a query per 500).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from piccolo.query.functions.aggregate import Count, Max

from core.context import CurrentOrganization, RequestContext
from core.contracts import BillingSummary
from core.db import as_utc, is_sqlite
from core.tables import Membership, Organization

PAGE_SIZE = 25
BILLING_STATUSES = frozenset({"active", "trialing", "past_due"})


@dataclass
class CustomersPage:
    """One page of customers and the totals over every match."""

    rows: list[dict[str, Any]]
    matching: int
    total: int
    page: int
    pages: int
    mrr: list[tuple[str, str]] = field(default_factory=list)  # (currency, formatted amount)
    paying: int = 0
    billing_known: bool = False


def money(amount: Decimal, currency: str, locale: str) -> str:
    """``Decimal("49"), "EUR"`` → ``€49.00`` (Babel, the tenant's billing locale)."""
    from babel.core import UnknownLocaleError
    from babel.numbers import format_currency

    try:
        return format_currency(amount, currency.upper(), locale=locale)
    except (UnknownLocaleError, ValueError):
        return format_currency(amount, currency.upper(), locale="en")


def _search(query: Any, term: str) -> Any:
    if not term:
        return query
    pattern = f"%{term.replace('%', '').replace('_', '').replace(chr(92), '')}%"
    if is_sqlite():  # SQLite's LIKE is already case-insensitive (and it has no ILIKE)
        return query.where((Organization.name.like(pattern)) | (Organization.slug.like(pattern)))
    return query.where((Organization.name.ilike(pattern)) | (Organization.slug.ilike(pattern)))


async def summaries_of(ctx: RequestContext, orgs: list[dict[str, Any]]) -> dict[str, BillingSummary]:
    """The billing plugin's summaries by organization id (empty when no plugin knows billing)."""
    current = [CurrentOrganization(org["id"], org["slug"], org["name"]) for org in orgs]
    answer = await ctx.runtime.plugins.first("portal_billing_summaries", tenant=ctx.tenant, ctx=ctx, orgs=current)
    return {str(org_id): summary for org_id, summary in (answer or {}).items() if isinstance(summary, BillingSummary)}


async def customers_page(ctx: RequestContext, q: str = "", page: int = 1) -> CustomersPage:
    """Organizations matching ``q`` (name or slug), newest first, ``PAGE_SIZE`` a page, with MRR totals."""
    tenant_id = ctx.tenant.id
    term = q.strip()[:100]
    matches = await _search(Organization.select(Organization.id, Organization.slug, Organization.name,
                                                Organization.created_at).where(Organization.tenant == tenant_id),
                            term).order_by(Organization.created_at, ascending=False).order_by(Organization.slug)
    total = len(matches) if not term else await Organization.count().where(Organization.tenant == tenant_id)
    pages = max(1, math.ceil(len(matches) / PAGE_SIZE))
    page = min(max(1, page), pages)
    shown = matches[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    ids = [o["id"] for o in shown]
    stats = await Membership.select(
        Membership.organization, Count(Membership.id, alias="members"),
        Max(Membership.last_active_at, alias="last_active"),
    ).where(Membership.tenant == tenant_id, Membership.organization.is_in(ids)).group_by(
        Membership.organization) if ids else []
    by_org = {str(s["organization"]): s for s in stats}

    totals: dict[str, Decimal] = {}
    paying = 0
    summaries = await summaries_of(ctx, matches) if matches else {}
    billing_known = bool(summaries)
    for summary in summaries.values():
        if summary.status in BILLING_STATUSES and summary.monthly_amount:
            paying += 1
            currency = summary.currency.upper()
            totals[currency] = totals.get(currency, Decimal(0)) + Decimal(summary.monthly_amount)
    locale = str((ctx.tenant.settings.get("billing") or {}).get("locale") or "en")
    for org in shown:
        stat = by_org.get(str(org["id"]), {})
        last = stat.get("last_active")
        if isinstance(last, str):  # SQLite hands aggregates back as text
            last = datetime.fromisoformat(last)
        summary = summaries.get(str(org["id"]))
        org.update(
            members=stat.get("members", 0), last_active=as_utc(last), created_at=as_utc(org["created_at"]),
            plan=summary.plan_name if summary else None, status=summary.status if summary else None,
            monthly=money(Decimal(summary.monthly_amount), summary.currency, locale)
            if summary and summary.status in BILLING_STATUSES else None,
        )
    mrr = [(currency, money(amount, currency, locale)) for currency, amount in sorted(totals.items())]
    return CustomersPage(rows=shown, matching=len(matches), total=total, page=page, pages=pages, mrr=mrr,
                         paying=paying, billing_known=billing_known)
