"""Authenticating ``/api/v1`` requests with an API key: the hot path.

One async step backed by an in-process cache:

1. ``Authorization: Bearer <key>``; an address that sent too many invalid keys lately gets
   429 before anything else is looked at (``invalid_keys``: the core's throttle, counted in
   Redis across processes when ``PORTAL_REDIS_URL`` is set).
2. The key's SHA-256 is looked up in a per-process cache. On a miss (or an entry older than
   ``CACHE_TTL``) the key's format and CRC32 checksum are checked in memory first (a malformed
   key is 401 without touching the database), then one indexed lookup (unique ``key_hash``,
   filtered by the tenant of the Host, so tenant A's key is unknown on tenant B's host).
3. Revoked, expired or replaced-after-grace keys are 401; the per-key token bucket gives 429.
4. The request is counted in memory (``counters.UsageBuffer``), never written per request.

Revocation across processes: the cache keeps an entry for at most ``CACHE_TTL`` (5 s) and the
process that revokes drops its own entry at once, so a revoked key stops working everywhere
within 5 seconds with any number of app processes and no shared cache. We chose a short TTL
over a "revocation version" check because the version check would need a shared store
(Redis) or a query on every request; with ``PORTAL_REDIS_URL`` a pub/sub invalidation is
the next step. The per-key token bucket is per process for the same reason: a shared one
would cost a Redis round trip on every request of a valid key.

Scopes: a key holds the scopes stored at creation, intersected on each request with the
permissions that exist on the tenant (a disabled plugin's scope stops counting). Keys belong
to the organization, not to their creator: like Stripe keys they survive the creator leaving.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException

from core.context import Actor, ApiPrincipal, CurrentOrganization, RequestContext
from core.db import as_utc, atomic, load_json
from core.events import Target, emit
from core.ratelimit import Throttle
from core.security import token_hash
from plugins.apikeys import clock
from plugins.apikeys.counters import UsageBuffer
from plugins.apikeys.keyformat import MAX_KEY_LENGTH, parse_key
from plugins.apikeys.tables import ApiKey

log = logging.getLogger("portal.apikeys")

STATE_KEY = "api-keys"
CACHE_TTL = 5.0
DEFAULT_RATE_PER_MINUTE = 600
INVALID_LIMIT = 20
INVALID_WINDOW = 60.0
REVOKED_EVENT_EVERY = 60.0
MALFORMED = "This API key is malformed: check that it was copied completely."
BEARER = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@dataclass(frozen=True)
class CachedKey:
    """What the hot path needs to know about a key (no secret in it)."""

    id: uuid.UUID
    name: str
    environment: str
    organization: CurrentOrganization
    scopes: frozenset[str]
    expires_at: datetime | None
    grace_until: datetime | None
    revoked: bool
    actor: Actor


@dataclass
class ApiKeysState:
    """Per-app state of the plugin (on ``runtime.state``): cache, limits, usage buffer."""

    cache: dict[tuple[uuid.UUID, str], tuple[float, CachedKey]] = field(default_factory=dict)
    buckets: dict[uuid.UUID, list[float]] = field(default_factory=dict)
    usage: UsageBuffer = field(default_factory=UsageBuffer)
    revoked_noted: dict[uuid.UUID, float] = field(default_factory=dict)
    existing: dict[tuple[uuid.UUID, int], frozenset[str]] = field(default_factory=dict)
    task: Any = None

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a key from this process's cache (after revoke / rotate)."""
        for cache_key in [k for k, (_, rec) in self.cache.items() if rec.id == key_id]:
            self.cache.pop(cache_key, None)

    def take(self, key_id: uuid.UUID, per_minute: int) -> float:
        """Token bucket per key: 0 when the request may pass, else seconds until it may."""
        if per_minute <= 0:
            return 0.0
        now = time.monotonic()
        rate = per_minute / 60.0
        bucket = self.buckets.get(key_id)
        if bucket is None:
            bucket = self.buckets[key_id] = [float(per_minute), now]
        tokens = min(float(per_minute), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate


def state_of(runtime: Any) -> ApiKeysState:
    """The plugin's state on this app (made on first use)."""
    state = runtime.state.get(STATE_KEY)
    if state is None:
        state = runtime.state[STATE_KEY] = ApiKeysState()
    return state


def tenant_key_settings(tenant: Any) -> dict[str, Any]:
    """``tenant.settings["api-keys"]``: ``prefix``, ``rate_limit_per_minute``."""
    value = tenant.settings.get("api-keys")
    return value if isinstance(value, dict) else {}


def rate_per_minute(tenant: Any) -> int:
    """Requests per minute one key may make (tenant setting; 0 turns the limit off)."""
    try:
        return int(tenant_key_settings(tenant).get("rate_limit_per_minute", DEFAULT_RATE_PER_MINUTE))
    except (TypeError, ValueError):
        return DEFAULT_RATE_PER_MINUTE


async def load_key(tenant_id: uuid.UUID, digest: str) -> CachedKey | None:
    """One indexed lookup: the key with this hash on this tenant."""
    row = await ApiKey.select(
        ApiKey.id, ApiKey.name, ApiKey.environment, ApiKey.scopes, ApiKey.expires_at, ApiKey.grace_until,
        ApiKey.revoked_at, ApiKey.organization.id.as_alias("org_id"),
        ApiKey.organization.slug.as_alias("org_slug"), ApiKey.organization.name.as_alias("org_name"),
    ).where(ApiKey.key_hash == digest, ApiKey.tenant == tenant_id).first()
    if row is None:
        return None
    return CachedKey(
        id=row["id"], name=row["name"], environment=row["environment"],
        organization=CurrentOrganization(row["org_id"], row["org_slug"], row["org_name"]),
        scopes=frozenset(load_json(row["scopes"]) or []), expires_at=as_utc(row["expires_at"]),
        grace_until=as_utc(row["grace_until"]), revoked=row["revoked_at"] is not None,
        actor=Actor("api_key", str(row["id"]), row["name"], "api_key"),
    )


async def cached_key(state: ApiKeysState, tenant_id: uuid.UUID, digest: str) -> CachedKey | None:
    """The key from the cache if fresh, else from the database (and cached)."""
    slot = (tenant_id, digest)
    entry = state.cache.get(slot)
    now = time.monotonic()
    if entry is not None and now - entry[0] < CACHE_TTL:
        return entry[1]
    record = await load_key(tenant_id, digest)
    if record is None:
        state.cache.pop(slot, None)
        return None
    if len(state.cache) > 50_000:
        state.cache.clear()
    state.cache[slot] = (now, record)
    return record


def existing_permissions(state: ApiKeysState, ctx: RequestContext) -> frozenset[str]:
    """Permissions that exist on the tenant now (cached per tenant version)."""
    slot = (ctx.tenant.id, ctx.tenant.version)
    perms = state.existing.get(slot)
    if perms is None:
        perms = state.existing[slot] = frozenset(p.name for p in ctx.runtime.tenant_permissions(ctx.tenant))
    return perms


def invalid_keys(ctx: RequestContext) -> Throttle:
    """Invalid-key attempts per tenant and address: shared by every process when ``PORTAL_REDIS_URL`` is set.

    A client guessing keys gets the same budget however many workers the load balancer
    spreads it over (with Redis down, each process counts on its own, see ``core.ratelimit``).
    """
    return ctx.runtime.limiter("apikeys.invalid", INVALID_LIMIT, INVALID_WINDOW)


async def _reject(ctx: RequestContext, address: str, message: str) -> NotAuthorizedException:
    await invalid_keys(ctx).hit(address)
    return NotAuthorizedException(message, headers=BEARER)


async def _note_revoked_use(ctx: RequestContext, state: ApiKeysState, record: CachedKey) -> None:
    """Audit the use of a revoked key (at most once a minute per key and process)."""
    now = time.monotonic()
    if now - state.revoked_noted.get(record.id, float("-inf")) < REVOKED_EVENT_EVERY:
        return
    state.revoked_noted[record.id] = now
    try:
        async with atomic():
            await emit(ctx, "apikeys.key.revoked_use", target=Target("api_key", str(record.id), record.name),
                       organization_id=record.organization.id, outcome="denied", actor=record.actor)
    except Exception:  # noqa: BLE001 - the request is refused either way
        log.exception("could not record the use of revoked API key %s", record.id)


async def authenticate(ctx: RequestContext, authorization: str) -> ApiPrincipal | None:
    """``portal_authenticate_api``: the principal of a valid key, 401/429 otherwise, ``None`` if not Bearer."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    state = state_of(ctx.runtime)
    address = f"{ctx.tenant.id}:{ctx.ip}"
    wait = await invalid_keys(ctx).retry_after(address)
    if wait:
        raise TooManyRequestsException("Too many invalid API keys from your address; try again later.",
                                       headers={"Retry-After": str(wait)})
    token = token.strip()
    if len(token) > MAX_KEY_LENGTH:
        raise await _reject(ctx, address, MALFORMED)
    digest = token_hash(token)
    entry = state.cache.get((ctx.tenant.id, digest))
    if entry is not None and time.monotonic() - entry[0] < CACHE_TTL:
        record: CachedKey | None = entry[1]  # this exact token passed the format check when it was cached
    else:
        if parse_key(token) is None:  # malformed: refused before any database lookup
            raise await _reject(ctx, address, MALFORMED)
        record = await cached_key(state, ctx.tenant.id, digest)
    if record is None:
        raise await _reject(ctx, address, "This API key is not valid.")
    now = clock.now()
    if record.revoked:
        await _note_revoked_use(ctx, state, record)
        raise await _reject(ctx, address, "This API key was revoked.")
    if record.expires_at is not None and record.expires_at <= now:
        raise await _reject(ctx, address, "This API key has expired.")
    if record.grace_until is not None and record.grace_until <= now:
        raise await _reject(ctx, address, "This API key was replaced by a new key and its grace period has ended.")
    wait_seconds = state.take(record.id, rate_per_minute(ctx.tenant))
    if wait_seconds:
        raise TooManyRequestsException("Rate limit of this API key exceeded.",
                                       headers={"Retry-After": str(max(1, math.ceil(wait_seconds)))})
    state.usage.record(record.id, ctx.tenant.id, record.organization.id, now, ctx.ip)
    ctx.cache["api_key"] = record
    return ApiPrincipal(record.actor, record.organization, record.scopes & existing_permissions(state, ctx))
