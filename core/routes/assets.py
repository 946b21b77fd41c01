"""Per-tenant assets: the content-hashed brand stylesheet, the logo and the favicon."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from core.context import Ctx
from core.tables import Tenant

FOREVER = "public, max-age=31536000, immutable"


@get("/assets/brand/{digest:str}", name="brand_css", include_in_schema=False)
async def brand_css(ctx: Ctx, digest: FromPath[str]) -> Response[str]:
    """The tenant's tokens as CSS custom properties plus its theme's CSS (cached forever by hash)."""
    current, css = ctx.runtime.themes.tenant_css(ctx.tenant)
    cache = FOREVER if digest == f"{current}.css" else "no-cache"
    return Response(css, media_type="text/css", headers={"Cache-Control": cache})


async def _image(ctx: Ctx, fallback_name: str) -> Response[Any]:
    if ctx.tenant.has_logo:
        row = await Tenant.select(Tenant.logo, Tenant.logo_type).where(Tenant.id == ctx.tenant.id).first()
        if row and row["logo"]:
            return Response(bytes(row["logo"]), media_type=row["logo_type"],
                            headers={"Cache-Control": "public, max-age=300",
                                     "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    path = ctx.theme.static_dir / fallback_name
    if not path.exists():
        raise NotFoundException()
    return Response(path.read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=300"})


@get("/assets/logo", name="logo", include_in_schema=False)
async def logo(ctx: Ctx) -> Response[Any]:
    """The tenant's logo, or its theme's."""
    return await _image(ctx, "logo.svg")


@get("/favicon.ico", name="favicon", include_in_schema=False)
async def favicon(ctx: Ctx) -> Response[Any]:
    """Browsers ask for it on every host: the favicon uploaded in the console, else the tenant's logo."""
    from core.console.favicon import stored

    icon = await stored(ctx.tenant.id)
    if icon is not None:
        return Response(bytes(icon["data"]), media_type=icon["content_type"],
                        headers={"Cache-Control": "public, max-age=300",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return await _image(ctx, "favicon.svg")


ASSET_HANDLERS = [brand_css, logo, favicon]
