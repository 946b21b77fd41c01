"""The tenant's favicon: stored apart from the logo (``tenant_asset``), served at ``/favicon.ico``.

Every page links ``/favicon.ico`` (core ``base.html``), so a stored favicon shows on every page of
the tenant; without one the logo serves (the previous behaviour), then the theme's icon. Upload
and removal are one transaction with their ``console.favicon.*`` event and bump the tenant's
version like every console change.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.console.images import CleanImage
from core.console.service import bump_version
from core.console.tables import TenantAsset
from core.context import RequestContext
from core.db import atomic, utcnow
from core.events import Target, emit

KIND = "favicon"


async def stored(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The tenant's favicon row (``data``, ``content_type``, ``updated_at``) or None."""
    return await TenantAsset.select(TenantAsset.data, TenantAsset.content_type, TenantAsset.updated_at).where(
        TenantAsset.tenant == tenant_id, TenantAsset.kind == KIND).first()


async def has_favicon(tenant_id: uuid.UUID) -> bool:
    """Whether the tenant uploaded a favicon."""
    return await TenantAsset.exists().where(TenantAsset.tenant == tenant_id, TenantAsset.kind == KIND)


async def replace(ctx: RequestContext, image: CleanImage, filename: str) -> None:
    """Store a validated favicon (replacing any), with its event, in one transaction."""
    async with atomic():
        previous = await TenantAsset.select(TenantAsset.content_type).where(
            TenantAsset.tenant == ctx.tenant.id, TenantAsset.kind == KIND).first()
        await TenantAsset.delete().where(TenantAsset.tenant == ctx.tenant.id, TenantAsset.kind == KIND)
        await TenantAsset.insert(TenantAsset(id=uuid.uuid4(), tenant=ctx.tenant.id, kind=KIND,
                                             content_type=image.content_type, data=image.data, updated_at=utcnow()))
        await bump_version(ctx.tenant.id)
        await emit(ctx, "console.favicon.updated", target=Target("tenant", str(ctx.tenant.id), ctx.tenant.name),
                   before={"favicon_type": previous["content_type"] if previous else None},
                   after={"favicon_type": image.content_type, "bytes": len(image.data), "filename": filename[:200]})
    ctx.runtime.directory.invalidate()


async def remove(ctx: RequestContext) -> bool:
    """Delete the favicon (the logo serves again); False when there was none."""
    async with atomic():
        if not await has_favicon(ctx.tenant.id):
            return False
        await TenantAsset.delete().where(TenantAsset.tenant == ctx.tenant.id, TenantAsset.kind == KIND)
        await bump_version(ctx.tenant.id)
        await emit(ctx, "console.favicon.removed", target=Target("tenant", str(ctx.tenant.id), ctx.tenant.name),
                   before={"favicon": True}, after={"favicon": False})
    ctx.runtime.directory.invalidate()
    return True
