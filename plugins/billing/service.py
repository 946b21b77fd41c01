"""Billing logic with no HTTP in it: the local copy, proration, plan changes, cancellation.

Pages read only our tables (a page view never calls Stripe). Actions go through a
``BillingProvider`` (``providers.py``): the LocalProvider writes the ledger here; the
StripeProvider calls Stripe, then mirrors the answer through the same functions.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core.context import RequestContext
from core.contracts import BillingSummary, PlanOffer
from core.db import as_utc, load_json, utcnow
from core.tables import Membership, User
from plugins.billing.plans import BillingConfig, Plan, billing_config, to_major
from plugins.billing.tables import BillingCustomer, Invoice, Subscription

INVOICES_PER_PAGE = 10
CANCEL_REASONS = {
    "too_expensive": "Too expensive",
    "missing_features": "Missing features",
    "switched_service": "Switched to another service",
    "other": "Other",
}
STATUS_BADGES = {"paid": "success", "open": "info", "void": "neutral", "uncollectible": "danger", "draft": "neutral"}


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (clamped to the month's last day)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def next_period_end(start: datetime, interval: str) -> datetime:
    """When a period that began at ``start`` ends."""
    return add_months(start, 12 if interval == "year" else 1)


def tax_of(amount: int, rate: Decimal) -> int:
    """Tax in minor units, rounded half up (negative for credits)."""
    return int((Decimal(amount) * rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class SubscriptionView:
    """What the plan summary shows."""

    row: dict[str, Any]
    plan: Plan | None
    pending_plan: Plan | None
    display_status: str

    @property
    def period_end(self) -> datetime | None:
        """Next billing date (or the end of service when cancelling)."""
        return as_utc(self.row["current_period_end"])

    @property
    def pause_starts_at(self) -> datetime | None:
        """When a pause begins (the end of the paid period)."""
        return as_utc(self.row.get("pause_starts_at"))

    @property
    def pause_resumes_at(self) -> datetime | None:
        """When billing resumes after a pause (None for a pause that runs until someone resumes it)."""
        return as_utc(self.row.get("pause_resumes_at"))

    @property
    def pause_scheduled(self) -> bool:
        """Whether a pause is set at all (begun or not, with or without a resume date): the page shows it."""
        return pause_set(self.row)


def pause_set(row: dict[str, Any]) -> bool:
    """A pause is recorded, begun or not, dated or until resumed: it can't be paused again, only resumed."""
    return row.get("pause_starts_at") is not None or row.get("pause_resumes_at") is not None


def paused_now(row: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether the subscription is inside a pause: from the paid period's end to the resume date, or
    indefinitely when the pause has no resume date (Stripe's ``pause_collection`` without ``resumes_at``)."""
    starts, resumes = as_utc(row.get("pause_starts_at")), as_utc(row.get("pause_resumes_at"))
    now = now or utcnow()
    return starts is not None and starts <= now and (resumes is None or now < resumes)


def display_status(row: dict[str, Any], now: datetime | None = None) -> str:
    """active / trialing / past_due / paused / cancelling / cancelled: one word for the badge."""
    if row["status"] == "canceled":
        return "cancelled"
    if row["cancel_at_period_end"]:
        return "cancelling"
    if row["status"] == "active" and paused_now(row, now):
        return "paused"
    return str(row["status"])


async def customer_of(tenant_id: uuid.UUID, org_id: uuid.UUID) -> dict[str, Any] | None:
    """The organization's billing customer row."""
    return await BillingCustomer.select().where(
        BillingCustomer.tenant == tenant_id, BillingCustomer.organization == org_id).first()


async def ensure_customer(ctx: RequestContext, org_id: uuid.UUID, org_name: str) -> dict[str, Any]:
    """The customer row, created with the organization's name on first use (once, even when two requests race)."""
    row = await customer_of(ctx.tenant.id, org_id)
    if row is None:
        await BillingCustomer.insert(BillingCustomer(
            id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org_id, company_name=org_name, updated_at=utcnow(),
        )).on_conflict(target=BillingCustomer.organization, action="DO NOTHING")
        row = await customer_of(ctx.tenant.id, org_id)
    assert row is not None
    return row


async def subscription_of(tenant_id: uuid.UUID, org_id: uuid.UUID) -> dict[str, Any] | None:
    """The organization's subscription row."""
    return await Subscription.select().where(
        Subscription.tenant == tenant_id, Subscription.organization == org_id).first()


async def subscription_view(ctx: RequestContext, org_id: uuid.UUID) -> SubscriptionView | None:
    """The subscription with its plan resolved against the tenant's current plans."""
    row = await subscription_of(ctx.tenant.id, org_id)
    if row is None:
        return None
    config = billing_config(ctx.tenant)
    return SubscriptionView(row, config.plan(row["plan_id"]), config.plan(row["pending_plan_id"]),
                            display_status(row))


async def list_invoices(tenant_id: uuid.UUID, org_id: uuid.UUID, page: int = 1,
                        per_page: int = INVOICES_PER_PAGE) -> tuple[list[dict[str, Any]], int]:
    """One page of invoices, newest first, and how many there are in all."""
    where = (Invoice.tenant == tenant_id) & (Invoice.organization == org_id)
    total = await Invoice.count().where(where)
    rows = await Invoice.select().where(where).order_by(Invoice.issued_at, ascending=False).order_by(
        Invoice.number, ascending=False).offset(max(0, page - 1) * per_page).limit(per_page)
    for row in rows:
        row["lines"] = load_json(row["lines"]) or []
    return rows, total


async def invoice_of(tenant_id: uuid.UUID, org_id: uuid.UUID, invoice_id: uuid.UUID) -> dict[str, Any] | None:
    """One invoice of the organization (``None`` for another organization's id)."""
    row = await Invoice.select().where(
        Invoice.id == invoice_id, Invoice.tenant == tenant_id, Invoice.organization == org_id).first()
    if row is not None:
        row["lines"] = load_json(row["lines"]) or []
    return row


async def overdue_invoices(tenant_id: uuid.UUID, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """Open invoices whose due date has passed (what "retry payment" pays)."""
    rows = await Invoice.select().where(
        Invoice.tenant == tenant_id, Invoice.organization == org_id, Invoice.status == "open")
    now = utcnow()
    return [r for r in rows if r["due_at"] is None or as_utc(r["due_at"]) <= now]


async def next_invoice_number(tenant: Any, org_id: uuid.UUID) -> str:
    """A per-tenant unique, human-readable number: ``ACME-3F2A1C-0007``."""
    count = await Invoice.count().where(Invoice.tenant == tenant.id, Invoice.organization == org_id)
    return f"{tenant.slug[:6].upper()}-{org_id.hex[:6].upper()}-{count + 1:04d}"


def plan_line(plan: Plan, start: datetime, end: datetime, amount: int | None = None,
              description: str | None = None) -> dict[str, Any]:
    """One invoice line for a plan over a period."""
    value = plan.price if amount is None else amount
    return {"description": description or f"{plan.name} plan ({plan.interval}ly)", "quantity": 1,
            "unit_amount": value, "amount": value, "period_start": start.isoformat(), "period_end": end.isoformat()}


def card_expired(customer: dict[str, Any] | None, now: datetime | None = None) -> bool:
    """Whether the card on file is past its expiry month (or there is none)."""
    if not customer or not customer["pm_last4"]:
        return True
    now = now or utcnow()
    return (customer["pm_exp_year"], customer["pm_exp_month"]) < (now.year, now.month)


def card_note(customer: dict[str, Any]) -> str:
    """The card on file as an invoice's payment note: ``Visa •••• 4242``."""
    return f"{customer['pm_brand'].title()} •••• {customer['pm_last4']}"


@dataclass(frozen=True)
class Settlement:
    """How a ledger invoice stands once issued: ``create_invoice``'s ``status``, ``paid_at`` and ``payment_note``."""

    status: str
    paid_at: datetime | None = None
    payment_note: str = ""


def settlement(customer: dict[str, Any] | None, at: datetime, amount: int) -> Settlement:
    """How an invoice of the local ledger issued at ``at`` for ``amount`` (before tax, which never turns its sign)
    settles for ``customer`` — the one rule for renewal and proration invoices alike:

    - nothing to collect (zero, or a credit such as a downgrade applied at once): settled as issued, nothing charged
      (and nothing refunded: the ledger keeps no balance);
    - a valid card on file and no contract: charged at once, paid with the card in the note;
    - otherwise (contract terms, bank transfer, no card or an expired one): open with the tenant's payment terms,
      and reminded of while it stays open (``reminders.py``).
    """
    if amount <= 0:
        return Settlement("paid", at)
    if customer is not None and not customer["contract_terms"] and not card_expired(customer, at):
        return Settlement("paid", at, card_note(customer))
    return Settlement("open")


RENEWAL_INVOICE = "renewal"
"""``Invoice.kind`` of a period's invoice written by the renewal job (and the demo's monthly invoices)."""
PRORATION_INVOICE = "proration"
"""``Invoice.kind`` of the invoice a plan change on the local ledger writes."""


async def create_invoice(ctx: RequestContext, org_id: uuid.UUID, lines: list[dict[str, Any]], currency: str, *,
                         status: str = "open", issued_at: datetime | None = None, due_at: datetime | None = None,
                         paid_at: datetime | None = None, payment_note: str = "", number: str | None = None,
                         period: tuple[datetime, datetime] | None = None, kind: str = "") -> dict[str, Any]:
    """Write an invoice of the local ledger with tax from the tenant's settings (``kind``: ``renewal`` for a
    period's invoice from the renewal job, ``proration`` for a plan change's; those are reminded of while open).
    Callers that settle it on issue take ``status``, ``paid_at`` and ``payment_note`` from ``settlement``; a paid
    credit records nothing paid."""
    config = billing_config(ctx.tenant)
    subtotal = sum(int(line["amount"]) for line in lines)
    tax = tax_of(subtotal, config.tax_rate)
    total = subtotal + tax
    issued = issued_at or utcnow()
    row = Invoice(
        id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org_id,
        number=number or await next_invoice_number(ctx.tenant, org_id), status=status, currency=currency,
        subtotal=subtotal, tax=tax, tax_rate=str(config.tax_rate), total=total,
        amount_paid=max(total, 0) if status == "paid" else 0, lines=lines,
        period_start=period[0] if period else None, period_end=period[1] if period else None,
        issued_at=issued, due_at=due_at or issued + timedelta(days=config.payment_terms_days),
        paid_at=paid_at, payment_note=payment_note, kind=kind, created_at=utcnow(),
    )
    await Invoice.insert(row)
    return row.to_dict()


@dataclass(frozen=True)
class Proration:
    """What a plan change costs, shown before the person confirms it."""

    current: Plan
    target: Plan
    upgrade: bool
    effective_now: bool
    credit: int
    charge: int
    subtotal: int
    tax: int
    due_today: int
    new_recurring: int
    next_date: datetime
    currency: str
    source: str = "local"  # "stripe" when Stripe computed the amounts (its upcoming-invoice preview)


def preview_change(config: BillingConfig, sub: dict[str, Any], current: Plan, target: Plan,
                   now: datetime | None = None) -> Proration:
    """Proration of a change: upgrades apply now (credit unused time, charge the rest of the period at the new
    price); downgrades wait for the period end by default and cost nothing today."""
    now = now or utcnow()
    start, end = as_utc(sub["current_period_start"]), as_utc(sub["current_period_end"])
    assert start is not None and end is not None
    upgrade = target.monthly_price > current.monthly_price
    effective_now = upgrade or not config.downgrade_at_period_end
    if not effective_now:
        return Proration(current, target, upgrade, False, 0, 0, 0, 0, 0, target.price, end, target.currency)
    length = max((end - start).total_seconds(), 1.0)
    remaining = min(max((end - now).total_seconds(), 0.0), length)
    fraction = Decimal(remaining) / Decimal(length)
    credit = int((Decimal(current.price) * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    charge = int((Decimal(target.price) * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    subtotal = charge - credit
    tax = tax_of(subtotal, config.tax_rate)
    due_today = max(0, subtotal + tax)
    return Proration(current, target, upgrade, True, credit, charge, subtotal, tax, due_today, target.price, end,
                     target.currency)


def plan_offer(plan: Plan) -> PlanOffer:
    """A plan as other plugins see it in ``portal_plan_change_allowed``."""
    return PlanOffer(plan.id, plan.name, {key: float(value) for key, value in plan.limits.items()})


async def change_refusal(ctx: RequestContext, org: Any, current: Plan | None, target: Plan) -> str | None:
    """The first refusal any enabled plugin gives for moving to ``target`` (the tenant's ``allowed_plan_changes``
    is billing's own answer; team refuses plans smaller than the team), or None when the move is allowed."""
    results = await ctx.runtime.plugins.call(
        "portal_plan_change_allowed", tenant=ctx.tenant, ctx=ctx, org=org,
        current_plan=plan_offer(current) if current is not None else None, new_plan=plan_offer(target))
    return next((str(message) for _slug, message in results if message), None)


async def plan_choices(ctx: RequestContext, org: Any, current: Plan | None,
                       current_plan_id: str | None = None) -> list[tuple[Plan, str | None]]:
    """Every plan offered to this organization with the reason it may not move there (None: it may): the tenant's
    plans minus the current one and retired ones, each asked of ``portal_plan_change_allowed``."""
    config = billing_config(ctx.tenant)
    current_id = current.id if current is not None else current_plan_id
    plans = [p for p in config.plans if p.id != current_id and not p.retired]
    return [(plan, await change_refusal(ctx, org, current, plan)) for plan in plans]


async def allowed_targets(ctx: RequestContext, org: Any, current: Plan | None) -> list[Plan]:
    """Plans this organization may move to now (no plugin refuses them)."""
    return [plan for plan, refusal in await plan_choices(ctx, org, current) if refusal is None]


def pause_refusal(config: BillingConfig, row: dict[str, Any] | None, months: int,
                  customer: dict[str, Any] | None = None) -> str | None:
    """Why this subscription cannot be paused for ``months`` (None: it can): the tenant must offer pauses
    (``[settings.billing] pause_allowed``, up to ``pause_max_months``), and only a running, paid-up subscription
    with no other change pending pauses."""
    if not config.pause_allowed:
        return "Pausing is not offered on this plan."
    if not 1 <= months <= config.pause_max_months:
        return f"Choose a pause of 1 to {config.pause_max_months} months."
    if customer is not None and customer["contract_terms"]:
        return "Your contract sets your plan; contact your account manager."
    if row is None or row["status"] != "active" or row["cancel_at_period_end"]:
        return "Only an active subscription can be paused."
    if pause_set(row):
        return "This subscription is already paused."
    return None


def allowed_by_tenant(config: BillingConfig, current_plan_id: str | None, target_id: str) -> bool:
    """The tenant's ``allowed_plan_changes`` for the current plan (every plan when the tenant set none)."""
    allowed = config.allowed_plan_changes.get(current_plan_id or "")
    return allowed is None or target_id in allowed


SUMMARY_BATCH = 500
"""Organizations per query: well under every database's limit on bound parameters."""


async def billing_summaries(ctx: RequestContext, orgs: list[Any]) -> dict[uuid.UUID, BillingSummary]:
    """What each organization pays now, from the local copy: one query per ``SUMMARY_BATCH`` organizations.

    Organizations without a subscription on a known plan are left out.
    """
    config = billing_config(ctx.tenant)
    ids = [org["id"] if isinstance(org, dict) else org.id for org in orgs]
    summaries: dict[uuid.UUID, BillingSummary] = {}
    for start in range(0, len(ids), SUMMARY_BATCH):
        rows = await Subscription.select().where(
            Subscription.tenant == ctx.tenant.id, Subscription.organization.is_in(ids[start:start + SUMMARY_BATCH]))
        for row in rows:
            plan = config.plan(row["plan_id"])
            if plan is None:
                continue
            summaries[row["organization"]] = BillingSummary(
                plan_id=plan.id, plan_name=plan.name, status=display_status(row), currency=plan.currency,
                amount=to_major(plan.price, plan.currency), interval=plan.interval,
                monthly_amount=plan.monthly_amount, unit_prices=dict(plan.unit_prices),
                period_start=as_utc(row["current_period_start"]), period_end=as_utc(row["current_period_end"]))
    return summaries


async def billing_contacts(tenant_id: uuid.UUID, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """Owners and billing members: who hears about failed payments."""
    rows = await Membership.select(Membership.user, Membership.role).where(
        Membership.tenant == tenant_id, Membership.organization == org_id,
        Membership.role.is_in(["owner", "billing"]))
    if not rows:
        return []
    users = await User.select(User.id, User.email, User.name).where(User.id.is_in([r["user"] for r in rows]))
    return users


async def seats_used(ctx: RequestContext, org: Any) -> tuple[float | None, float | None]:
    """Seats used (and the limit another plugin reports), read through other plugins' ``portal_usage_metrics``;
    falls back to counting memberships when no plugin meters seats."""
    results = await ctx.runtime.plugins.call("portal_usage_metrics", tenant=ctx.tenant, ctx=ctx, org=org)
    for slug, metrics in results:
        if slug == "billing":
            continue
        for metric in metrics or []:
            if getattr(metric, "key", None) == "seats":
                return metric.used, metric.limit
    count = await Membership.count().where(Membership.tenant == ctx.tenant.id, Membership.organization == org.id)
    return float(count), None


async def plan_limits(ctx: RequestContext, org_id: uuid.UUID) -> dict[str, int] | None:
    """The current plan's limits (the tenant's default plan when the organization has none)."""
    config = billing_config(ctx.tenant)
    row = await subscription_of(ctx.tenant.id, org_id)
    if row is not None and row["status"] != "canceled":
        plan = config.plan(row["plan_id"])
    else:
        plan = config.plan(config.default_plan)
    return dict(plan.limits) if plan is not None else None
