"""The app the API keys benchmark serves: the real portal plus one trivial route, twice.

``GET /bench/ping`` (public, no authentication) and ``GET /api/v1/bench/ping`` (behind the
core's API guard, i.e. an API key) return the same tiny JSON, so the difference between
them is the cost of authentication. Served with
``granian --interface asgi --factory bench.apikeys_app:asgi_app``.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

from core import hookimpl
from core.app import create_app
from core.contracts import PluginInfo, PluginRoutes


@get("/bench/ping", include_in_schema=False)
async def public_ping() -> dict[str, str]:
    """Unauthenticated baseline."""
    return {"pong": "ok"}


@get("/ping")
async def api_ping() -> dict[str, str]:
    """The same route behind API-key authentication."""
    return {"pong": "ok"}


class BenchPlugin:
    """Contributes the two routes (slug ``bench``)."""

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        """Who the bench plugin is."""
        return PluginInfo("bench", "Bench", "0.1.0", "Benchmark routes")

    @hookimpl
    def portal_routes(self) -> Any:
        """One public and one API route."""
        return PluginRoutes(api=[api_ping], public=[public_ping])


def asgi_app() -> Litestar:
    """Factory for granian."""
    return create_app(extra_plugins=[BenchPlugin()])
