"""Tenant administration without HTTP: every change to the core ``tenant`` / ``tenant_domain`` rows.

Each change runs in one transaction with its event (``console.*``, before/after), bumps
``Tenant.version`` (so the content-hashed brand stylesheet and logo URLs change) and then
invalidates the tenant directory, so the next request on this process sees it. With
``PORTAL_REDIS_URL`` set the invalidation is broadcast to every process at once
(``core.invalidation``); without Redis, other processes reload their snapshot within
``PORTAL_TENANT_CACHE_TTL`` seconds (30 by default).
"""

from __future__ import annotations

import uuid
from typing import Any

from core.context import RequestContext
from core.db import atomic, load_json, utcnow
from core.events import Target, emit
from core.tables import Tenant


class ConsoleError(ValueError):
    """A change the console refuses; the message is for the tenant admin."""


async def tenant_row(tenant_id: uuid.UUID) -> dict[str, Any]:
    """The tenant's current row (fresh from the database, not the cached snapshot)."""
    row = await Tenant.select(
        Tenant.id, Tenant.slug, Tenant.name, Tenant.theme, Tenant.status, Tenant.branding, Tenant.plugins,
        Tenant.settings, Tenant.version, Tenant.logo_type, Tenant.created_at,
    ).where(Tenant.id == tenant_id).first()
    if row is None:
        raise ConsoleError("This portal no longer exists.")
    for key in ("branding", "settings"):
        row[key] = load_json(row[key]) or {}
    row["plugins"] = load_json(row["plugins"])
    return row


async def bump_version(tenant_id: uuid.UUID, updates: dict[Any, Any] | None = None) -> None:
    """Write ``updates`` and a new version in one statement (call inside ``atomic()``)."""
    values: dict[Any, Any] = dict(updates or {})
    values[Tenant.version] = Tenant.version + 1
    values[Tenant.updated_at] = utcnow()
    await Tenant.update(values).where(Tenant.id == tenant_id)


async def change_tenant(ctx: RequestContext, event_type: str, *, updates: dict[Any, Any],
                        before: dict[str, Any] | None, after: dict[str, Any] | None,
                        target: Target | None = None) -> None:
    """Update the tenant row, record ``event_type`` in the same transaction, then invalidate the directory."""
    async with atomic():
        await bump_version(ctx.tenant.id, updates)
        await emit(ctx, event_type, target=target or Target("tenant", str(ctx.tenant.id), ctx.tenant.name),
                   before=before, after=after)
    ctx.runtime.directory.invalidate()


async def settings_section(tenant_id: uuid.UUID, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(all settings, settings[key])`` of the tenant, fresh from the database."""
    settings = (await tenant_row(tenant_id))["settings"]
    section = settings.get(key)
    return settings, dict(section) if isinstance(section, dict) else {}
