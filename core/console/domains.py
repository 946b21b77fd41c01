"""Custom domains: add → create DNS records → verify → live; primary; remove; ``www``/apex pairs.

Ownership is proven with a TXT record ``_portal-challenge.<base>`` whose value is derived
from the platform key, the tenant and the base name (HMAC), so nothing needs storing and a
token is useless for another tenant or name. ``<base>`` is the name without a leading
``www.``: one TXT record proves both ``example.com`` and ``www.example.com``, and verifying
one verifies its pending partner too. Traffic arrives through a CNAME to the platform
(``PORTAL_CNAME_TARGET``) or, for an apex name that cannot carry a CNAME, A records to
``PORTAL_PLATFORM_IPS`` (or the DNS provider's ALIAS/ANAME); routing is reported, not
required, because it proves nothing about ownership.

A pending (unverified) domain does not route (the tenant directory loads verified
domains only) and gets no TLS certificate (``/_tls/ask``). A pending claim older than
``PENDING_CLAIM_DAYS`` no longer blocks another tenant from adding the same name.
DNS is asked through ``PORTAL_DNS_RESOLVER`` (``host[:port]``, comma-separated) when set,
the system resolver otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from core.console.service import ConsoleError, bump_version
from core.context import RequestContext
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.tables import TenantDomain
from core.tenancy import normalize_host

CHALLENGE_LABEL = "_portal-challenge"
TOKEN_PREFIX = "portal-verification="
PENDING_CLAIM_DAYS = 7
MAX_DOMAINS = 20
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class DnsRecord:
    """A record the tenant admin creates at their DNS provider."""

    type: str
    name: str
    value: str
    purpose: str


@dataclass
class DnsCheck:
    """What DNS answered for one domain."""

    ownership: bool
    routing: bool | None
    found_txt: list[str] = field(default_factory=list)
    found_routing: list[str] = field(default_factory=list)
    error: str = ""


def base_name(host: str) -> str:
    """The name the TXT record proves: ``www.example.com`` → ``example.com``."""
    return host[4:] if host.startswith("www.") and host.count(".") >= 2 else host


def partner_of(host: str) -> str:
    """The other half of a ``www``/apex pair."""
    return host[4:] if host.startswith("www.") and host.count(".") >= 2 else f"www.{host}"


def is_apex(host: str) -> bool:
    """A name with no label under its registrable part, roughly (no public-suffix list): ``example.com``."""
    return host.count(".") == 1


def verification_token(secret_key: str, tenant_id: uuid.UUID, host: str) -> str:
    """The TXT value that proves ``host`` (and its www/apex partner) for this tenant."""
    message = f"{tenant_id}:{base_name(host)}".encode()
    digest = hmac.new(secret_key.encode(), b"portal-domain:" + message, hashlib.sha256).hexdigest()
    return digest[:32]


def cname_target(ctx: RequestContext) -> str:
    """Where custom domains point: ``PORTAL_CNAME_TARGET``, else the platform host, else a tenant host."""
    extra = ctx.runtime.settings.extra
    target = extra.get("cname_target") or extra.get("platform_host")
    if target:
        return normalize_host(target) or target
    return ctx.tenant.hosts[0] if ctx.tenant.hosts else ctx.tenant.primary_host


def platform_ips(ctx: RequestContext) -> list[str]:
    """The addresses apex domains point their A/AAAA records at (``PORTAL_PLATFORM_IPS``)."""
    return [ip.strip() for ip in ctx.runtime.settings.extra.get("platform_ips", "").split(",") if ip.strip()]


def records_for(ctx: RequestContext, host: str) -> list[DnsRecord]:
    """The DNS records to create for ``host``."""
    token = verification_token(ctx.runtime.settings.secret_key, ctx.tenant.id, host)
    records = [DnsRecord("TXT", f"{CHALLENGE_LABEL}.{base_name(host)}", TOKEN_PREFIX + token,
                         "Proves the domain is yours (one record covers the www and bare name).")]
    if is_apex(host):
        ips = platform_ips(ctx)
        if ips:
            records += [DnsRecord("AAAA" if ":" in ip else "A", host, ip, "Sends visitors to the portal.")
                        for ip in ips]
        else:
            records.append(DnsRecord("ALIAS", host, cname_target(ctx),
                                     "Sends visitors to the portal (ALIAS/ANAME/flattened CNAME at the apex)."))
    else:
        records.append(DnsRecord("CNAME", host, cname_target(ctx), "Sends visitors to the portal."))
    return records


def clean_domain(raw: str, taken_by_platform: list[str] | None = None) -> str:
    """Validate what the admin typed (``https://Shop.Example.com/`` is fine); ``ConsoleError`` otherwise."""
    text = raw.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/")[0]
    host = normalize_host(text)
    if not host or ":" in host or host.startswith("["):
        raise ConsoleError("Enter a domain name like portal.example.com.")
    labels = host.split(".")
    if len(labels) < 2 or not all(LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ConsoleError("Enter a domain name like portal.example.com (letters, digits, dashes and dots).")
    if labels[-1] in {"localhost", "local", "internal", "invalid"}:
        raise ConsoleError("Use a public domain name you own.")
    for suffix in taken_by_platform or []:
        if host == suffix or host.endswith("." + suffix):
            raise ConsoleError(f"Names under {suffix} belong to the platform; use a domain you own.")
    return host


async def tenant_domains(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """The tenant's domains: primary first, then live, then pending, by name."""
    rows = await TenantDomain.select().where(TenantDomain.tenant == tenant_id)
    rows.sort(key=lambda r: (not r["is_primary"], not r["verified"], r["hostname"]))
    return rows


async def _domain(ctx: RequestContext, domain_id: str) -> dict[str, Any]:
    try:
        key = uuid.UUID(str(domain_id))
    except ValueError:
        raise ConsoleError("That domain does not exist.") from None
    row = await TenantDomain.select().where(TenantDomain.id == key, TenantDomain.tenant == ctx.tenant.id).first()
    if row is None:
        raise ConsoleError("That domain does not exist.")
    return row


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {"hostname": row["hostname"], "verified": bool(row["verified"]), "is_primary": bool(row["is_primary"])}


async def add_domain(ctx: RequestContext, raw: str, *, with_partner: bool) -> list[str]:
    """Add a pending domain (and its www/apex partner when asked); returns the names added."""
    reserved = [h for h in (ctx.runtime.settings.extra.get("platform_host"),
                            ctx.runtime.settings.extra.get("cname_target")) if h]
    host = clean_domain(raw, reserved)
    wanted = [host] + ([partner_of(host)] if with_partner else [])
    added: list[str] = []
    async with atomic():
        if await TenantDomain.count().where(TenantDomain.tenant == ctx.tenant.id) + len(wanted) > MAX_DOMAINS:
            raise ConsoleError(f"A portal can have at most {MAX_DOMAINS} domains; remove one first.")
        stale = utcnow() - timedelta(days=PENDING_CLAIM_DAYS)
        for name in wanted:
            existing = await TenantDomain.select().where(TenantDomain.hostname == name).first()
            if existing is not None:
                if existing["tenant"] == ctx.tenant.id:
                    if name == host:
                        raise ConsoleError(f"{name} is already one of your domains.")
                    continue
                if existing["verified"] or as_utc(existing["created_at"]) > stale:
                    raise ConsoleError(f"{name} is already in use by another portal. If it is yours, contact "
                                       "support.")
                await TenantDomain.delete().where(TenantDomain.id == existing["id"])
            await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=ctx.tenant.id, hostname=name,
                                                   is_primary=False, verified=False, source="console",
                                                   created_at=utcnow()))
            added.append(name)
        await bump_version(ctx.tenant.id)
        for name in added:
            await emit(ctx, "console.domain.added", target=Target("tenant_domain", name, name), before=None,
                       after={"hostname": name, "verified": False, "is_primary": False})
    ctx.runtime.directory.invalidate()
    return added


def _resolver(spec: str | None) -> Any:
    try:
        return _build_resolver(spec)
    except Exception:  # noqa: BLE001 - a misconfiguration must read as one, not as a 500
        raise ConsoleError("DNS lookups are not configured on this server (PORTAL_DNS_RESOLVER or "
                           "/etc/resolv.conf); tell your platform operator.") from None


def _build_resolver(spec: str | None) -> Any:
    import dns.asyncresolver

    if not spec:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        servers, port = [], 53
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            if item.count(":") == 1:
                item, _, raw_port = item.partition(":")
                port = int(raw_port)
            servers.append(item)
        resolver.nameservers = servers
        resolver.port = port
    resolver.lifetime = 4.0
    resolver.timeout = 2.0
    return resolver


async def _answers(resolver: Any, name: str, rdtype: str) -> list[str]:
    import dns.exception
    import dns.resolver

    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.Timeout:
        raise ConsoleError("The DNS servers did not answer in time; try again in a minute.") from None
    except dns.exception.DNSException as exc:
        raise ConsoleError(f"DNS lookup of {name} failed ({type(exc).__name__}); try again in a minute.") from None
    if rdtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text().rstrip(".").lower() for r in answer]


async def check_dns(ctx: RequestContext, host: str) -> DnsCheck:
    """Ask DNS whether ``host`` carries this tenant's TXT token and points at the platform."""
    resolver = _resolver(ctx.runtime.settings.extra.get("dns_resolver"))
    token = TOKEN_PREFIX + verification_token(ctx.runtime.settings.secret_key, ctx.tenant.id, host)
    txt = await _answers(resolver, f"{CHALLENGE_LABEL}.{base_name(host)}", "TXT")
    check = DnsCheck(ownership=token in txt, routing=None, found_txt=txt)
    target = cname_target(ctx)
    cnames = await _answers(resolver, host, "CNAME")
    if cnames:
        check.found_routing = [f"CNAME {c}" for c in cnames]
        check.routing = target in cnames
    elif platform_ips(ctx):
        addresses = await _answers(resolver, host, "A")
        check.found_routing = [f"A {a}" for a in addresses]
        check.routing = bool(addresses) and set(addresses) <= set(platform_ips(ctx))
    return check


async def record_check(ctx: RequestContext, host: str, check: DnsCheck) -> None:
    """Keep the last DNS check of ``host`` (the operator view shows when and what was found)."""
    from core.console.tables import DomainCheck

    detail = "; ".join([*(f"TXT {t}" for t in check.found_txt), *check.found_routing])[:2000]
    async with atomic():
        await DomainCheck.delete().where(DomainCheck.hostname == host)
        await DomainCheck.insert(DomainCheck(id=uuid.uuid4(), tenant=ctx.tenant.id, hostname=host,
                                             checked_at=utcnow(), ownership=check.ownership, routing=check.routing,
                                             detail=detail))


async def verify_domain(ctx: RequestContext, domain_id: str) -> tuple[list[str], DnsCheck]:
    """Check DNS; on success the domain (and its pending www/apex partner) goes live. Returns names made live."""
    row = await _domain(ctx, domain_id)
    check = await check_dns(ctx, row["hostname"])
    await record_check(ctx, row["hostname"], check)
    if not check.ownership:
        return [], check
    base = base_name(row["hostname"])
    live: list[str] = []
    async with atomic():
        rows = await TenantDomain.select().where(TenantDomain.tenant == ctx.tenant.id,
                                                 TenantDomain.verified.eq(False))
        for other in rows:
            if base_name(other["hostname"]) == base:
                await TenantDomain.update({TenantDomain.verified: True}).where(TenantDomain.id == other["id"])
                live.append(other["hostname"])
                await emit(ctx, "console.domain.verified", target=Target("tenant_domain", str(other["id"]),
                                                                          other["hostname"]),
                           before=_snapshot(other), after={**_snapshot(other), "verified": True})
        if not await TenantDomain.exists().where(TenantDomain.tenant == ctx.tenant.id,
                                                 TenantDomain.is_primary.eq(True)):
            await TenantDomain.update({TenantDomain.is_primary: True}).where(TenantDomain.id == row["id"])
        await bump_version(ctx.tenant.id)
    ctx.runtime.directory.invalidate()
    return live, check


async def set_primary(ctx: RequestContext, domain_id: str) -> str:
    """Make a live domain the primary one (used in every email link)."""
    row = await _domain(ctx, domain_id)
    if not row["verified"]:
        raise ConsoleError(f"Verify {row['hostname']} before making it the primary domain.")
    if row["is_primary"]:
        return row["hostname"]
    async with atomic():
        previous = await TenantDomain.select(TenantDomain.hostname).where(
            TenantDomain.tenant == ctx.tenant.id, TenantDomain.is_primary.eq(True)).first()
        await TenantDomain.update({TenantDomain.is_primary: False}).where(TenantDomain.tenant == ctx.tenant.id)
        await TenantDomain.update({TenantDomain.is_primary: True}).where(TenantDomain.id == row["id"])
        await bump_version(ctx.tenant.id, owned=["domains.primary"])
        await emit(ctx, "console.domain.primary_changed", target=Target("tenant_domain", str(row["id"]),
                                                                         row["hostname"]),
                   before={"primary": previous["hostname"] if previous else None},
                   after={"primary": row["hostname"]})
    ctx.runtime.directory.invalidate()
    return row["hostname"]


async def remove_domain(ctx: RequestContext, domain_id: str, current_host: str | None) -> str:
    """Remove a domain; never the primary, the last live one, or the one this request came in on."""
    row = await _domain(ctx, domain_id)
    if row["is_primary"]:
        raise ConsoleError(f"{row['hostname']} is the primary domain; make another domain primary first.")
    if row["hostname"] == current_host:
        raise ConsoleError(f"You are using the console through {row['hostname']}; open it on another of your "
                           "domains to remove this one.")
    async with atomic():
        if row["verified"]:
            live = await TenantDomain.count().where(TenantDomain.tenant == ctx.tenant.id,
                                                    TenantDomain.verified.eq(True))
            if live <= 1:
                raise ConsoleError("This is your portal's last live domain; add and verify another one first.")
        await TenantDomain.delete().where(TenantDomain.id == row["id"])
        await bump_version(ctx.tenant.id)
        await emit(ctx, "console.domain.removed", target=Target("tenant_domain", str(row["id"]), row["hostname"]),
                   before=_snapshot(row), after=None)
    ctx.runtime.directory.invalidate()
    return row["hostname"]
