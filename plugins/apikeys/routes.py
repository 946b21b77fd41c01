"""Pages under ``/o/{org}/api-keys`` and the API under ``/api/v1/api-keys``.

Pages: list (``api_keys.read``), create / rotate / revoke (``api_keys.manage``). The plaintext
key appears in exactly one response (creation or rotation), marked ``no-store``.
API: ``GET /api/v1/api-keys/me`` (alias ``/whoami``): the key's organization and scopes, for
any valid key; ``GET /api/v1/api-keys``: the organization's keys, masked (scope ``api_keys.read``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from core.context import Ctx, RequestContext
from core.guards import requires
from core.mail import tenant_base_url
from core.rendering import render
from plugins.apikeys import clock, service
from plugins.apikeys.auth import CachedKey, rate_per_minute, state_of

NO_STORE = {"Cache-Control": "no-store"}
NOTICES = {
    "revoked": "The key was revoked. Requests using it are refused within a few seconds.",
}


def _base(ctx: RequestContext) -> str:
    return ctx.org_url("api-keys")


@get("/", name="apikeys_index", guards=[requires("api_keys.read")])
async def index(ctx: Ctx, done: FromQuery[str | None] = None) -> Response[Any]:
    """The organization's keys: working ones first, then revoked, expired and replaced ones."""
    await state_of(ctx.runtime).usage.flush()
    keys = await service.list_keys(ctx)
    return await render(ctx, "apikeys/index.html", active=[k for k in keys if k["usable"]],
                        inactive=[k for k in keys if not k["usable"]], notice=NOTICES.get(done or ""),
                        base=_base(ctx), now=clock.now(), rate_limit=rate_per_minute(ctx.tenant),
                        api_base=tenant_base_url(ctx))


def _form_context(ctx: RequestContext, draft: service.KeyDraft, errors: dict[str, str]) -> dict[str, Any]:
    groups: dict[str, list[service.ScopeOption]] = {}
    for option in service.scope_options(ctx):
        groups.setdefault(option.group, []).append(option)
    return {"draft": draft, "errors": errors, "scope_groups": groups, "expiry_choices": service.EXPIRY_CHOICES,
            "base": _base(ctx), "today": clock.now().date()}


@get("/new", name="apikeys_new", guards=[requires("api_keys.manage")])
async def new_key(ctx: Ctx) -> Response[Any]:
    """The create form; scopes beyond the user's role are shown but cannot be ticked."""
    return await render(ctx, "apikeys/new.html", **_form_context(ctx, service.KeyDraft(), {}))


@post("/", name="apikeys_create", guards=[requires("api_keys.manage")])
async def create(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Issue the key and show it once (400 with the form and its errors when something is off)."""
    form = await request.form()
    draft, errors = await service.validate_draft(
        ctx, name=str(form.get("name", "")), scopes=[str(s) for s in form.getall("scopes", [])],
        environment=str(form.get("environment", "live")), expiry=str(form.get("expiry", "")),
        expires_on=str(form.get("expires_on", "")),
    )
    if errors:
        return await render(ctx, "apikeys/new.html", status_code=400, **_form_context(ctx, draft, errors))
    row, plaintext = await service.create_key(ctx, draft)
    key = await _key_or_404(ctx, row["id"])
    return await render(ctx, "apikeys/created.html", headers=NO_STORE, plaintext=plaintext, key=key,
                        base=_base(ctx), rotated_from=None, api_base=tenant_base_url(ctx))


async def _key_or_404(ctx: RequestContext, key_id: uuid.UUID) -> dict[str, Any]:
    row = await service.get_key(ctx, key_id)
    if row is None:
        raise NotFoundException()
    return service.present(row, clock.now())


async def _detail(ctx: RequestContext, key_id: uuid.UUID, *, error: str | None = None,
                  status_code: int = 200) -> Response[Any]:
    await state_of(ctx.runtime).usage.flush()  # show this process's latest counts and last use
    key = await _key_or_404(ctx, key_id)
    series = await service.usage_series(ctx.runtime, key["id"])
    return await render(ctx, "apikeys/detail.html", status_code=status_code, key=key, error=error,
                        spark=service.sparkline(series), grace_choices=service.GRACE_CHOICES, base=_base(ctx),
                        now=clock.now())


@get("/{key_id:uuid}", name="apikeys_detail", guards=[requires("api_keys.read")])
async def detail(ctx: Ctx, key_id: FromPath[uuid.UUID]) -> Response[Any]:
    """One key: who made it, scopes, expiry, last use, 30-day usage, rotate and revoke."""
    return await _detail(ctx, key_id)


@post("/{key_id:uuid}/rotate", name="apikeys_rotate", guards=[requires("api_keys.manage")])
async def rotate(ctx: Ctx, key_id: FromPath[uuid.UUID], request: Request[Any, Any, Any]) -> Response[Any]:
    """Issue a successor and show it once; the old key keeps working for the chosen grace period."""
    form = await request.form()
    old = await _key_or_404(ctx, key_id)
    try:
        row, plaintext = await service.rotate_key(ctx, key_id, str(form.get("grace", "")))
    except service.KeyActionError as exc:
        return await _detail(ctx, key_id, error=str(exc), status_code=400)
    except LookupError:
        raise NotFoundException() from None
    fresh = await _key_or_404(ctx, row["id"])
    old_now = await _key_or_404(ctx, key_id)
    return await render(ctx, "apikeys/created.html", headers=NO_STORE, plaintext=plaintext, key=fresh,
                        base=_base(ctx), rotated_from=old_now | {"previous_status": old["status"]},
                        api_base=tenant_base_url(ctx))


@get("/{key_id:uuid}/revoke", name="apikeys_revoke_confirm", guards=[requires("api_keys.manage")])
async def revoke_confirm(ctx: Ctx, key_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Ask before revoking; warn loudly when the key was used in the last 30 days."""
    await state_of(ctx.runtime).usage.flush()
    key = await _key_or_404(ctx, key_id)
    series = await service.usage_series(ctx.runtime, key["id"])
    return await render(ctx, "apikeys/revoke.html", key=key, base=_base(ctx),
                        recently_used=service.used_recently(key, series, clock.now()),
                        calls_30d=sum(n for _, n in series))


@post("/{key_id:uuid}/revoke", name="apikeys_revoke", guards=[requires("api_keys.manage")])
async def revoke(ctx: Ctx, key_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Revoke now and go back to the list."""
    try:
        await service.revoke_key(ctx, key_id)
    except service.KeyActionError as exc:
        return await _detail(ctx, key_id, error=str(exc), status_code=400)
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"{_base(ctx)}?done=revoked")


PAGE_HANDLERS = [index, new_key, create, detail, rotate, revoke_confirm, revoke]


# -- API -------------------------------------------------------------------------------------------


@dataclass
class OrganizationOut:
    """The organization a key belongs to."""

    id: uuid.UUID
    slug: str
    name: str


@dataclass
class CallerKeyOut:
    """The key that made the request."""

    id: uuid.UUID
    name: str
    environment: str


@dataclass
class MeOut:
    """Who the API request acts as."""

    organization: OrganizationOut
    key: CallerKeyOut | None
    scopes: list[str]


@dataclass
class KeyOut:
    """A key as the API lists it: masked, never the secret."""

    id: uuid.UUID
    name: str
    key: str
    environment: str
    status: str
    scopes: list[str]
    created_by: str
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None


@get(["/me", "/whoami"], name="apikeys_api_me", summary="The caller's organization and scopes")
async def api_me(ctx: Ctx) -> MeOut:
    """The organization and scopes of the key that authenticated this request."""
    assert ctx.organization is not None
    record: CachedKey | None = ctx.cache.get("api_key")
    return MeOut(
        organization=OrganizationOut(ctx.organization.id, ctx.organization.slug, ctx.organization.name),
        key=CallerKeyOut(record.id, record.name, record.environment) if record else None,
        scopes=sorted(ctx.permissions),
    )


@get("/", name="apikeys_api_list", guards=[requires("api_keys.read")], summary="The organization's API keys")
async def api_list(ctx: Ctx) -> list[KeyOut]:
    """Every key of the caller's organization, masked (needs scope ``api_keys.read``)."""
    keys = await service.list_keys(ctx)
    return [KeyOut(k["id"], k["name"], k["masked"], k["environment"], k["status"], k["scopes"], k["created_by"],
                   k["created_at"], k["expires_at"], k["last_used_at"]) for k in keys]


API_HANDLERS = [api_me, api_list]
