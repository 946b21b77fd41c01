"""The app the usage benchmark serves: the real portal (usage + API keys) plus a plan-limits stand-in.

``bench-limits`` answers ``portal_plan_limits`` from memory (as billing would from its
tables) so every ingest also runs the alert check (period totals + thresholds) instead of
skipping it for lack of limits. Served with
``granian --interface asgi --factory bench.usage_app:asgi_app``.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from core import hookimpl
from core.app import create_app, served
from core.contracts import PluginInfo

LIMITS = {"api_calls": 1e12, "transfer_gb": 1e12, "compute_minutes": 1e12}


class BenchLimits:
    """Generous plan limits for every organization (slug ``bench-limits``)."""

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        """Who the stand-in is."""
        return PluginInfo("bench-limits", "Bench limits", "0.1.0", "Plan limits for the usage benchmark")

    @hookimpl
    def portal_plan_limits(self, ctx: Any, org: Any) -> dict[str, float]:
        """Limits so high no alert fires, but the check runs."""
        return LIMITS


def asgi_app() -> Litestar:
    """Factory for granian (settings from the environment the benchmark sets)."""
    return served(create_app(extra_plugins=[BenchLimits()]))

