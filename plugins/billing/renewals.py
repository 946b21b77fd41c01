"""Renewals of the local ledger: when a period ends, start the next one and invoice it, exactly once.

Stripe renews its own subscriptions (and tells us by webhook); this is for subscriptions
the local ledger carries. At a period end the job, in one transaction per period:

- ends a subscription cancelled at period end (no invoice);
- applies a downgrade scheduled for the period end (the next invoice is at the new price);
- starts a pause: the next "period" runs to the resume date and is not invoiced (a pause with no resume
  date skips one plan interval at a time, uninvoiced, until someone resumes it);
- otherwise starts the next period of the plan's interval and writes its invoice (paid with
  the card on file when it is valid, open with the tenant's payment terms otherwise).

Exactly once: each step moves the period forward with an update conditioned on the period
end it read (``UPDATE ... WHERE current_period_end = <read value>``); a concurrent run
(another worker, ``portal billing renew`` from cron) finds the row moved and writes nothing.
An organization months behind catches up one period at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.context import CurrentOrganization, RequestContext, system_context
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.tables import Organization
from plugins.billing.plans import billing_config
from plugins.billing.service import (
    RENEWAL_INVOICE,
    create_invoice,
    customer_of,
    next_period_end,
    plan_line,
    settlement,
)
from plugins.billing.tables import Subscription

log = logging.getLogger("portal.billing.renewals")
MAX_PERIODS_PER_RUN = 36  # a subscription years behind catches up over several runs, never in one endless loop
TASK_KEY = "billing_renewal_task"


@dataclass
class RenewalReport:
    """What one run did (printed by ``portal billing renew``)."""

    invoiced: int = 0
    paused: int = 0
    ended: int = 0
    downgraded: int = 0
    skipped: list[str] = field(default_factory=list)


async def _claim(row: dict[str, Any], values: dict[str, Any]) -> bool:
    """Move the row on from the period end we read; False when another run already did."""
    moved = await Subscription.update({getattr(Subscription, k): v for k, v in values.items()}).where(
        Subscription.id == row["id"], Subscription.current_period_end == as_utc(row["current_period_end"]),
        Subscription.status != "canceled").returning(Subscription.id)
    return bool(moved)


async def renew_one(ctx: RequestContext, row: dict[str, Any], org: CurrentOrganization, now: datetime,
                    report: RenewalReport) -> dict[str, Any] | None:
    """Carry one subscription over the period end in ``row``; returns the row as it is now (None: stop)."""
    config = billing_config(ctx.tenant)
    end = as_utc(row["current_period_end"])
    assert end is not None
    target = Target("subscription", str(row["id"]), org.name)
    async with atomic():
        if row["cancel_at_period_end"]:
            if not await _claim(row, {"status": "canceled", "canceled_at": end, "pending_plan_id": None,
                                      "updated_at": now}):
                return None
            await emit(ctx, "billing.subscription.ended", organization_id=org.id, target=target,
                       before={"status": row["status"]}, after={"status": "canceled", "ended_at": end.isoformat()})
            report.ended += 1
            return None
        plan = config.plan(row["pending_plan_id"]) or config.plan(row["plan_id"])
        if plan is None:
            report.skipped.append(f"{org.slug}: plan {row['plan_id']!r} is no longer in the manifest")
            return None
        starts, resumes = as_utc(row["pause_starts_at"]), as_utc(row["pause_resumes_at"])
        values: dict[str, Any] = {"current_period_start": end, "plan_id": plan.id, "pending_plan_id": None,
                                  "updated_at": now}
        pausing = starts is not None and starts <= end and (resumes is None or end < resumes)
        if pausing:
            values["current_period_end"] = resumes or next_period_end(end, plan.interval)
        else:
            values["current_period_end"] = next_period_end(end, plan.interval)
            if resumes is not None and resumes <= end:
                values.update(pause_starts_at=None, pause_resumes_at=None)
        if not await _claim(row, values):
            return None
        if row["pending_plan_id"] and plan.id != row["plan_id"]:
            report.downgraded += 1
            await emit(ctx, "billing.plan.changed", organization_id=org.id, target=target,
                       before={"plan": row["plan_id"]}, after={"plan": plan.id, "at_period_end": True})
        if pausing:
            report.paused += 1
        else:
            await invoice_period(ctx, org, plan, end, values["current_period_end"], now)
            report.invoiced += 1
    return {**row, **values}


async def invoice_period(ctx: RequestContext, org: CurrentOrganization, plan: Any, start: datetime,
                          end: datetime, now: datetime) -> None:
    """The period's invoice: paid with a valid card on file, open (payment terms) for contracts and bank transfer
    (``service.settlement``, the rule proration invoices follow too)."""
    settled = settlement(await customer_of(ctx.tenant.id, org.id), start, plan.price)
    invoice = await create_invoice(ctx, org.id, [plan_line(plan, start, end)], plan.currency,
                                   status=settled.status, issued_at=start, paid_at=settled.paid_at,
                                   payment_note=settled.payment_note, period=(start, end), kind=RENEWAL_INVOICE)
    await emit(ctx, "billing.invoice.created", organization_id=org.id,
               target=Target("invoice", str(invoice["id"]), invoice["number"]),
               after={"status": invoice["status"], "total": invoice["total"], "renewal": True})


async def renew_due(runtime: Any, now: datetime | None = None, tenant_id: Any = None) -> RenewalReport:
    """Renew every local subscription whose period has ended (on tenants with billing enabled)."""
    now = now or utcnow()
    report = RenewalReport()
    query = Subscription.select().where(Subscription.current_period_end <= now, Subscription.status != "canceled",
                                        Subscription.stripe_subscription_id.is_null())
    if tenant_id is not None:
        query = query.where(Subscription.tenant == tenant_id)
    rows = await query.order_by(Subscription.current_period_end)
    for row in rows:
        tenant = runtime.directory.get(row["tenant"])
        if tenant is None or not runtime.plugins.is_enabled("billing", tenant):
            continue
        org_row = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
            Organization.id == row["organization"], Organization.tenant == row["tenant"]).first()
        if org_row is None:
            continue
        org = CurrentOrganization(org_row["id"], org_row["slug"], org_row["name"])
        ctx = system_context(runtime, tenant, organization=org)
        current: dict[str, Any] | None = row
        for _ in range(MAX_PERIODS_PER_RUN):
            if current is None or as_utc(current["current_period_end"]) > now:
                break
            current = await renew_one(ctx, current, org, now, report)
    return report


async def run_periodically(runtime: Any, interval: float) -> None:
    """The app's renewal loop (started by ``portal_startup`` where the outbox worker runs): renewals, then the
    reminders for renewal and proration invoices still open (``reminders.py``), so a fresh invoice is never
    reminded of late."""
    from plugins.billing.reminders import remind_open_invoices

    while True:
        try:
            await runtime.directory.ensure_fresh()
            report = await renew_due(runtime)
            if report.invoiced or report.ended or report.paused:
                log.info("billing renewals: %s", report)
        except Exception:  # noqa: BLE001 - try again next round
            log.exception("billing renewals failed")
        try:
            reminders = await remind_open_invoices(runtime)
            if reminders.invoices:
                log.info("billing invoice reminders: %s", reminders)
        except Exception:  # noqa: BLE001 - try again next round
            log.exception("billing invoice reminders failed")
        await asyncio.sleep(interval)


def start(runtime: Any) -> None:
    """Start the loop once per app (only where the outbox worker runs, so tests and CLIs stay quiet)."""
    if not runtime.settings.outbox_worker or TASK_KEY in runtime.state:
        return
    interval = float(runtime.settings.extra.get("billing_renew_interval", "3600"))
    runtime.state[TASK_KEY] = asyncio.get_running_loop().create_task(run_periodically(runtime, interval))


async def stop(runtime: Any) -> None:
    """Stop the loop (app shutdown)."""
    task = runtime.state.pop(TASK_KEY, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

