"""The audit log viewer and its streamed exports.

``/o/{org}/audit`` (permission ``audit.read``): an organization's own rows only. ``/admin/audit``: the
tenant-wide log for tenant admins (every organization plus tenant-level rows such as sign-ins), kept
here until the tenant console offers a home for it. Exports stream the filtered view page by page
(``Stream`` over an async generator), so a million rows never sit in memory; each export is itself
recorded (``audit.log.exported``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Stream

from core.context import Ctx, RequestContext
from core.db import atomic
from core.events import Target, emit
from core.guards import context_of, login_required, requires
from core.rendering import render
from core.tables import Membership, Organization
from plugins.audit.query import (
    NO_ORGANIZATION,
    Filters,
    Scope,
    csv_header,
    csv_row,
    diff,
    iterate,
    jsonl_line,
    page,
)
from plugins.audit.service import REDACTED

ACTION_LABELS = {
    "auth.login.succeeded": "Signed in",
    "auth.login.failed": "Sign-in failed",
    "auth.login.throttled": "Sign-in throttled",
    "auth.logout": "Signed out",
    "account.profile.updated": "Profile updated",
    "account.password.changed": "Password changed",
    "audit.log.pruned": "Old entries removed (retention)",
    "audit.log.exported": "Audit log exported",
}


def action_label(action: str) -> str:
    """A readable name for an action code: known ones by name, others from their last two parts."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    parts = action.replace("_", " ").split(".")
    return " ".join(parts[-2:]).capitalize() if parts else action


def show_value(value: Any) -> str:
    """A before/after value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


async def tenant_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Only tenant admins see the tenant-wide log."""
    ctx = context_of(connection)
    if ctx.user is None or not ctx.user.is_tenant_admin:
        raise PermissionDeniedException("Only administrators of this portal can see its whole audit log.")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


async def _log_page(ctx: RequestContext, request: Request[Any, Any, Any], *, scope: Scope, base_path: str,
                    tenant_wide: bool) -> Response[Any]:
    params = dict(request.query_params)
    filters = Filters.from_params(params)
    result = await page(scope, filters, before=_int(params.get("before")), after=_int(params.get("after")))
    organizations: dict[str, str] = {}
    members: list[str] = []
    if tenant_wide:
        for org in await Organization.select(Organization.id, Organization.name).where(
                Organization.tenant == ctx.tenant.id).order_by(Organization.name).limit(500):
            organizations[str(org["id"])] = org["name"]
    else:
        rows = await Membership.select(Membership.user.email).where(
            Membership.organization == scope.organization_id, Membership.tenant == ctx.tenant.id).limit(500)
        members = sorted(r["user.email"] for r in rows)
    query = filters.as_params()
    link = lambda **extra: f"{base_path}?{urlencode({**query, **extra})}"  # noqa: E731
    return await render(
        ctx, "audit/log.html", status_code=400 if filters.errors else 200, rows=result.rows, filters=filters,
        errors=filters.errors, base_path=base_path, tenant_wide=tenant_wide, organizations=organizations,
        members=members, no_organization=NO_ORGANIZATION,
        older_url=link(before=result.older) if result.older else None,
        newer_url=link(after=result.newer) if result.newer else None,
        first_url=link() if result.newer else None,
        csv_url=f"{base_path}/export.csv" + (f"?{urlencode(query)}" if query else ""),
        jsonl_url=f"{base_path}/export.jsonl" + (f"?{urlencode(query)}" if query else ""),
        diff=diff, show_value=show_value, action_label=action_label, redacted=REDACTED,
    )


async def _export(ctx: RequestContext, request: Request[Any, Any, Any], *, scope: Scope, fmt: str,
                  name: str) -> Response[Any]:
    filters = Filters.from_params(dict(request.query_params))
    async with atomic():
        await emit(ctx, "audit.log.exported", organization_id=scope.organization_id,
                   target=Target("audit_log", str(scope.organization_id or ctx.tenant.id), "Audit log"),
                   data={"format": fmt, "filters": filters.as_params()})

    async def lines() -> AsyncIterator[bytes]:
        chunk: list[str] = [csv_header()] if fmt == "csv" else []
        async for row in iterate(scope, filters):
            chunk.append(csv_row(row) if fmt == "csv" else jsonl_line(row))
            if len(chunk) >= 500:
                yield "".join(chunk).encode()
                chunk = []
        if chunk:
            yield "".join(chunk).encode()

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
    filename = f"audit-{name}-{date.today().isoformat()}.{fmt}"
    return Stream(lines(), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _org_scope(ctx: RequestContext) -> Scope:
    assert ctx.organization is not None
    return Scope(ctx.tenant.id, ctx.organization.id)


@get("/", name="audit_log", guards=[requires("audit.read")])
async def audit_log(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The organization's audit log, newest first, filtered and paged by cursor."""
    return await _log_page(ctx, request, scope=_org_scope(ctx), base_path=ctx.org_url("audit"), tenant_wide=False)


@get("/export.csv", name="audit_export_csv", guards=[requires("audit.read")])
async def audit_export_csv(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The filtered view as CSV, streamed."""
    assert ctx.organization is not None
    return await _export(ctx, request, scope=_org_scope(ctx), fmt="csv", name=ctx.organization.slug)


@get("/export.jsonl", name="audit_export_jsonl", guards=[requires("audit.read")])
async def audit_export_jsonl(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The filtered view as JSON Lines, streamed."""
    assert ctx.organization is not None
    return await _export(ctx, request, scope=_org_scope(ctx), fmt="jsonl", name=ctx.organization.slug)


@get("/admin/audit", name="audit_tenant_log", guards=[login_required, tenant_admin])
async def tenant_audit_log(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The tenant-wide audit log (tenant admins): every organization and the tenant-level rows."""
    return await _log_page(ctx, request, scope=Scope(ctx.tenant.id), base_path="/admin/audit", tenant_wide=True)


@get("/admin/audit/export.csv", name="audit_tenant_export_csv", guards=[login_required, tenant_admin])
async def tenant_audit_export_csv(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The tenant-wide filtered view as CSV, streamed."""
    return await _export(ctx, request, scope=Scope(ctx.tenant.id), fmt="csv", name=ctx.tenant.slug)


@get("/admin/audit/export.jsonl", name="audit_tenant_export_jsonl", guards=[login_required, tenant_admin])
async def tenant_audit_export_jsonl(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """The tenant-wide filtered view as JSON Lines, streamed."""
    return await _export(ctx, request, scope=Scope(ctx.tenant.id), fmt="jsonl", name=ctx.tenant.slug)


PAGES = [audit_log, audit_export_csv, audit_export_jsonl]
PUBLIC = [tenant_audit_log, tenant_audit_export_csv, tenant_audit_export_jsonl]
