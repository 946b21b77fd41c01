"""Branded email, sent through the outbox.

``send_mail`` renders the HTML and text bodies in the tenant's theme *now* (the
content is what the user saw happen) and enqueues them; the outbox worker hands
them to SMTP (``aiosmtplib``) or, in development, to the dev outbox that
``/_dev/mail`` shows. Links in mail use the tenant's primary domain, never the Host
of the request that caused the mail.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

import aiosmtplib

from core.context import RequestContext
from core.db import utcnow
from core.outbox import enqueue
from core.tables import DevMail

MAIL_KIND = "core.mail"


def sender_of(ctx: RequestContext) -> str:
    """The tenant's sender (branding ``sender_name`` / ``sender_email``), else no-reply at its domain."""
    branding = ctx.tenant.branding
    address = branding.get("sender_email") or f"no-reply@{ctx.tenant.primary_host or 'portal.invalid'}"
    return formataddr((branding.get("sender_name") or ctx.tenant.product_name, address))


def tenant_base_url(ctx: RequestContext) -> str:
    """The tenant's own address for links (``public_url`` in tenant settings overrides scheme and port)."""
    configured = ctx.tenant.settings.get("public_url")
    if configured:
        return str(configured).rstrip("/")
    scheme = "https" if ctx.runtime.settings.production else "http"
    port = ctx.runtime.settings.extra.get("public_port")
    return ctx.tenant.base_url(scheme, int(port) if port else None)


async def send_mail(ctx: RequestContext, to: str, template: str, subject: str, *,
                    dedupe_key: str | None = None, **context: Any) -> bool:
    """Render ``mail/{template}.txt`` and ``.html`` in the tenant's theme and queue them for delivery.

    ``mail/notice`` is a generic template (``heading``, ``message``, ``action_path``,
    ``action_label``) for plugins that need no layout of their own.
    """
    env = ctx.runtime.themes.environment(ctx.theme)
    base = {
        "tenant": ctx.tenant, "brand": ctx.tenant.branding, "product_name": ctx.tenant.product_name,
        "base_url": tenant_base_url(ctx), "subject": subject, **context,
    }
    text = env.get_template(f"mail/{template}.txt").render(**base)
    html = env.get_template(f"mail/{template}.html").render(**base)
    payload = {"from": sender_of(ctx), "to": to, "subject": subject, "text": text, "html": html}
    return await enqueue(MAIL_KIND, payload, tenant_id=ctx.tenant.id, dedupe_key=dedupe_key)


async def deliver_mail(payload: dict[str, Any], *, tenant_id: uuid.UUID | None, app: Any,
                       message_id: uuid.UUID | None = None) -> None:
    """Outbox handler: send one rendered mail through the configured backend."""
    settings = app.state.portal.settings
    if settings.mail_backend == "dev":
        await DevMail.insert(DevMail(
            id=uuid.uuid4(), tenant=tenant_id, sender=payload["from"], recipient=payload["to"],
            subject=payload["subject"], text=payload["text"], html=payload["html"], created_at=utcnow(),
        ))
        return
    message = EmailMessage()
    message["From"] = payload["from"]
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = make_msgid(idstring=str(message_id) if message_id else None, domain="portal")
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    await aiosmtplib.send(
        message, hostname=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
        password=settings.smtp_password, start_tls=settings.smtp_starttls, timeout=30,
    )
