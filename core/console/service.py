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
from collections.abc import Iterable
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


CONSOLE_OWNED_COLUMNS = frozenset({"theme", "branding", "plugins", "logo"})
"""Tenant columns a manifest also sets: once the console changes one, re-applying the manifest keeps it."""


def changed_setting_paths(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """``settings.<section>.<key>`` for each key a change touched (``settings.<section>`` if a section isn't a table).

    Claiming keys, not whole sections, leaves the rest of a section to the manifest: a plan
    edited in the console must not freeze ``[settings.billing] invoice_reminder_days``.
    """
    paths: set[str] = set()
    for section in set(before) | set(after):
        old, new = before.get(section), after.get(section)
        if old == new:
            continue
        if isinstance(old or {}, dict) and isinstance(new or {}, dict):
            old, new = old or {}, new or {}
            paths |= {f"settings.{section}.{key}" for key in set(old) | set(new) if old.get(key) != new.get(key)}
        else:
            paths.add(f"settings.{section}")
    return paths


async def _claim_for_console(tenant_id: uuid.UUID, values: dict[Any, Any], owned: Iterable[str]) -> None:
    """Add what this change touches to ``Tenant.console_owned`` (see ``core.manifests``)."""
    names = {column._meta.name: column for column in values}
    row = await Tenant.select(Tenant.theme, Tenant.branding, Tenant.plugins, Tenant.settings,
                              Tenant.console_owned).where(Tenant.id == tenant_id).first()
    if row is None:
        return
    current = {"theme": row["theme"], "branding": load_json(row["branding"]), "plugins": load_json(row["plugins"])}
    claimed = set(owned) | {name for name in names.keys() & CONSOLE_OWNED_COLUMNS
                            if name == "logo" or current[name] != values[names[name]]}
    if "settings" in names:
        claimed |= changed_setting_paths(load_json(row["settings"]) or {}, values[Tenant.settings] or {})
    already = set(load_json(row["console_owned"]) or [])
    if claimed - already:
        values[Tenant.console_owned] = sorted(already | claimed)


async def bump_version(tenant_id: uuid.UUID, updates: dict[Any, Any] | None = None, *,
                       owned: Iterable[str] = ()) -> None:
    """Write ``updates`` and a new version in one statement (call inside ``atomic()``).

    What the change touches is recorded as the console's (``owned`` adds paths the columns
    don't show, e.g. ``domains.primary``), so ``portal tenants apply`` won't undo it.
    """
    values: dict[Any, Any] = dict(updates or {})
    await _claim_for_console(tenant_id, values, owned)
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
