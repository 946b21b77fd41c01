"""Telling people about billing trouble: email and in-app notification to owners and billing members.

Mail goes through the outbox (``send_mail``), the bell row is written in the same
transaction; a ``dedupe`` token keeps a replayed webhook from mailing twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.context import RequestContext
from core.mail import send_mail
from core.notifications import notify
from plugins.billing.plans import billing_config, money
from plugins.billing.service import billing_contacts


async def payment_failed(ctx: RequestContext, org_id: uuid.UUID, org_slug: str, org_name: str,
                         invoice: dict[str, Any], reason: str, dedupe: str) -> int:
    """Notify every owner and billing member that paying ``invoice`` failed; returns how many were told."""
    config = billing_config(ctx.tenant)
    amount = money(invoice["total"] - invoice.get("amount_paid", 0), invoice["currency"], config.locale)
    link = f"/o/{org_slug}/billing"
    title = f"Payment of {amount} for {org_name} failed"
    contacts = await billing_contacts(ctx.tenant.id, org_id)
    for user in contacts:
        queued = await send_mail(
            ctx, user["email"], "billing_payment_failed", title,
            dedupe_key=f"billing:payment_failed:{invoice['id']}:{user['id']}:{dedupe}"[:200],
            name=user["name"] or user["email"], organization_name=org_name, amount=amount,
            invoice_number=invoice["number"], reason=reason, link=link,
        )
        if queued:
            await notify(ctx.tenant.id, user["id"], title, body=f"Invoice {invoice['number']}: {reason}",
                         link=link, organization_id=org_id)
    return len(contacts)
