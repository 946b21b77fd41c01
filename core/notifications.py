"""In-app notifications: the bell in the header and ``/notifications``.

Plugins call ``notify`` inside their transaction; the row is the notification,
no outbox needed because it never leaves the database.
"""

from __future__ import annotations

import uuid

from core.context import RequestContext
from core.db import utcnow
from core.tables import Notification


async def notify(tenant_id: uuid.UUID, user_id: uuid.UUID, title: str, *, body: str = "", link: str = "",
                 organization_id: uuid.UUID | None = None) -> None:
    """Add a notification for one user."""
    await Notification.insert(Notification(
        id=uuid.uuid4(), tenant=tenant_id, user=user_id, organization=organization_id,
        title=title[:200], body=body, link=link[:500], created_at=utcnow(),
    ))


async def unread_count(ctx: RequestContext) -> int:
    """The number on the bell."""
    if ctx.user is None:
        return 0
    return await Notification.count().where(
        Notification.user == ctx.user.id, Notification.tenant == ctx.tenant.id, Notification.read_at.is_null()
    )
