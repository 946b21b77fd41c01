"""Domain events: one ``emit`` call per change, fanned out through ``portal_event``.

``emit`` runs inside the caller's transaction (wrap the change and the emit in
``core.db.atomic()``): the audit record a plugin writes for the event commits or
rolls back with the change itself, and a failing ``portal_event`` fails the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.context import Actor, RequestContext
from core.db import utcnow


@dataclass(frozen=True)
class Target:
    """What an event is about: a type (``membership``), an id and a name a person recognises."""

    type: str
    id: str | None = None
    display: str = ""


@dataclass(frozen=True)
class Event:
    """A change that happened (see ARCHITECTURE.md, Events)."""

    type: str
    tenant_id: uuid.UUID
    organization_id: uuid.UUID | None
    actor: Actor
    target: Target | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    outcome: str
    ip: str
    user_agent: str
    request_id: str
    time: datetime
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    data: dict[str, Any] = field(default_factory=dict)


async def emit(ctx: RequestContext, type: str, *, target: Target | None = None,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
               organization_id: uuid.UUID | None = None, outcome: str = "success",
               actor: Actor | None = None, data: dict[str, Any] | None = None) -> Event:
    """Build the event from the request context and hand it to every enabled plugin."""
    if organization_id is None and ctx.organization is not None:
        organization_id = ctx.organization.id
    event = Event(
        type=type, tenant_id=ctx.tenant.id, organization_id=organization_id,
        actor=actor or ctx.actor, target=target, before=before, after=after, outcome=outcome,
        ip=ctx.ip, user_agent=ctx.user_agent, request_id=ctx.request_id, time=utcnow(), data=data or {},
    )
    await ctx.runtime.plugins.call("portal_event", tenant=ctx.tenant, strict=True, event=event)
    return event


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that differ, for an event's before/after."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
