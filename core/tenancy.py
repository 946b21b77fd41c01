"""Which tenant a request is for, from its Host.

The directory keeps every active tenant and hostname in memory (a few thousand
rows at most), reloaded after ``tenant_cache_ttl`` seconds or at once after
``invalidate()``. An unknown host is never another tenant's portal: it is
``None`` here and the platform's 404 page upstream.
"""

from __future__ import annotations

import functools
import ipaddress
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import idna

from core.db import load_json
from core.tables import Tenant, TenantDomain


@functools.lru_cache(maxsize=4096)
def normalize_host(raw: str | None) -> str | None:
    """Lower-case, drop the port and trailing dot, IDNA-encode; ``None`` for garbage.

    Cached: every request asks, IDNA encoding costs about 0.1 ms, and a portal serves
    few distinct hosts (a flood of made-up ones only cycles the bounded cache).
    """
    if not raw:
        return None
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else None
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if port and not port.isdigit():
            return None
    host = host.rstrip(".")
    if not host or len(host) > 253:
        return None
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def request_host(headers: Mapping[str, str], client_ip: str | None,
                 trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str | None:
    """The host a request was sent to: ``X-Forwarded-Host`` only when a trusted proxy sent it."""
    if is_trusted_proxy(client_ip, trusted_proxies):
        forwarded = headers.get("x-forwarded-host")
        if forwarded:
            return normalize_host(forwarded.split(",")[0])
    return normalize_host(headers.get("host"))


def client_address(headers: Mapping[str, str], client_ip: str | None,
                   trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The end user's address: the right-most untrusted hop of ``X-Forwarded-For`` behind a trusted proxy."""
    if not is_trusted_proxy(client_ip, trusted_proxies):
        return client_ip or ""
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop, trusted_proxies):
            return hop
    return client_ip or ""


def is_trusted_proxy(ip: str | None, trusted_proxies: tuple[Any, ...]) -> bool:
    """Whether ``ip`` is one of the configured proxies."""
    if not ip or not trusted_proxies:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in trusted_proxies)


@dataclass(frozen=True)
class TenantRecord:
    """An immutable snapshot of a tenant, shared by every request until the next reload."""

    id: uuid.UUID
    slug: str
    name: str
    theme: str
    status: str
    branding: dict[str, Any]
    plugins: frozenset[str] | None
    settings: dict[str, Any]
    version: int
    has_logo: bool
    primary_host: str
    hosts: tuple[str, ...] = field(default=())

    @property
    def product_name(self) -> str:
        """What the portal calls itself on this tenant (branding overrides the tenant name)."""
        return self.branding.get("product_name") or self.name

    def base_url(self, scheme: str = "http", port: int | None = None) -> str:
        """The tenant's own address, for links in emails (never the request's Host)."""
        host = self.primary_host
        if port and port not in (80, 443):
            host = f"{host}:{port}"
        return f"{scheme}://{host}"


def tenant_record(row: dict[str, Any], hosts: list[tuple[str, bool]]) -> TenantRecord:
    """Build the snapshot from a ``tenant`` row and its (hostname, is_primary) pairs."""
    plugins = load_json(row["plugins"])
    primary = next((h for h, is_primary in hosts if is_primary), hosts[0][0] if hosts else "")
    return TenantRecord(
        id=row["id"] if isinstance(row["id"], uuid.UUID) else uuid.UUID(str(row["id"])),
        slug=row["slug"],
        name=row["name"],
        theme=row["theme"],
        status=row["status"],
        branding=load_json(row["branding"]) or {},
        plugins=None if plugins is None else frozenset(plugins),
        settings=load_json(row["settings"]) or {},
        version=row["version"],
        has_logo=bool(row["logo_type"]),
        primary_host=primary,
        hosts=tuple(h for h, _ in hosts),
    )


class TenantDirectory:
    """Host → tenant lookups from an in-memory snapshot with a TTL and explicit invalidation."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._by_host: dict[str, TenantRecord] = {}
        self._by_id: dict[uuid.UUID, TenantRecord] = {}
        self._loaded_at = float("-inf")
        self.broadcast: Any = None  # set to a publisher (Redis) to reach the other processes

    async def refresh(self) -> None:
        """Reload every active tenant and its verified hostnames (two queries)."""
        rows = await Tenant.select(
            Tenant.id, Tenant.slug, Tenant.name, Tenant.theme, Tenant.status, Tenant.branding,
            Tenant.plugins, Tenant.settings, Tenant.version, Tenant.logo_type,
        ).where(Tenant.status == "active")
        domains = await TenantDomain.select(
            TenantDomain.tenant, TenantDomain.hostname, TenantDomain.is_primary
        ).where(TenantDomain.verified.eq(True))
        hosts_of: dict[str, list[tuple[str, bool]]] = {}
        for domain in domains:
            hosts_of.setdefault(str(domain["tenant"]), []).append((domain["hostname"], domain["is_primary"]))
        by_host, by_id = {}, {}
        for row in rows:
            record = tenant_record(row, sorted(hosts_of.get(str(row["id"]), [])))
            by_id[record.id] = record
            for host in record.hosts:
                by_host[host] = record
        self._by_host, self._by_id = by_host, by_id
        self._loaded_at = time.monotonic()

    async def ensure_fresh(self) -> None:
        """Reload when the snapshot is older than the TTL or was invalidated."""
        if time.monotonic() - self._loaded_at > self.ttl:
            await self.refresh()

    def invalidate(self, *, broadcast: bool = True) -> None:
        """Forget the snapshot: the next request reloads it (call after changing a tenant or domain).

        With Redis configured the other processes are told too.
        """
        self._loaded_at = float("-inf")
        if broadcast and self.broadcast is not None:
            self.broadcast()

    def lookup(self, host: str | None) -> TenantRecord | None:
        """The tenant serving ``host`` (already normalised), or ``None``."""
        return self._by_host.get(host) if host else None

    def get(self, tenant_id: uuid.UUID) -> TenantRecord | None:
        """A tenant by id (for background work that has no Host)."""
        return self._by_id.get(tenant_id)

    async def by_slug(self, slug: str) -> TenantRecord | None:
        """A tenant by slug, loading the snapshot if needed (CLI and workers)."""
        await self.ensure_fresh()
        return next((t for t in self._by_id.values() if t.slug == slug), None)
