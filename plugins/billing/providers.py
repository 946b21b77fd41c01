"""Billing providers: who carries out a plan change, a cancellation, a payment.

``BillingProvider`` is the protocol both providers implement. ``LocalProvider`` keeps
the ledger in our own tables (the embedded default, the demo, contract customers and
offline payment). ``StripeProvider`` (``stripe_provider.py``) calls the tenant's
Stripe account and mirrors the result locally. Every change runs in one transaction
with its domain event, so the audit record commits with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.context import CurrentOrganization, RequestContext
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from plugins.billing import notices
from plugins.billing.plans import Plan, billing_config, money
from plugins.billing.service import (
    PRORATION_INVOICE,
    Proration,
    add_months,
    card_expired,
    card_note,
    create_invoice,
    customer_of,
    next_period_end,
    overdue_invoices,
    pause_refusal,
    plan_line,
    preview_change,
    settlement,
    subscription_of,
)
from plugins.billing.tables import BillingCustomer, Invoice, Subscription


class BillingError(Exception):
    """An action cannot be done; the message is for the person who asked."""


@dataclass(frozen=True)
class ActionResult:
    """What to tell the person after an action."""

    message: str
    redirect: str | None = None


class BillingProvider(Protocol):
    """What the pages ask a provider to do. Reads never go through a provider: pages read our tables."""

    name: str

    async def change_plan(self, ctx: RequestContext, org: CurrentOrganization, target: Plan) -> ActionResult:
        """Move the subscription to ``target`` (upgrades now with proration; downgrades per tenant setting)."""
        ...

    async def cancel(self, ctx: RequestContext, org: CurrentOrganization, reason: str, feedback: str) -> ActionResult:
        """Cancel at the end of the current period."""
        ...

    async def preview(self, ctx: RequestContext, org: CurrentOrganization, sub: dict[str, Any], current: Plan,
                      target: Plan) -> Proration:
        """What the change would cost (the local computation, or the provider's own preview)."""
        ...

    async def reactivate(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Undo a pending cancellation before the period ends."""
        ...

    async def retry_payment(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Try to collect overdue invoices again."""
        ...

    async def pause(self, ctx: RequestContext, org: CurrentOrganization, months: int) -> ActionResult:
        """Pause from the end of the paid period for ``months``: no invoices until it resumes."""
        ...

    async def resume(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """End a pause early (or call off one that has not started)."""
        ...

    async def sync_details(self, ctx: RequestContext, org: CurrentOrganization, details: dict[str, Any]) -> None:
        """Push billing details to the provider's customer (no-op for the local ledger)."""
        ...

    async def payment_method_url(self, ctx: RequestContext, org: CurrentOrganization, return_url: str) -> str | None:
        """Where the person updates their card (``None`` when cards are not handled online)."""
        ...


async def _subscription_or_fail(ctx: RequestContext, org: CurrentOrganization) -> dict[str, Any]:
    row = await subscription_of(ctx.tenant.id, org.id)
    if row is None:
        raise BillingError("This organization has no subscription yet.")
    return row


class LocalProvider:
    """The ledger in our own tables: plan changes and cancellations take effect here, payments are offline
    (bank transfer) or against the card on file recorded at sign-up."""

    name = "local"

    async def change_plan(self, ctx: RequestContext, org: CurrentOrganization, target: Plan) -> ActionResult:
        """Upgrade now with a proration invoice, or schedule a downgrade for the period end.

        The proration invoice (``kind="proration"``) settles as a renewal invoice does (``service.settlement``):
        charged at once to a valid card on file, open with the payment terms (and reminded of) otherwise; a credit
        (a downgrade the tenant applies at once) is recorded with nothing charged."""
        config = billing_config(ctx.tenant)
        sub = await _subscription_or_fail(ctx, org)
        current = config.plan(sub["plan_id"])
        if current is None or sub["status"] == "canceled":
            raise BillingError("This subscription cannot be changed; contact support.")
        proration = preview_change(config, sub, current, target)
        now = utcnow()
        async with atomic():
            if proration.effective_now:
                await Subscription.update({Subscription.plan_id: target.id, Subscription.pending_plan_id: None,
                                           Subscription.updated_at: now}).where(Subscription.id == sub["id"])
                message = f"You are now on {target.name}."
                if proration.subtotal:
                    end = as_utc(sub["current_period_end"])
                    assert end is not None
                    settled = settlement(await customer_of(ctx.tenant.id, org.id), now, proration.subtotal)
                    invoice = await create_invoice(ctx, org.id, [
                        plan_line(current, now, end, -proration.credit,
                                  f"Unused time on {current.name} after {now:%d %b %Y}"),
                        plan_line(target, now, end, proration.charge,
                                  f"Remaining time on {target.name} after {now:%d %b %Y}"),
                    ], target.currency, status=settled.status, issued_at=now, paid_at=settled.paid_at,
                        payment_note=settled.payment_note, period=(now, end), kind=PRORATION_INVOICE)
                    await emit(ctx, "billing.invoice.created", organization_id=org.id,
                               target=Target("invoice", str(invoice["id"]), invoice["number"]),
                               after={"status": invoice["status"], "total": invoice["total"], "proration": True})
                    amount = money(invoice["total"], invoice["currency"], config.locale)
                    if invoice["status"] == "open":
                        message += (f" Invoice {invoice['number']} for {amount} is due on "
                                    f"{as_utc(invoice['due_at']):%d %b %Y}.")
                    elif invoice["payment_note"]:
                        message += f" {amount} was charged to {invoice['payment_note']}."
            else:
                await Subscription.update({Subscription.pending_plan_id: target.id, Subscription.updated_at: now}
                                          ).where(Subscription.id == sub["id"])
                message = f"You will move to {target.name} on {proration.next_date:%d %b %Y}."
            await emit(ctx, "billing.plan.changed", organization_id=org.id,
                       target=Target("subscription", str(sub["id"]), org.name),
                       before={"plan": current.id}, after={"plan": target.id, "effective_now": proration.effective_now})
        return ActionResult(message)

    async def preview(self, ctx: RequestContext, org: CurrentOrganization, sub: dict[str, Any], current: Plan,
                      target: Plan) -> Proration:
        """The ledger's own proration (``service.preview_change``)."""
        return preview_change(billing_config(ctx.tenant), sub, current, target)

    async def cancel(self, ctx: RequestContext, org: CurrentOrganization, reason: str, feedback: str) -> ActionResult:
        """Mark the subscription to end at the period end, keeping the reason."""
        sub = await _subscription_or_fail(ctx, org)
        if sub["status"] == "canceled" or sub["cancel_at_period_end"]:
            raise BillingError("This subscription is already cancelled.")
        async with atomic():
            await Subscription.update({
                Subscription.cancel_at_period_end: True, Subscription.cancel_reason: reason,
                Subscription.cancel_feedback: feedback, Subscription.pending_plan_id: None,
                Subscription.updated_at: utcnow(),
            }).where(Subscription.id == sub["id"])
            await emit(ctx, "billing.subscription.cancelled", organization_id=org.id,
                       target=Target("subscription", str(sub["id"]), org.name),
                       before={"cancel_at_period_end": False},
                       after={"cancel_at_period_end": True, "reason": reason})
        end = as_utc(sub["current_period_end"])
        return ActionResult(f"Your subscription ends on {end:%d %b %Y}. You can reactivate it until then.")

    async def reactivate(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Undo a cancellation while the period is still running."""
        sub = await _subscription_or_fail(ctx, org)
        end = as_utc(sub["current_period_end"])
        if sub["status"] == "canceled" or not sub["cancel_at_period_end"] or (end and end <= utcnow()):
            raise BillingError("There is no pending cancellation to undo.")
        async with atomic():
            await Subscription.update({Subscription.cancel_at_period_end: False, Subscription.cancel_reason: "",
                                       Subscription.cancel_feedback: "", Subscription.updated_at: utcnow()}
                                      ).where(Subscription.id == sub["id"])
            await emit(ctx, "billing.subscription.reactivated", organization_id=org.id,
                       target=Target("subscription", str(sub["id"]), org.name),
                       before={"cancel_at_period_end": True}, after={"cancel_at_period_end": False})
        return ActionResult("Your subscription continues. Welcome back!")

    async def retry_payment(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Charge overdue invoices to the card on file; an expired card fails and notifies the payers."""
        invoices = await overdue_invoices(ctx.tenant.id, org.id)
        if not invoices:
            raise BillingError("There is no overdue invoice to pay.")
        customer = await customer_of(ctx.tenant.id, org.id)
        config = billing_config(ctx.tenant)
        now = utcnow()
        if card_expired(customer, now):
            reason = "The card on file has expired." if customer and customer["pm_last4"] else "No card on file."
            async with atomic():
                for invoice in invoices:
                    await notices.payment_failed(ctx, org.id, org.slug, org.name, invoice, reason,
                                                 dedupe=now.strftime("%Y%m%d%H%M"))
                    await emit(ctx, "billing.invoice.payment_failed", organization_id=org.id,
                               target=Target("invoice", str(invoice["id"]), invoice["number"]),
                               outcome="failure", data={"reason": reason})
            raise BillingError(f"Payment failed: {reason} Update the payment method, then retry.")
        assert customer is not None
        note = card_note(customer)
        async with atomic():
            for invoice in invoices:
                await Invoice.update({Invoice.status: "paid", Invoice.paid_at: now,
                                      Invoice.amount_paid: invoice["total"], Invoice.payment_note: note}
                                     ).where(Invoice.id == invoice["id"], Invoice.status == "open")
                await emit(ctx, "billing.invoice.paid", organization_id=org.id,
                           target=Target("invoice", str(invoice["id"]), invoice["number"]),
                           before={"status": "open"}, after={"status": "paid"})
            await Subscription.update({Subscription.status: "active", Subscription.updated_at: now}).where(
                Subscription.tenant == ctx.tenant.id, Subscription.organization == org.id,
                Subscription.status == "past_due")
        paid = sum(i["total"] for i in invoices)
        return ActionResult(f"Paid {money(paid, invoices[0]['currency'], config.locale)} with {note}.")

    async def pause(self, ctx: RequestContext, org: CurrentOrganization, months: int) -> ActionResult:
        """The paid period runs to its end; then nothing is invoiced until the resume date (renewals skip it)."""
        sub = await _subscription_or_fail(ctx, org)
        refusal = pause_refusal(billing_config(ctx.tenant), sub, months, await customer_of(ctx.tenant.id, org.id))
        if refusal:
            raise BillingError(refusal)
        starts = as_utc(sub["current_period_end"])
        assert starts is not None
        resumes = add_months(starts, months)
        async with atomic():
            await Subscription.update({Subscription.pause_starts_at: starts, Subscription.pause_resumes_at: resumes,
                                       Subscription.pending_plan_id: None, Subscription.updated_at: utcnow()}
                                      ).where(Subscription.id == sub["id"])
            await emit(ctx, "billing.subscription.paused", organization_id=org.id,
                       target=Target("subscription", str(sub["id"]), org.name),
                       after={"from": starts.isoformat(), "until": resumes.isoformat(), "months": months})
        return ActionResult(f"Your subscription pauses on {starts:%d %b %Y} and resumes on {resumes:%d %b %Y}. "
                            "No invoices in between.")

    async def resume(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Before the pause starts: call it off. During it: a new period starts today and is invoiced."""
        from plugins.billing.renewals import invoice_period

        sub = await _subscription_or_fail(ctx, org)
        starts, resumes = as_utc(sub["pause_starts_at"]), as_utc(sub["pause_resumes_at"])
        if starts is None or sub["status"] == "canceled":
            raise BillingError("There is no pause to end.")
        until = resumes.isoformat() if resumes is not None else None  # None: paused until resumed
        now = utcnow()
        cleared = {Subscription.pause_starts_at: None, Subscription.pause_resumes_at: None,
                   Subscription.updated_at: now}
        target = Target("subscription", str(sub["id"]), org.name)
        async with atomic():
            if now < starts:
                await Subscription.update(cleared).where(Subscription.id == sub["id"])
                await emit(ctx, "billing.subscription.resumed", organization_id=org.id, target=target,
                           before={"until": until}, after={"paused": False})
                return ActionResult("The pause is called off: your plan continues as before.")
            plan = billing_config(ctx.tenant).plan(sub["plan_id"])
            if plan is None:
                raise BillingError("This subscription cannot be resumed online; contact support.")
            end = next_period_end(now, plan.interval)
            moved = await Subscription.update({**cleared, Subscription.current_period_start: now,
                                               Subscription.current_period_end: end}).where(
                Subscription.id == sub["id"], Subscription.pause_starts_at == starts).returning(Subscription.id)
            if not moved:
                raise BillingError("The subscription changed meanwhile; reload the page.")
            await invoice_period(ctx, org, plan, now, end, now)
            await emit(ctx, "billing.subscription.resumed", organization_id=org.id, target=target,
                       before={"until": until}, after={"paused": False, "period_end": end.isoformat()})
        return ActionResult(f"Welcome back: your subscription runs again from today; next invoice {end:%d %b %Y}.")

    async def sync_details(self, ctx: RequestContext, org: CurrentOrganization, details: dict[str, Any]) -> None:
        """Nothing to push: the ledger is the source of truth."""

    async def payment_method_url(self, ctx: RequestContext, org: CurrentOrganization, return_url: str) -> str | None:
        """Cards are not handled online on the local ledger."""
        return None


async def provider_for(ctx: RequestContext, org_id: Any) -> BillingProvider:
    """Stripe when the tenant bills through Stripe and the organization is a Stripe customer; local otherwise
    (contract customers always stay on the ledger)."""
    config = billing_config(ctx.tenant)
    if config.provider == "stripe":
        customer = await customer_of(ctx.tenant.id, org_id)
        if customer and customer["stripe_customer_id"] and not customer["contract_terms"]:
            from plugins.billing.stripe_provider import StripeProvider

            return await StripeProvider.for_tenant(ctx)
    return LocalProvider()


async def save_details(ctx: RequestContext, org: CurrentOrganization, details: dict[str, str]) -> None:
    """Store billing details (validated by the caller) with an event listing what changed."""
    customer = await customer_of(ctx.tenant.id, org.id)
    assert customer is not None
    before = {k: customer[k] for k in details}
    changed = {k: v for k, v in details.items() if before.get(k) != v}
    if not changed:
        return
    async with atomic():
        await BillingCustomer.update({**{getattr(BillingCustomer, k): v for k, v in changed.items()},
                                      BillingCustomer.updated_at: utcnow()}).where(BillingCustomer.id == customer["id"])
        await emit(ctx, "billing.details.updated", organization_id=org.id,
                   target=Target("billing_customer", str(customer["id"]), org.name),
                   before={k: before[k] for k in changed}, after=changed)
