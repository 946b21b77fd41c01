"""Reminders for ledger invoices left open: one email per reminder step per invoice, exactly once.

An invoice of the local ledger owed for the plan that is still open some days after it was issued is
reminded of: a period's (``kind = "renewal"``, written by ``renewals.invoice_period``) or a mid-period
upgrade's (``kind = "proration"``, written by ``LocalProvider.change_plan``). Both settle on issue by the same
rule (``service.settlement``), so they are open only when no valid card on file paid them (contract terms,
bank transfer, an expired card). The tenant sets the steps in ``[settings.billing] invoice_reminder_days``
(days after issue; default 3 and 7; ``[]`` for none). The owners and billing members of the organization
(``billing_contacts``, as for a failed payment) get a mail with the amount still due, the due date and links
to the invoice and the billing page, and a bell notification; ``billing.invoice.reminder_sent`` records it.

The sweep runs after every renewal run (the hourly loop where the outbox worker runs, and
``portal billing renew``). Exactly once: a step is claimed with an update conditioned on the invoice
still being open and on the step not yet sent (``UPDATE ... SET reminder_days = <step> WHERE status =
'open' AND reminder_days < <step>``) in the same transaction that queues the mails in the outbox, so a
concurrent or repeated run sends nothing more, and an invoice paid meanwhile is never claimed. A run that
finds several steps due at once (the job was down) sends the latest only. Invoices Stripe issues are left to
Stripe, which sends its own reminders; invoices written before this existed have no ``kind`` and are not
reminded of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.context import CurrentOrganization, RequestContext, system_context
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.mail import send_mail
from core.notifications import notify
from plugins.billing.plans import billing_config, money
from plugins.billing.service import PRORATION_INVOICE, RENEWAL_INVOICE, billing_contacts
from plugins.billing.tables import Invoice

REMINDED_KINDS = [RENEWAL_INVOICE, PRORATION_INVOICE]


@dataclass
class ReminderReport:
    """What one sweep did (printed by ``portal billing renew``)."""

    invoices: int = 0
    mails: int = 0


def due_step(days: tuple[int, ...], issued: datetime, sent: int, now: datetime) -> int | None:
    """The latest reminder step (days after ``issued``) that is due by ``now`` and later than the step ``sent``
    already; None when there is none, so a late run catches up with one mail, not a burst."""
    due = [day for day in days if day > sent and issued + timedelta(days=day) <= now]
    return max(due) if due else None


async def remind_open_invoices(runtime: Any, now: datetime | None = None, tenant_id: Any = None) -> ReminderReport:
    """Send the reminders due now for open renewal and proration invoices (on tenants with billing enabled); safe
    to repeat."""
    now = now or utcnow()
    report = ReminderReport()
    query = Invoice.select(
        Invoice.id, Invoice.tenant, Invoice.organization, Invoice.number, Invoice.currency, Invoice.total,
        Invoice.amount_paid, Invoice.issued_at, Invoice.due_at, Invoice.reminder_days,
        Invoice.organization.slug.as_alias("org_slug"), Invoice.organization.name.as_alias("org_name"),
    ).where(Invoice.status == "open", Invoice.issued_at <= now - timedelta(days=1),
            Invoice.kind.is_in(REMINDED_KINDS), Invoice.stripe_invoice_id.is_null())
    if tenant_id is not None:
        query = query.where(Invoice.tenant == tenant_id)
    for row in await query.order_by(Invoice.issued_at):
        tenant = runtime.directory.get(row["tenant"])
        if tenant is None or not runtime.plugins.is_enabled("billing", tenant):
            continue
        issued = as_utc(row["issued_at"])
        assert issued is not None
        step = due_step(billing_config(tenant).invoice_reminder_days, issued, row["reminder_days"], now)
        if step is None:
            continue
        org = CurrentOrganization(row["organization"], row["org_slug"], row["org_name"])
        mails = await remind(system_context(runtime, tenant, organization=org), row, step, now)
        if mails is not None:
            report.invoices += 1
            report.mails += mails
    return report


async def remind(ctx: RequestContext, row: dict[str, Any], step: int, now: datetime) -> int | None:
    """Claim reminder ``step`` of the invoice in ``row`` and queue its mails in the same transaction; returns how
    many people were mailed, or None when another run claimed the step or the invoice is no longer open."""
    org = ctx.organization
    assert org is not None
    config = billing_config(ctx.tenant)
    amount = money(row["total"] - row["amount_paid"], row["currency"], config.locale)
    due = as_utc(row["due_at"])
    overdue = due is not None and due <= now
    invoice_link = f"/o/{org.slug}/billing/invoices/{row['id']}/pdf"
    billing_link = f"/o/{org.slug}/billing"
    if overdue:
        subject = f"Overdue: invoice {row['number']} for {org.name} ({amount})"
    elif due is not None:
        subject = f"Reminder: invoice {row['number']} for {org.name} ({amount}) is due on {due:%d %b %Y}"
    else:
        subject = f"Reminder: invoice {row['number']} for {org.name} ({amount}) is open"
    async with atomic():
        claimed = await Invoice.update({Invoice.reminder_days: step, Invoice.reminded_at: utcnow()}).where(
            Invoice.id == row["id"], Invoice.tenant == ctx.tenant.id, Invoice.status == "open",
            Invoice.reminder_days < step).returning(Invoice.id)
        if not claimed:
            return None
        contacts = await billing_contacts(ctx.tenant.id, org.id)
        for user in contacts:
            queued = await send_mail(
                ctx, user["email"], "billing_invoice_reminder", subject,
                dedupe_key=f"billing:invoice_reminder:{row['id']}:{step}:{user['id']}",
                name=user["name"] or user["email"], organization_name=org.name, amount=amount,
                invoice_number=row["number"], issued_at=as_utc(row["issued_at"]), due_at=due, overdue=overdue,
                invoice_link=invoice_link, billing_link=billing_link,
            )
            if queued:
                await notify(ctx.tenant.id, user["id"], subject,
                             body=f"{amount} is still open on invoice {row['number']}.", link=billing_link,
                             organization_id=org.id)
        await emit(ctx, "billing.invoice.reminder_sent", organization_id=org.id,
                   target=Target("invoice", str(row["id"]), row["number"]),
                   before={"reminder_days": row["reminder_days"]}, after={"reminder_days": step},
                   data={"recipients": len(contacts), "amount_due": row["total"] - row["amount_paid"],
                         "due_at": due.isoformat() if due else None, "overdue": overdue})
    return len(contacts)
