"""Email-domain ownership proved by a DNS TXT record (dnspython).

The organization publishes ``portal-verification=<token>`` as a TXT record at
``_portal-verification.<domain>``. The resolver is the system's, or the address in the
tenant setting ``sso_dns_resolver`` / the app setting ``PORTAL_SSO_DNS_RESOLVER``
(``host`` or ``host:port``), so tests can point at a local DNS server.
"""

from __future__ import annotations

import re
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from plugins.sso.errors import SsoError

RECORD_PREFIX = "_portal-verification"
VALUE_PREFIX = "portal-verification="
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PUBLIC_MAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "yahoo.com",
                                 "icloud.com", "gmx.de", "web.de", "proton.me", "protonmail.com"})


def normalize_domain(raw: str) -> str:
    """A lower-case, IDNA-encoded domain, or ``SsoError`` saying what is wrong with it."""
    domain = raw.strip().lower().rstrip(".").removeprefix("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise SsoError("bad_domain", "That is not a valid domain name.") from None
    if not DOMAIN_RE.match(domain):
        raise SsoError("bad_domain", "Enter a domain such as example.com (without https:// or an @).")
    if domain in PUBLIC_MAIL_DOMAINS:
        raise SsoError("bad_domain", f"{domain} is a public email provider; only your company's domain can be used.")
    return domain


def record_name(domain: str) -> str:
    """Where the TXT record goes."""
    return f"{RECORD_PREFIX}.{domain}"


def record_value(token: str) -> str:
    """What the TXT record says."""
    return f"{VALUE_PREFIX}{token}"


def resolver_address(runtime: Any, tenant: Any) -> str | None:
    """The configured resolver (tenant setting first, then the app setting), or None for the system's."""
    return (tenant.settings.get("sso_dns_resolver") if tenant is not None else None) or \
        runtime.settings.extra.get("sso_dns_resolver") or None


def make_resolver(address: str | None) -> dns.asyncresolver.Resolver:
    """A resolver for ``host[:port]`` or the system configuration."""
    if not address:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    resolver.nameservers = [host or address]
    if port:
        resolver.port = int(port)
    resolver.lifetime = 5.0
    return resolver


async def txt_values(domain: str, address: str | None) -> list[str]:
    """Every TXT string at the verification name (empty when there is none)."""
    resolver = make_resolver(address)
    try:
        answer = await resolver.resolve(record_name(domain), "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        raise SsoError("dns_unreachable", "The DNS lookup did not answer; try again in a few minutes.") from None
    except dns.exception.DNSException as exc:
        raise SsoError("dns_error", f"The DNS lookup failed ({type(exc).__name__}).") from None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


async def check_txt(domain: str, token: str, address: str | None) -> None:
    """Pass when the TXT record carries the token; otherwise say what the DNS shows instead."""
    values = await txt_values(domain, address)
    if record_value(token) in values:
        return
    if not values:
        raise SsoError("dns_record_missing", f"No TXT record found at {record_name(domain)}. DNS changes can take "
                                             "a while to appear; try again later.")
    raise SsoError("dns_record_mismatch", f"The TXT record at {record_name(domain)} does not contain "
                                          f"{record_value(token)}.")
