"""``GET /_tls/ask?domain=...``: the question a TLS proxy asks before it obtains a certificate.

Caddy's on-demand TLS (see the repository's ``Caddyfile``) calls this for every new
hostname in a TLS handshake. ``200`` only when the name is a verified domain of an
active tenant, ``404`` otherwise, so nobody can make the proxy request certificates for
arbitrary names pointed at it. It answers on any Host (a platform route), reads only
the in-memory tenant directory (no database query unless the snapshot is stale) and
says yes to the platform's own host too (``PORTAL_PLATFORM_HOST``, the operator view); it
is rate-limited per client address (``429``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery

from core.ratelimit import Throttle
from core.tenancy import normalize_host

ASK_LIMIT = 600
ASK_WINDOW = 60.0


def _limiter(runtime: Any) -> Throttle:
    return runtime.limiter("tls_ask_limiter", int(runtime.settings.extra.get("tls_ask_limit", ASK_LIMIT)), ASK_WINDOW)


@get("/_tls/ask", name="tls_ask", opt={"platform": True, "exclude_from_csrf": True}, include_in_schema=False)
async def tls_ask(request: Request[Any, Any, Any], domain: FromQuery[str] = "") -> Response[str]:
    """200 for a verified, active tenant domain or the platform host; 404 for anything else; 429 when asked too
    often."""
    runtime = request.app.state.portal
    limiter = _limiter(runtime)
    client = request.client.host if request.client else "?"
    if wait := await limiter.retry_after(client):
        return Response("slow down\n", status_code=429, media_type="text/plain",
                        headers={"Retry-After": str(wait)})
    await limiter.hit(client)
    await runtime.directory.ensure_fresh()
    host = normalize_host(domain)
    platform = normalize_host(runtime.settings.extra.get("platform_host"))
    if host and (runtime.directory.lookup(host) is not None or host == platform):
        return Response("ok\n", media_type="text/plain", headers={"Cache-Control": "no-store"})
    return Response("unknown domain\n", status_code=404, media_type="text/plain",
                    headers={"Cache-Control": "no-store"})
