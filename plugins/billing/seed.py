"""Demo billing history (``portal_seed_demo``): a year of invoices per organization, varied by slug.

- rocket-labs: top plan, paid history, one voided and reissued invoice, the latest open and not yet due.
- anvil-works: past due: an expired card, last month's invoice overdue, one written off as uncollectible.
- cypress-creek: cancelling at the end of the period (reason "too expensive").
- springfield-power: a contract customer paying by bank transfer, with contract terms.
- any other organization: the tenant's first plan, paid every month.
The monthly invoices are renewal invoices (``kind="renewal"``), as the renewal job writes them, so the open ones
are reminded of. Idempotent: an organization that already has a subscription is left alone.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from core.context import RequestContext
from core.db import atomic, utcnow
from plugins.billing.plans import Plan, billing_config
from plugins.billing.service import RENEWAL_INVOICE, add_months, create_invoice, plan_line
from plugins.billing.tables import BillingCustomer, Subscription

PROFILES: dict[str, dict[str, Any]] = {
    "rocket-labs": {"plan": -1, "status": "active", "card": ("visa", "4242", 8, 2029), "void_month": 7,
                    "open_latest": True, "company": "Rocket Labs GmbH", "country": "DE", "tax_id": "DE136695976",
                    "address": ("Raketenweg 5", "10117", "Berlin"), "po": "PO-2025-118"},
    "anvil-works": {"plan": 0, "status": "past_due", "card": ("mastercard", "5454", 3, 2024),
                    "uncollectible_month": 5, "overdue_latest": True, "company": "Anvil Works AG", "country": "AT",
                    "tax_id": "ATU13585627", "address": ("Schmiedgasse 12", "1010", "Wien")},
    "cypress-creek": {"plan": 1, "status": "active", "cancelling": True, "card": ("amex", "0005", 11, 2027),
                      "void_month": 3, "company": "Cypress Creek Industries, Inc.", "country": "US",
                      "tax_id": "12-3456789", "address": ("742 Evergreen Terrace", "97001", "Cypress Creek")},
    "springfield-power": {"plan": -1, "status": "active", "bank": True, "company": "Springfield Power Plant LLC",
                          "country": "US", "address": ("100 Industrial Way", "97005", "Springfield"),
                          "contract": "Enterprise agreement SPP-2024-07: 24 months from 1 July 2024, invoiced "
                                      "monthly in advance, net 30, payment by bank transfer. Price fixed for the term; "
                                      "changes through your account manager."},
}


def _pick(plans: tuple[Plan, ...], index: int) -> Plan:
    return plans[index] if -len(plans) <= index < len(plans) else plans[0]


async def seed_organization(ctx: RequestContext, org: Any) -> bool:
    """Seed one organization; returns False when it already had billing data."""
    config = billing_config(ctx.tenant)
    if not config.plans:
        return False
    if await Subscription.exists().where(Subscription.organization == org["id"]):
        return False
    profile = PROFILES.get(org["slug"], {"plan": 0, "status": "active", "card": ("visa", "4242", 12, 2028),
                                         "company": org["name"]})
    plan = _pick(config.plans, profile["plan"])
    now = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    period_start = now - timedelta(days=9)
    period_end = add_months(period_start, 1)
    brand, last4, month, year = profile.get("card", ("", "", 0, 0))
    street, postal, city = profile.get("address", ("", "", ""))
    async with atomic():
        await BillingCustomer.insert(BillingCustomer(
            id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org["id"], company_name=profile["company"],
            billing_email=f"finance@{org['slug']}.example", address_line1=street, postal_code=postal, city=city,
            country=profile.get("country", ""), tax_id=profile.get("tax_id", ""), po_number=profile.get("po", ""),
            pm_brand=brand, pm_last4=last4, pm_exp_month=month, pm_exp_year=year,
            contract_terms=profile.get("contract", ""), updated_at=utcnow()))
        await Subscription.insert(Subscription(
            id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org["id"], plan_id=plan.id,
            status=profile["status"], cancel_at_period_end=bool(profile.get("cancelling")),
            cancel_reason="too_expensive" if profile.get("cancelling") else "",
            cancel_feedback="We are consolidating vendors next quarter." if profile.get("cancelling") else "",
            current_period_start=period_start, current_period_end=period_end,
            created_at=add_months(period_start, -12), updated_at=utcnow()))
        note = "Bank transfer" if profile.get("bank") else (f"{brand.title()} •••• {last4}" if last4 else "")
        for back in range(12, 0, -1):
            start = add_months(period_start, -(back - 1))
            end = add_months(start, 1)
            issued = start
            lines = [plan_line(plan, start, end)]
            latest = back == 1
            status, paid_at, due = "paid", issued + timedelta(days=1 if not profile.get("bank") else 12), None
            if profile.get("void_month") == back:
                await create_invoice(ctx, org["id"], lines, plan.currency, status="void", issued_at=issued - timedelta(
                    days=1), due_at=issued + timedelta(days=13), period=(start, end))
            if profile.get("uncollectible_month") == back:
                status, paid_at = "uncollectible", None
            if latest and profile.get("open_latest"):
                status, paid_at = "open", None
            if latest and profile.get("overdue_latest"):
                status, paid_at, due = "open", None, issued + timedelta(days=7)
            await create_invoice(ctx, org["id"], lines, plan.currency, status=status, issued_at=issued, due_at=due,
                                 paid_at=paid_at, payment_note=note if status == "paid" else "", period=(start, end),
                                 kind=RENEWAL_INVOICE)
    return True
