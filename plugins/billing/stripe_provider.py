"""StripeProvider: a tenant's own Stripe account through the official SDK (one ``StripeClient`` per tenant).

Called only on explicit actions (change plan, cancel, reactivate, retry, details,
card update); the local copy is then brought up to date from Stripe's answer and,
later, from webhooks. The API base is configurable per tenant (``api_base``), so tests
run against ``localstripe``. Plans map to Stripe through ``stripe_price_id``; against
a server without prices (localstripe) the same id names a legacy plan
(``price_mode = "plan"`` in ``[settings.billing]``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import stripe

from core.context import CurrentOrganization, RequestContext
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from plugins.billing.plans import Plan
from plugins.billing.providers import ActionResult, BillingError
from plugins.billing.service import Proration, customer_of, pause_set, subscription_of
from plugins.billing.tables import StripeAccount


async def stripe_account(ctx: RequestContext) -> dict[str, Any] | None:
    """The tenant's Stripe connection with its secrets decrypted."""
    row = await StripeAccount.select().where(StripeAccount.tenant == ctx.tenant.id).first()
    if row is None:
        return None
    secrets = json.loads(ctx.runtime.secrets.decrypt(row["webhook_secrets"])) if row["webhook_secrets"] else []
    return {**row, "secret_key": ctx.runtime.secrets.decrypt(row["secret_key"]), "webhook_secrets": secrets}


async def connect(ctx: RequestContext, secret_key: str, webhook_secrets: list[str], api_base: str = "",
                  portal_configuration: str = "") -> None:
    """Store (or replace) the tenant's Stripe keys, encrypted with the platform key."""
    values = {"secret_key": ctx.runtime.secrets.encrypt(secret_key),
              "webhook_secrets": ctx.runtime.secrets.encrypt(json.dumps(webhook_secrets)),
              "api_base": api_base, "portal_configuration": portal_configuration, "updated_at": utcnow()}
    async with atomic():
        existing = await StripeAccount.select(StripeAccount.id).where(StripeAccount.tenant == ctx.tenant.id).first()
        if existing:
            await StripeAccount.update({getattr(StripeAccount, k): v for k, v in values.items()}).where(
                StripeAccount.id == existing["id"])
        else:
            await StripeAccount.insert(StripeAccount(id=uuid.uuid4(), tenant=ctx.tenant.id, **values))
        await emit(ctx, "billing.stripe.connected", target=Target("tenant", str(ctx.tenant.id), ctx.tenant.name),
                   after={"api_base": api_base or "https://api.stripe.com", "webhook_secrets": len(webhook_secrets)})


def client_for(account: dict[str, Any]) -> stripe.StripeClient:
    """A client bound to one tenant's key and API base (never the module-global ``stripe.api_key``)."""
    bases = {"api": account["api_base"]} if account["api_base"] else {}
    return stripe.StripeClient(account["secret_key"], base_addresses=bases, max_network_retries=2)


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking SDK call in a thread; Stripe errors become messages for the person."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except stripe.StripeError as exc:
        raise BillingError(f"Stripe refused: {exc.user_message or exc}") from exc


class StripeProvider:
    """Actions against the tenant's Stripe account; the local copy follows via ``mirror``."""

    name = "stripe"

    def __init__(self, client: stripe.StripeClient, account: dict[str, Any]) -> None:
        self.client = client
        self.account = account

    @classmethod
    async def for_tenant(cls, ctx: RequestContext) -> StripeProvider:
        """The provider of the request's tenant; an error when it has not connected Stripe."""
        account = await stripe_account(ctx)
        if account is None:
            raise BillingError("Billing is not connected yet; contact support.")
        return cls(client_for(account), account)

    def _item(self, ctx: RequestContext, plan: Plan) -> dict[str, Any]:
        mode = (ctx.tenant.settings.get("billing") or {}).get("price_mode", "price")
        return {"plan" if mode == "plan" else "price": plan.stripe_price_id}

    async def _sub(self, ctx: RequestContext, org: CurrentOrganization) -> dict[str, Any]:
        row = await subscription_of(ctx.tenant.id, org.id)
        if row is None or not row["stripe_subscription_id"]:
            raise BillingError("This organization has no Stripe subscription.")
        return row

    async def _mirror(self, ctx: RequestContext, subscription: Any) -> None:
        from plugins.billing.webhooks import apply_subscription

        await apply_subscription(ctx, subscription.to_dict(), 0, force=True)

    async def change_plan(self, ctx: RequestContext, org: CurrentOrganization, target: Plan) -> ActionResult:
        """Swap the subscription item to the target's price, prorating now."""
        row = await self._sub(ctx, org)
        current = await call(self.client.v1.subscriptions.retrieve, row["stripe_subscription_id"])
        item = current.to_dict()["items"]["data"][0]
        updated = await call(self.client.v1.subscriptions.update, row["stripe_subscription_id"], params={
            "items": [{"id": item["id"], **self._item(ctx, target)}], "prorate": True})
        await self._mirror(ctx, updated)
        async with atomic():
            await emit(ctx, "billing.plan.changed", organization_id=org.id,
                       target=Target("subscription", str(row["id"]), org.name),
                       before={"plan": row["plan_id"]}, after={"plan": target.id, "provider": "stripe"})
        return ActionResult(f"You are now on {target.name}.")

    async def preview(self, ctx: RequestContext, org: CurrentOrganization, sub: dict[str, Any], current: Plan,
                      target: Plan) -> Proration:
        """Stripe's own numbers for an upgrade (``invoices.create_preview`` with the swapped item and a proration
        date of now), so the preview matches what Stripe will charge. A downgrade waiting for the period end costs
        nothing today: the local computation says so without a call."""
        from plugins.billing.plans import billing_config
        from plugins.billing.service import preview_change

        local = preview_change(billing_config(ctx.tenant), sub, current, target)
        if not local.effective_now:
            return local
        row = await self._sub(ctx, org)
        customer = await customer_of(ctx.tenant.id, org.id)
        assert customer is not None
        remote = await call(self.client.v1.subscriptions.retrieve, row["stripe_subscription_id"])
        item = remote.to_dict()["items"]["data"][0]
        upcoming = (await call(self.client.v1.invoices.create_preview, params={
            "customer": customer["stripe_customer_id"], "subscription": row["stripe_subscription_id"],
            "subscription_details": {"items": [{"id": item["id"], **self._item(ctx, target)}],
                                     "proration_date": int(utcnow().timestamp())},
        })).to_dict()
        lines = (upcoming.get("lines") or {}).get("data") or []
        credit = -sum(int(line.get("amount") or 0) for line in lines if int(line.get("amount") or 0) < 0)
        positive = [line for line in lines if int(line.get("amount") or 0) > 0]
        prorated = [line for line in positive if line.get("proration")] or positive
        charge = sum(int(line.get("amount") or 0) for line in prorated)
        subtotal = charge - credit
        total = int(upcoming.get("total") if upcoming.get("total") is not None else subtotal)
        tax = total - int(upcoming.get("subtotal") if upcoming.get("subtotal") is not None else total)
        due = int(upcoming.get("amount_due") if upcoming.get("amount_due") is not None else total)
        return Proration(current, target, local.upgrade, True, credit, charge, subtotal, tax, max(0, due),
                         target.price, local.next_date, str(upcoming.get("currency") or target.currency).upper(),
                         source="stripe")

    async def cancel(self, ctx: RequestContext, org: CurrentOrganization, reason: str, feedback: str) -> ActionResult:
        """``cancel_at_period_end`` on Stripe, the reason kept locally."""
        row = await self._sub(ctx, org)
        updated = await call(self.client.v1.subscriptions.update, row["stripe_subscription_id"],
                             params={"cancel_at_period_end": True})
        await self._mirror(ctx, updated)
        from plugins.billing.tables import Subscription

        async with atomic():
            await Subscription.update({Subscription.cancel_reason: reason, Subscription.cancel_feedback: feedback}
                                      ).where(Subscription.id == row["id"])
            await emit(ctx, "billing.subscription.cancelled", organization_id=org.id,
                       target=Target("subscription", str(row["id"]), org.name), after={"reason": reason})
        return ActionResult("Your subscription ends at the end of the period. You can reactivate it until then.")

    async def reactivate(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Clear ``cancel_at_period_end`` on Stripe."""
        row = await self._sub(ctx, org)
        updated = await call(self.client.v1.subscriptions.update, row["stripe_subscription_id"],
                             params={"cancel_at_period_end": False})
        await self._mirror(ctx, updated)
        async with atomic():
            await emit(ctx, "billing.subscription.reactivated", organization_id=org.id,
                       target=Target("subscription", str(row["id"]), org.name))
        return ActionResult("Your subscription continues. Welcome back!")

    async def retry_payment(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Pay the open Stripe invoices again with the default payment method."""
        from plugins.billing.service import overdue_invoices
        from plugins.billing.webhooks import apply_invoice

        invoices = [i for i in await overdue_invoices(ctx.tenant.id, org.id) if i["stripe_invoice_id"]]
        if not invoices:
            raise BillingError("There is no overdue invoice to pay.")
        for invoice in invoices:
            paid = await call(self.client.v1.invoices.pay, invoice["stripe_invoice_id"])
            await apply_invoice(ctx, paid.to_dict(), 0, force=True)
        return ActionResult("Payment collected.")

    async def pause(self, ctx: RequestContext, org: CurrentOrganization, months: int) -> ActionResult:
        """``pause_collection`` (behaviour ``void``) resuming ``months`` after the paid period ends: Stripe keeps the
        subscription and voids the invoices it would send meanwhile."""
        from plugins.billing.plans import billing_config
        from plugins.billing.service import add_months, pause_refusal

        row = await self._sub(ctx, org)
        refusal = pause_refusal(billing_config(ctx.tenant), row, months, await customer_of(ctx.tenant.id, org.id))
        if refusal:
            raise BillingError(refusal)
        starts = as_utc(row["current_period_end"])
        assert starts is not None
        resumes = add_months(starts, months)
        updated = await call(self.client.v1.subscriptions.update, row["stripe_subscription_id"], params={
            "pause_collection": {"behavior": "void", "resumes_at": int(resumes.timestamp())}})
        await self._mirror(ctx, updated)
        async with atomic():
            await emit(ctx, "billing.subscription.paused", organization_id=org.id,
                       target=Target("subscription", str(row["id"]), org.name),
                       after={"until": resumes.isoformat(), "months": months, "provider": "stripe"})
        return ActionResult(f"Your subscription pauses on {starts:%d %b %Y} and resumes on {resumes:%d %b %Y}. "
                            "No invoices in between.")

    async def resume(self, ctx: RequestContext, org: CurrentOrganization) -> ActionResult:
        """Unset ``pause_collection`` (dated or until resumed): Stripe invoices again from the next period."""
        row = await self._sub(ctx, org)
        if not pause_set(row):
            raise BillingError("There is no pause to end.")
        updated = await call(self.client.v1.subscriptions.update, row["stripe_subscription_id"],
                             params={"pause_collection": ""})
        await self._mirror(ctx, updated)
        async with atomic():
            await emit(ctx, "billing.subscription.resumed", organization_id=org.id,
                       target=Target("subscription", str(row["id"]), org.name), after={"paused": False})
        return ActionResult("The pause is over: your subscription is invoiced again from the next period.")

    async def sync_details(self, ctx: RequestContext, org: CurrentOrganization, details: dict[str, Any]) -> None:
        """Name, email and address onto the Stripe customer (what Stripe prints on its own documents)."""
        customer = await customer_of(ctx.tenant.id, org.id)
        assert customer is not None
        await call(self.client.v1.customers.update, customer["stripe_customer_id"], params={
            "name": details["company_name"], "email": details["billing_email"],
            "address": {"line1": details["address_line1"], "line2": details["address_line2"],
                        "postal_code": details["postal_code"], "city": details["city"], "country": details["country"]},
            "metadata": {"po_number": details["po_number"], "tax_id": details["tax_id"]}})

    async def payment_method_url(self, ctx: RequestContext, org: CurrentOrganization, return_url: str) -> str | None:
        """A Stripe Customer Portal session (the tenant's portal configuration) returning to its own domain."""
        customer = await customer_of(ctx.tenant.id, org.id)
        assert customer is not None
        params: dict[str, Any] = {"customer": customer["stripe_customer_id"], "return_url": return_url}
        if self.account["portal_configuration"]:
            params["configuration"] = self.account["portal_configuration"]
        session = await call(self.client.v1.billing_portal.sessions.create, params=params)
        return str(session.url)
