"""API key logic with no HTTP in it: create, list, rotate, revoke, usage, reminders, demo seed.

Every query is scoped to the tenant and organization of the context. Every change is one
transaction with its event (``apikeys.key.created`` / ``.rotated`` / ``.revoked``;
``.expiring`` seven days before expiry, ``.expired`` once after). The plaintext key exists
only in the return value of ``create_key`` / ``rotate_key``: never in a row, an event or a log.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.context import CurrentOrganization, RequestContext, system_context
from core.db import as_utc, atomic, load_json
from core.events import Target, emit
from core.mail import send_mail
from core.notifications import notify
from core.security import token_hash
from core.tables import Membership
from plugins.apikeys import clock
from plugins.apikeys.auth import state_of, tenant_key_settings
from plugins.apikeys.keyformat import DEFAULT_PREFIX, ENVIRONMENTS, generate_key, mask, valid_prefix
from plugins.apikeys.tables import ApiKey, ApiKeyUsageDay

log = logging.getLogger("portal.apikeys")

SLUG = "api-keys"
GRACE_CHOICES: dict[str, tuple[str, timedelta]] = {
    "none": ("No grace period: the old key stops now", timedelta(0)),
    "1h": ("1 hour", timedelta(hours=1)),
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
}
EXPIRY_CHOICES: dict[str, tuple[str, int | None]] = {
    "never": ("Never", None),
    "30": ("In 30 days", 30),
    "90": ("In 90 days", 90),
    "365": ("In 1 year", 365),
    "custom": ("On a date…", None),
}
REMIND_BEFORE = timedelta(days=7)
RECENT_USE = timedelta(days=30)
SPARK_DAYS = 30
NAME_MAX = 100


def key_prefix(tenant: Any) -> str:
    """The tenant's key prefix (``settings["api-keys"]["prefix"]``), ``pk`` when unset or invalid."""
    prefix = str(tenant_key_settings(tenant).get("prefix") or DEFAULT_PREFIX).lower()
    if not valid_prefix(prefix):
        log.warning("tenant %s: API key prefix %r is invalid; using %r", tenant.slug, prefix, DEFAULT_PREFIX)
        return DEFAULT_PREFIX
    return prefix


@dataclass(frozen=True)
class ScopeOption:
    """A permission offered as a scope, and whether the current user may grant it."""

    name: str
    label: str
    group: str
    allowed: bool


def scope_options(ctx: RequestContext) -> list[ScopeOption]:
    """Every permission of the tenant's enabled plugins; ``allowed`` only where the user's role holds it."""
    enabled = ctx.runtime.plugins.enabled_for(ctx.tenant)
    options = []
    for slug, perms in ctx.runtime.permissions_by_plugin.items():
        if slug not in enabled:
            continue
        loaded = ctx.runtime.plugins.plugins.get(slug)
        group = loaded.info.label if loaded else slug
        options.extend(ScopeOption(p.name, p.label, group, ctx.can(p.name)) for p in perms)
    return options


@dataclass
class KeyDraft:
    """What the create form asked for, validated."""

    name: str = ""
    scopes: list[str] = field(default_factory=list)
    environment: str = "live"
    expiry: str = "90"
    expires_on: str = ""
    expires_at: datetime | None = None


async def plan_key_limit(ctx: RequestContext) -> int | None:
    """The plan's ``api_keys`` limit (``portal_plan_limits``); None or -1 when unlimited."""
    limits = await ctx.runtime.plugins.first("portal_plan_limits", tenant=ctx.tenant, ctx=ctx, org=ctx.organization)
    if not isinstance(limits, dict) or "api_keys" not in limits:
        return None
    return int(limits["api_keys"])


async def validate_draft(ctx: RequestContext, *, name: str, scopes: list[str], environment: str, expiry: str,
                         expires_on: str) -> tuple[KeyDraft, dict[str, str]]:
    """Check a create request; errors are keyed by form field and say what to do."""
    draft = KeyDraft(name=name.strip(), scopes=sorted(set(scopes)), environment=environment, expiry=expiry,
                     expires_on=expires_on.strip())
    errors: dict[str, str] = {}
    if not draft.name:
        errors["name"] = "Give the key a name, e.g. “Production server”."
    elif len(draft.name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    options = {o.name: o for o in scope_options(ctx)}
    unknown = [s for s in draft.scopes if s not in options]
    denied = [s for s in draft.scopes if s in options and not options[s].allowed]
    if not draft.scopes:
        errors["scopes"] = "Choose at least one scope: a key without scopes can do nothing."
    elif unknown:
        errors["scopes"] = f"Unknown scope: {', '.join(unknown)}."
    elif denied:
        errors["scopes"] = f"Your role does not allow you to grant {', '.join(denied)}."
    if draft.environment not in ENVIRONMENTS:
        errors["environment"] = "Choose live or test."
    now = clock.now()
    if expiry == "custom":
        try:
            day = date.fromisoformat(draft.expires_on)
        except ValueError:
            errors["expires_on"] = "Pick the day the key should stop working."
        else:
            draft.expires_at = datetime(day.year, day.month, day.day, tzinfo=now.tzinfo)
            if draft.expires_at <= now:
                errors["expires_on"] = "Pick a day in the future."
            elif draft.expires_at > now + timedelta(days=3 * 365):
                errors["expires_on"] = "Keys can live at most 3 years; pick an earlier day."
    elif expiry in EXPIRY_CHOICES:
        days = EXPIRY_CHOICES[expiry][1]
        draft.expires_at = now + timedelta(days=days) if days else None
    else:
        errors["expiry"] = "Choose when the key expires."
    limit = await plan_key_limit(ctx)
    if limit is not None and limit >= 0 and not errors:
        assert ctx.organization is not None
        if await count_active(ctx.tenant.id, ctx.organization.id) >= limit:
            errors["name"] = (f"Your plan allows {limit} active API key{'s' * (limit != 1)}. "
                              "Revoke one or upgrade your plan.")
    return draft, errors


def _event_view(row: dict[str, Any]) -> dict[str, Any]:
    expires = as_utc(row.get("expires_at"))
    return {"name": row["name"], "key": mask(row["prefix"], row["last4"]), "environment": row["environment"],
            "scopes": sorted(load_json(row["scopes"]) or []),
            "expires_at": expires.isoformat() if expires else None}


async def _insert_key(ctx: RequestContext, *, name: str, scopes: list[str], environment: str,
                      expires_at: datetime | None) -> tuple[dict[str, Any], str]:
    assert ctx.organization is not None
    plaintext = generate_key(key_prefix(ctx.tenant), environment)
    row = {
        "id": uuid.uuid4(), "tenant": ctx.tenant.id, "organization": ctx.organization.id, "name": name,
        "key_hash": token_hash(plaintext), "prefix": plaintext.rsplit("_", 1)[0], "last4": plaintext[-4:],
        "environment": environment, "scopes": sorted(scopes),
        "created_by": ctx.user.id if ctx.user else None,
        "created_by_name": ctx.user.display if ctx.user else ctx.actor.display,
        "created_at": clock.now(), "expires_at": expires_at,
    }
    await ApiKey.insert(ApiKey(**row))
    return row, plaintext


async def create_key(ctx: RequestContext, draft: KeyDraft) -> tuple[dict[str, Any], str]:
    """Issue a key; returns the row and the plaintext, which the caller shows once and forgets."""
    async with atomic():
        row, plaintext = await _insert_key(ctx, name=draft.name, scopes=draft.scopes,
                                           environment=draft.environment, expires_at=draft.expires_at)
        await emit(ctx, "apikeys.key.created", target=Target("api_key", str(row["id"]), row["name"]),
                   after=_event_view(row))
    return row, plaintext


async def get_key(ctx: RequestContext, key_id: uuid.UUID) -> dict[str, Any] | None:
    """A key of the current organization (None for another organization's or tenant's key)."""
    assert ctx.organization is not None
    return await ApiKey.select(
        *ApiKey.all_columns(exclude=[ApiKey.key_hash]),
    ).where(ApiKey.id == key_id, ApiKey.tenant == ctx.tenant.id, ApiKey.organization == ctx.organization.id).first()


def status_of(row: dict[str, Any], now: datetime) -> str:
    """``active``, ``expiring`` (within 7 days), ``grace`` (replaced, still working), ``revoked``,
    ``expired`` or ``replaced`` (grace over)."""
    if row["revoked_at"] is not None:
        return "revoked"
    expires, grace = as_utc(row["expires_at"]), as_utc(row["grace_until"])
    if expires is not None and expires <= now:
        return "expired"
    if grace is not None:
        return "grace" if grace > now else "replaced"
    if expires is not None and expires - now <= REMIND_BEFORE:
        return "expiring"
    return "active"


def is_usable(status: str) -> bool:
    """Whether a key in this status still authenticates."""
    return status in {"active", "expiring", "grace"}


def present(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A key row as pages and the API show it: masked, with status and times in UTC."""
    status = status_of(row, now)
    return {
        "id": row["id"], "name": row["name"], "masked": mask(row["prefix"], row["last4"]),
        "environment": row["environment"], "scopes": sorted(load_json(row["scopes"]) or []),
        "created_by": row["created_by_name"], "created_at": as_utc(row["created_at"]),
        "expires_at": as_utc(row["expires_at"]), "last_used_at": as_utc(row["last_used_at"]),
        "grace_until": as_utc(row["grace_until"]), "revoked_at": as_utc(row["revoked_at"]),
        "revoked_by": row["revoked_by_name"], "replaced_by": row["replaced_by"],
        "status": status, "usable": is_usable(status),
    }


async def list_keys(ctx: RequestContext) -> list[dict[str, Any]]:
    """The organization's keys, newest first, presented (masked)."""
    assert ctx.organization is not None
    rows = await ApiKey.select(*ApiKey.all_columns(exclude=[ApiKey.key_hash])).where(
        ApiKey.tenant == ctx.tenant.id, ApiKey.organization == ctx.organization.id,
    ).order_by(ApiKey.created_at, ascending=False)
    now = clock.now()
    return [present(row, now) for row in rows]


class KeyActionError(ValueError):
    """A rotate/revoke that cannot happen, with a message for the person."""


async def rotate_key(ctx: RequestContext, key_id: uuid.UUID, grace: str) -> tuple[dict[str, Any], str]:
    """Issue a successor with the same name, scopes and lifetime; the old key works for ``grace``."""
    if grace not in GRACE_CHOICES:
        raise KeyActionError("Choose how long the old key keeps working.")
    async with atomic():
        row = await get_key(ctx, key_id)
        if row is None:
            raise LookupError(key_id)
        now = clock.now()
        status = status_of(row, now)
        if status in {"grace", "replaced"}:
            raise KeyActionError("This key was already rotated; rotate its replacement instead.")
        if not is_usable(status):
            raise KeyActionError("Only a working key can be rotated. Create a new key instead.")
        scopes = sorted(load_json(row["scopes"]) or [])
        beyond = [s for s in scopes if not ctx.can(s)]
        if beyond:
            raise KeyActionError(f"This key holds scopes your role does not allow ({', '.join(beyond)}); "
                                 "ask an owner to rotate it.")
        expires_at = None
        if row["expires_at"] is not None:
            expires_at = now + (as_utc(row["expires_at"]) - as_utc(row["created_at"]))
        new_row, plaintext = await _insert_key(ctx, name=row["name"], scopes=scopes,
                                               environment=row["environment"], expires_at=expires_at)
        delta = GRACE_CHOICES[grace][1]
        changes: dict[Any, Any] = {ApiKey.replaced_by: new_row["id"]}
        if delta:
            changes[ApiKey.grace_until] = now + delta
        else:
            changes[ApiKey.revoked_at] = now
            changes[ApiKey.revoked_by_name] = ctx.actor.display
        await ApiKey.update(changes).where(ApiKey.id == row["id"])
        await emit(ctx, "apikeys.key.rotated", target=Target("api_key", str(row["id"]), row["name"]),
                   before={"key": mask(row["prefix"], row["last4"])},
                   after={"key": mask(new_row["prefix"], new_row["last4"]), "replacement_id": str(new_row["id"]),
                          "grace": grace, "old_key_works_until": (now + delta).isoformat()})
    state_of(ctx.runtime).forget(row["id"])
    return new_row, plaintext


async def revoke_key(ctx: RequestContext, key_id: uuid.UUID) -> dict[str, Any]:
    """Revoke a key now (every process stops accepting it within ``auth.CACHE_TTL`` seconds)."""
    async with atomic():
        row = await get_key(ctx, key_id)
        if row is None:
            raise LookupError(key_id)
        if row["revoked_at"] is not None:
            raise KeyActionError("This key is already revoked.")
        now = clock.now()
        await ApiKey.update({ApiKey.revoked_at: now, ApiKey.revoked_by_name: ctx.actor.display}).where(
            ApiKey.id == row["id"])
        await emit(ctx, "apikeys.key.revoked", target=Target("api_key", str(row["id"]), row["name"]),
                   before={"status": status_of(row, now)}, after={"status": "revoked"})
    state_of(ctx.runtime).forget(row["id"])
    return row


async def usage_series(runtime: Any, key_id: uuid.UUID, days: int = SPARK_DAYS) -> list[tuple[date, int]]:
    """Requests per UTC day for the last ``days`` days (oldest first), including this process's unflushed counts."""
    today = clock.now().date()
    start = today - timedelta(days=days - 1)
    rows = await ApiKeyUsageDay.select(ApiKeyUsageDay.day, ApiKeyUsageDay.requests).where(
        ApiKeyUsageDay.api_key == key_id, ApiKeyUsageDay.day >= start)
    counts: dict[date, int] = {}
    for row in rows:
        day = row["day"] if isinstance(row["day"], date) else date.fromisoformat(str(row["day"]))
        counts[day] = counts.get(day, 0) + row["requests"]
    for day, n in state_of(runtime).usage.pending(key_id).items():
        counts[day] = counts.get(day, 0) + n
    return [(start + timedelta(days=i), counts.get(start + timedelta(days=i), 0)) for i in range(days)]


def used_recently(key: dict[str, Any], series: list[tuple[date, int]], now: datetime) -> bool:
    """Whether revoking would likely break something: used in the last 30 days."""
    last = key.get("last_used_at")
    return (last is not None and now - last <= RECENT_USE) or any(n for _, n in series)


def sparkline(series: list[tuple[date, int]], width: int = 240, height: int = 48) -> dict[str, Any]:
    """Points of an SVG polyline for a daily series, plus totals for the label."""
    peak = max((n for _, n in series), default=0)
    step = width / max(1, len(series) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (n / peak * (height - 4) if peak else 0):.1f}" for i, (_, n) in enumerate(series)
    )
    return {"points": points, "width": width, "height": height, "total": sum(n for _, n in series), "peak": peak,
            "first": series[0][0] if series else None, "last": series[-1][0] if series else None}


async def count_active(tenant_id: uuid.UUID, organization_id: uuid.UUID) -> int:
    """Keys that authenticate right now (the ``api_keys`` usage metric)."""
    now = clock.now()
    rows = await ApiKey.select(ApiKey.revoked_at, ApiKey.expires_at, ApiKey.grace_until).where(
        ApiKey.tenant == tenant_id, ApiKey.organization == organization_id, ApiKey.revoked_at.is_null())
    return sum(1 for row in rows if is_usable(status_of({**row, "revoked_at": None}, now)))


async def calls_this_period(runtime: Any, tenant_id: uuid.UUID, organization_id: uuid.UUID) -> int:
    """API calls with the organization's keys in the current calendar month (UTC)."""
    await state_of(runtime).usage.flush()
    start = clock.now().date().replace(day=1)
    rows = await ApiKeyUsageDay.select(ApiKeyUsageDay.requests).where(
        ApiKeyUsageDay.tenant == tenant_id, ApiKeyUsageDay.organization == organization_id,
        ApiKeyUsageDay.day >= start)
    return sum(row["requests"] for row in rows)


async def _recipients(tenant_id: uuid.UUID, row: dict[str, Any]) -> list[tuple[uuid.UUID, str]]:
    """Who hears about a key's expiry: its creator while still a member, else the organization's owners."""
    members = await Membership.select(Membership.user, Membership.role, Membership.user.email.as_alias("email")).where(
        Membership.tenant == tenant_id, Membership.organization == row["organization"])
    creator = [(m["user"], m["email"]) for m in members if m["user"] == row["created_by"]]
    return creator or [(m["user"], m["email"]) for m in members if m["role"] == "owner"]


async def remind_expiring(runtime: Any) -> tuple[int, int]:
    """Send due expiry reminders and note expired keys, on every tenant with the plugin on.

    Idempotent and safe with several processes: each key is claimed with a conditional
    UPDATE (``reminded_at`` / ``expired_noted_at`` still empty) in the same transaction as
    its event and mail, and the mail carries an outbox dedupe key. Returns
    ``(reminders, expired)`` handled by this call.
    """
    await runtime.directory.ensure_fresh()
    reminded = expired = 0
    now = clock.now()
    rows = await ApiKey.select(
        *ApiKey.all_columns(exclude=[ApiKey.key_hash]),
        ApiKey.organization.slug.as_alias("org_slug"), ApiKey.organization.name.as_alias("org_name"),
    ).where(ApiKey.revoked_at.is_null(), ApiKey.expires_at.is_not_null(), ApiKey.grace_until.is_null(),
            ApiKey.expires_at <= now + REMIND_BEFORE, ApiKey.expired_noted_at.is_null())
    for row in rows:
        tenant = runtime.directory.get(row["tenant"])
        if tenant is None or not runtime.plugins.is_enabled(SLUG, tenant):
            continue
        org = CurrentOrganization(row["organization"], row["org_slug"], row["org_name"])
        ctx = system_context(runtime, tenant, organization=org)
        expires = as_utc(row["expires_at"])
        if expires > now and row["reminded_at"] is None:
            reminded += await _remind(ctx, row, expires)
        elif expires <= now:
            expired += await _note_expired(ctx, row, expires)
    return reminded, expired


async def _remind(ctx: RequestContext, row: dict[str, Any], expires: datetime) -> int:
    async with atomic():
        claimed = await ApiKey.update({ApiKey.reminded_at: clock.now()}).where(
            ApiKey.id == row["id"], ApiKey.reminded_at.is_null()).returning(ApiKey.id)
        if not claimed:
            return 0
        target = Target("api_key", str(row["id"]), row["name"])
        await emit(ctx, "apikeys.key.expiring", target=target,
                   after={"key": mask(row["prefix"], row["last4"]), "expires_at": expires.isoformat()})
        assert ctx.organization is not None
        link = f"/o/{ctx.organization.slug}/api-keys/{row['id']}"
        for user_id, email in await _recipients(ctx.tenant.id, row):
            await send_mail(ctx, email, "apikeys/expiring", f"API key “{row['name']}” expires on {expires:%Y-%m-%d}",
                            dedupe_key=f"apikeys.expiring:{row['id']}:{user_id}", key=present(row, clock.now()),
                            organization=ctx.organization, expires=expires, link=link)
            await notify(ctx.tenant.id, user_id, f"API key “{row['name']}” expires on {expires:%Y-%m-%d}",
                         body="Rotate it before then to keep your integration running.", link=link,
                         organization_id=ctx.organization.id)
    return 1


async def _note_expired(ctx: RequestContext, row: dict[str, Any], expires: datetime) -> int:
    async with atomic():
        claimed = await ApiKey.update({ApiKey.expired_noted_at: clock.now()}).where(
            ApiKey.id == row["id"], ApiKey.expired_noted_at.is_null()).returning(ApiKey.id)
        if not claimed:
            return 0
        await emit(ctx, "apikeys.key.expired", target=Target("api_key", str(row["id"]), row["name"]),
                   before={"status": "active"}, after={"status": "expired", "expires_at": expires.isoformat()})
    return 1


DEMO_KEYS = (
    ("Production server", "live", 365, 40, 1800),
    ("CI pipeline", "test", 5, 12, 300),
)


async def seed_demo(ctx: RequestContext, org: dict[str, Any]) -> int:
    """Two realistic keys with a month of usage, once per organization (the plaintexts are thrown away)."""
    if await ApiKey.exists().where(ApiKey.tenant == ctx.tenant.id, ApiKey.organization == org["id"]):
        return 0
    owner = await Membership.select(Membership.user, Membership.user.name.as_alias("name"),
                                    Membership.user.email.as_alias("email")).where(
        Membership.organization == org["id"], Membership.role == "owner").first()
    scopes = sorted(p.name for p in ctx.runtime.tenant_permissions(ctx.tenant)
                    if p.name.endswith((".read", ".write")) and not p.name.startswith("api_keys."))
    now = clock.now()
    created = 0
    async with atomic():
        for name, environment, expires_in, age_days, daily in DEMO_KEYS:
            plaintext = generate_key(key_prefix(ctx.tenant), environment)
            key_id = uuid.uuid4()
            await ApiKey.insert(ApiKey(
                id=key_id, tenant=ctx.tenant.id, organization=org["id"], name=name,
                key_hash=token_hash(plaintext), prefix=plaintext.rsplit("_", 1)[0], last4=plaintext[-4:],
                environment=environment, scopes=scopes or ["organization.view"],
                created_by=owner["user"] if owner else None,
                created_by_name=(owner["name"] or owner["email"]) if owner else "System",
                created_at=now - timedelta(days=age_days), expires_at=now + timedelta(days=expires_in),
                last_used_at=now - timedelta(minutes=7),
            ))
            for back in range(min(age_days, SPARK_DAYS)):
                day = now.date() - timedelta(days=back)
                volume = int(daily * (0.6 + 0.4 * ((back * 7919) % 13) / 12) * (0.5 if day.weekday() >= 5 else 1))
                await ApiKeyUsageDay.insert(ApiKeyUsageDay(
                    id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org["id"], api_key=key_id, day=day,
                    requests=volume))
            created += 1
    return created
