"""Stripe webhooks on the tenant's host: ``POST /billing/webhooks/stripe``.

- The signature is checked with the tenant's webhook secrets (several during a
  rotation) and Stripe's timestamp tolerance; a bad signature is a 400.
- Each event is stored once per (tenant, event id) in the same transaction that
  applies it: a concurrent duplicate hits the unique key and is acknowledged
  without being applied twice; a failure rolls both back so Stripe's retry works.
- Newest wins: rows remember the ``created`` time of the last event applied, an
  older event never overwrites them, and a paid / void / uncollectible invoice
  never goes back to open.
- Events for customers we do not know are acknowledged (200) and stored as
  ``unknown_customer`` so ``portal billing replay`` can apply them after a sync.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import stripe
from litestar import Request, Response, post

from core.context import Actor, Ctx, CurrentOrganization, RequestContext
from core.db import atomic, utcnow
from core.events import Target, emit
from core.tables import Organization
from plugins.billing import notices
from plugins.billing.plans import billing_config
from plugins.billing.service import customer_of
from plugins.billing.tables import BillingCustomer, Invoice, StripeEvent, Subscription

log = logging.getLogger("portal.billing.webhooks")
TOLERANCE = 300
FINAL_INVOICE_STATES = {"paid", "void", "uncollectible"}
STRIPE_ACTOR = Actor("system", None, "Stripe")


class Duplicate(Exception):
    """The event was already stored (processed before, or right now by another request)."""


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


async def _customer(ctx: RequestContext, stripe_customer_id: str | None) -> dict[str, Any] | None:
    if not stripe_customer_id:
        return None
    return await BillingCustomer.select().where(BillingCustomer.tenant == ctx.tenant.id,
                                                BillingCustomer.stripe_customer_id == stripe_customer_id).first()


def _plan_id(ctx: RequestContext, sub: dict[str, Any]) -> str | None:
    items = (sub.get("items") or {}).get("data") or []
    ids = set()
    for item in items:
        for key in ("price", "plan"):
            if isinstance(item.get(key), dict):
                ids.add(item[key].get("id"))
    if isinstance(sub.get("plan"), dict):
        ids.add(sub["plan"].get("id"))
    plan = next((p for p in billing_config(ctx.tenant).plans if p.stripe_price_id in ids), None)
    return plan.id if plan else None


def _pause(sub: dict[str, Any], row: dict[str, Any] | None, period_end: datetime) -> dict[str, Any]:
    """Stripe's ``pause_collection`` as our pause: from the end of the paid period to ``resumes_at`` or, when it
    has none (paused from Stripe's dashboard "until resumed"), with no resume date; cleared when Stripe clears it.
    A pause that was already mirrored keeps its start, so a renewal while paused does not push it back."""
    pause = sub.get("pause_collection")
    if not isinstance(pause, dict) or not pause:
        return {"pause_starts_at": None, "pause_resumes_at": None}
    starts = (row or {}).get("pause_starts_at") or period_end
    return {"pause_starts_at": starts, "pause_resumes_at": _ts(pause.get("resumes_at"))}


async def apply_subscription(ctx: RequestContext, sub: dict[str, Any], created: int, *, deleted: bool = False,
                             force: bool = False) -> str:
    """Mirror a Stripe subscription onto the organization's row (unless a newer event already did)."""
    customer = await _customer(ctx, sub.get("customer"))
    if customer is None:
        return "unknown_customer"
    row = await Subscription.select().where(Subscription.organization == customer["organization"]).first()
    if row is not None and not force and created < row["source_created"]:
        return "stale"
    item = ((sub.get("items") or {}).get("data") or [{}])[0]
    start = _ts(sub.get("current_period_start") or item.get("current_period_start")) or utcnow()
    end = _ts(sub.get("current_period_end") or item.get("current_period_end")) or start
    status = "canceled" if deleted else str(sub.get("status", "active"))
    values = {
        "plan_id": _plan_id(ctx, sub) or (row["plan_id"] if row else "unknown"), "status": status,
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end")), "current_period_start": start,
        "current_period_end": end, "stripe_subscription_id": sub.get("id"), "updated_at": utcnow(),
        "canceled_at": _ts(sub.get("canceled_at")),
        "source_created": max(created, row["source_created"] if row else 0),
        **_pause(sub, row, end),
    }
    if row is None:
        await Subscription.insert(Subscription(id=uuid.uuid4(), tenant=ctx.tenant.id,
                                               organization=customer["organization"], created_at=utcnow(), **values))
    else:
        await Subscription.update({getattr(Subscription, k): v for k, v in values.items()}).where(
            Subscription.id == row["id"])
    return "processed"


async def apply_invoice(ctx: RequestContext, inv: dict[str, Any], created: int, *, force: bool = False) -> str:
    """Mirror a Stripe invoice; older events and backwards status moves are ignored."""
    customer = await _customer(ctx, inv.get("customer"))
    if customer is None:
        return "unknown_customer"
    row = await Invoice.select().where(Invoice.tenant == ctx.tenant.id,
                                       Invoice.stripe_invoice_id == inv.get("id")).first()
    status = str(inv.get("status") or "draft")
    if row is not None:
        if not force and created < row["source_created"]:
            return "stale"
        if row["status"] in FINAL_INVOICE_STATES and status not in FINAL_INVOICE_STATES:
            return "stale"
    lines = [{"description": line.get("description") or "Subscription", "quantity": line.get("quantity") or 1,
              "unit_amount": int(line.get("amount", 0)) // max(1, int(line.get("quantity") or 1)),
              "amount": int(line.get("amount", 0)),
              "period_start": (_ts((line.get("period") or {}).get("start")) or utcnow()).isoformat(),
              "period_end": (_ts((line.get("period") or {}).get("end")) or utcnow()).isoformat()}
             for line in (inv.get("lines") or {}).get("data") or []]
    subtotal = int(inv.get("subtotal") or 0)
    total = int(inv.get("total") or 0)
    transitions = inv.get("status_transitions") or {}
    values = {
        "number": inv.get("number") or f"STRIPE-{str(inv.get('id'))[-10:].upper()}", "status": status,
        "currency": str(inv.get("currency") or "usd").upper(), "subtotal": subtotal, "tax": total - subtotal,
        "total": total, "amount_paid": int(inv.get("amount_paid") or 0), "lines": lines,
        "period_start": _ts(inv.get("period_start")), "period_end": _ts(inv.get("period_end")),
        "issued_at": _ts(inv.get("created")) or utcnow(), "due_at": _ts(inv.get("due_date")),
        "paid_at": _ts(transitions.get("paid_at")), "hosted_url": inv.get("hosted_invoice_url") or "",
        "source_created": max(created, row["source_created"] if row else 0),
    }
    if row is None:
        await Invoice.insert(Invoice(id=uuid.uuid4(), tenant=ctx.tenant.id, organization=customer["organization"],
                                     stripe_invoice_id=inv.get("id"), created_at=utcnow(), **values))
    else:
        await Invoice.update({getattr(Invoice, k): v for k, v in values.items()}).where(Invoice.id == row["id"])
    return "processed"


async def apply_payment_method(ctx: RequestContext, pm: dict[str, Any], created: int, detached: bool,
                               previous: dict[str, Any] | None = None) -> str:
    """The card shown on the billing page: an attached card becomes it; detaching the shown card clears it
    (Stripe sends a detached card with ``customer`` null: the customer is in ``previous_attributes``, or found
    by the card's id)."""
    customer = await _customer(ctx, pm.get("customer") or (previous or {}).get("customer"))
    if customer is None and pm.get("id"):
        customer = await BillingCustomer.select().where(BillingCustomer.tenant == ctx.tenant.id,
                                                        BillingCustomer.pm_id == pm["id"]).first()
    if customer is None:
        return "unknown_customer"
    if created < customer["source_created"]:
        return "stale"
    if detached and customer["pm_id"] and customer["pm_id"] != pm.get("id"):
        return "ignored"  # another card than the one shown
    card = pm.get("card") or {}
    await BillingCustomer.update({
        BillingCustomer.pm_id: "" if detached else str(pm.get("id") or ""),
        BillingCustomer.pm_brand: "" if detached else str(card.get("brand", "")),
        BillingCustomer.pm_last4: "" if detached else str(card.get("last4", "")),
        BillingCustomer.pm_exp_month: 0 if detached else int(card.get("exp_month") or 0),
        BillingCustomer.pm_exp_year: 0 if detached else int(card.get("exp_year") or 0),
        BillingCustomer.source_created: created, BillingCustomer.updated_at: utcnow(),
    }).where(BillingCustomer.id == customer["id"])
    return "processed"


def _tax_id(obj: dict[str, Any]) -> str | None:
    """The customer's tax id: the first of Stripe's ``tax_ids`` when expanded, else what we put in metadata."""
    tax_ids = ((obj.get("tax_ids") or {}).get("data") or []) if isinstance(obj.get("tax_ids"), dict) else []
    if tax_ids:
        return str(tax_ids[0].get("value") or "")
    metadata = obj.get("metadata") or {}
    return str(metadata["tax_id"]) if "tax_id" in metadata else None


async def apply_customer(ctx: RequestContext, obj: dict[str, Any], created: int) -> str:
    """Billing details edited on Stripe's side (dashboard, Customer Portal) into the local copy; newest wins."""
    customer = await _customer(ctx, obj.get("id"))
    if customer is None:
        return "unknown_customer"
    if created < customer["details_source_created"]:
        return "stale"
    address = obj.get("address") or {}
    values: dict[str, Any] = {"details_source_created": created, "updated_at": utcnow()}
    if obj.get("name") is not None:
        values["company_name"] = str(obj["name"])[:200]
    if obj.get("email") is not None:
        values["billing_email"] = str(obj["email"])[:320]
    if "address" in obj:
        values.update(address_line1=str(address.get("line1") or "")[:200],
                      address_line2=str(address.get("line2") or "")[:200],
                      postal_code=str(address.get("postal_code") or "")[:20], city=str(address.get("city") or "")[:100],
                      country=str(address.get("country") or "").upper()[:2])
    tax_id = _tax_id(obj)
    if tax_id is not None:
        values["tax_id"] = tax_id[:40]
    po_number = (obj.get("metadata") or {}).get("po_number")
    if po_number is not None:
        values["po_number"] = str(po_number)[:60]
    await BillingCustomer.update({getattr(BillingCustomer, k): v for k, v in values.items()}).where(
        BillingCustomer.id == customer["id"])
    return "processed"


async def apply_event(ctx: RequestContext, event: dict[str, Any]) -> str:
    """Apply one event to the local copy; returns the outcome stored with it."""
    kind, obj, created = event["type"], event["data"]["object"], int(event.get("created") or 0)
    if kind.startswith("customer.subscription."):
        return await apply_subscription(ctx, obj, created, deleted=kind.endswith(".deleted"))
    if kind.startswith("invoice."):
        outcome = await apply_invoice(ctx, obj, created)
        if outcome == "processed" and kind == "invoice.payment_failed":
            await _payment_failed(ctx, obj, event["id"])
        return outcome
    if kind in {"payment_method.attached", "payment_method.detached"}:
        return await apply_payment_method(ctx, obj, created, kind.endswith("detached"),
                                          event["data"].get("previous_attributes"))
    if kind == "customer.updated":
        return await apply_customer(ctx, obj, created)
    return "ignored"


async def _payment_failed(ctx: RequestContext, inv: dict[str, Any], event_id: str) -> None:
    customer = await _customer(ctx, inv.get("customer"))
    assert customer is not None
    org = await Organization.select().where(Organization.id == customer["organization"]).first()
    row = await Invoice.select().where(Invoice.tenant == ctx.tenant.id,
                                       Invoice.stripe_invoice_id == inv.get("id")).first()
    await Subscription.update({Subscription.status: "past_due"}).where(
        Subscription.organization == org["id"], Subscription.status == "active")
    await notices.payment_failed(ctx, org["id"], org["slug"], org["name"], row, "Your card was declined.",
                                 dedupe=event_id)


async def process(ctx: RequestContext, event: dict[str, Any], *, replay: bool = False) -> str:
    """Store and apply an event in one transaction (``replay`` re-applies a stored one)."""
    async with atomic():
        if replay:
            pass  # stored already; apply again
        elif await StripeEvent.exists().where(StripeEvent.tenant == ctx.tenant.id, StripeEvent.event_id == event["id"]):
            raise Duplicate(event["id"])
        else:
            await StripeEvent.insert(StripeEvent(
                id=uuid.uuid4(), tenant=ctx.tenant.id, event_id=event["id"], type=event["type"],
                created=int(event.get("created") or 0), payload=event, outcome="received", received_at=utcnow()))
        outcome = await apply_event(ctx, event)
        await StripeEvent.update({StripeEvent.outcome: outcome}).where(
            StripeEvent.tenant == ctx.tenant.id, StripeEvent.event_id == event["id"])
        if outcome == "processed":
            obj = event["data"]["object"]
            customer = await _customer(ctx, obj.get("customer") or obj.get("id"))
            await emit(ctx, f"billing.stripe.{event['type']}", actor=STRIPE_ACTOR,
                       organization_id=customer["organization"] if customer else None,
                       target=Target("stripe_event", event["id"], event["type"]))
    if outcome == "unknown_customer":
        log.warning("tenant %s: Stripe event %s (%s) for an unknown customer; stored, not applied",
                    ctx.tenant.slug, event["id"], event["type"])
    return outcome


def verify(payload: bytes, header: str, secrets: list[str]) -> dict[str, Any]:
    """The event if any of the tenant's secrets signed it within the tolerance; ``ValueError`` otherwise."""
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload.decode(), header, secret, TOLERANCE)
        except stripe.SignatureVerificationError:
            continue
        return json.loads(payload)
    raise ValueError("signature does not match any webhook secret of this tenant")


@post("/billing/webhooks/stripe", opt={"exclude_from_csrf": True}, status_code=200, name="billing_stripe_webhook")
async def stripe_webhook(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Receive a Stripe event for this host's tenant."""
    from plugins.billing.stripe_provider import stripe_account

    account = await stripe_account(ctx)
    if account is None or not account["webhook_secrets"]:
        return Response({"error": "stripe is not connected on this portal"}, status_code=404)
    payload = await request.body()
    try:
        event = verify(payload, request.headers.get("stripe-signature", ""), account["webhook_secrets"])
    except (ValueError, UnicodeDecodeError):
        return Response({"error": "invalid signature"}, status_code=400)
    ctx.actor_override = STRIPE_ACTOR
    try:
        outcome = await process(ctx, event)
    except Duplicate:
        return Response({"received": True, "duplicate": True})
    except Exception as exc:  # a unique-key race with a concurrent delivery of the same event
        if await StripeEvent.exists().where(StripeEvent.tenant == ctx.tenant.id, StripeEvent.event_id == event["id"]):
            return Response({"received": True, "duplicate": True})
        raise exc
    return Response({"received": True, "outcome": outcome})


async def replay(ctx: RequestContext, event_ids: list[str] | None = None) -> dict[str, str]:
    """Re-apply stored events, oldest first (after a sync, or a bug fix in a handler)."""
    query = StripeEvent.select(StripeEvent.payload, StripeEvent.event_id).where(StripeEvent.tenant == ctx.tenant.id)
    if event_ids:
        query = query.where(StripeEvent.event_id.is_in(event_ids))
    results = {}
    from core.db import load_json

    for row in await query.order_by(StripeEvent.created).order_by(StripeEvent.received_at):
        results[row["event_id"]] = await process(ctx, load_json(row["payload"]), replay=True)
    return results


async def sync_organization(ctx: RequestContext, org: CurrentOrganization) -> dict[str, int]:
    """Backfill one organization from Stripe: its subscriptions and invoices (``portal billing sync``)."""
    from plugins.billing.stripe_provider import StripeProvider, call

    provider = await StripeProvider.for_tenant(ctx)
    customer = await customer_of(ctx.tenant.id, org.id)
    if customer is None or not customer["stripe_customer_id"]:
        raise ValueError(f"{org.slug} has no Stripe customer id")
    counts = {"subscriptions": 0, "invoices": 0}
    subs = await call(provider.client.v1.subscriptions.list, params={"customer": customer["stripe_customer_id"]})
    invoices = await call(provider.client.v1.invoices.list, params={"customer": customer["stripe_customer_id"]})
    async with atomic():
        for sub in subs.data:
            counts["subscriptions"] += await apply_subscription(ctx, sub.to_dict(), 0, force=True) == "processed"
        for inv in invoices.data:
            counts["invoices"] += await apply_invoice(ctx, inv.to_dict(), 0, force=True) == "processed"
    return counts


WEBHOOK_HANDLERS = [stripe_webhook]
