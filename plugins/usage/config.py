"""The tenant's usage configuration (``[settings.usage]`` in its manifest), parsed once per request.

Example::

    [settings.usage]
    timezone = "Europe/Berlin"     # days, months and the billing period are counted in this zone
    backfill_days = 35             # how old an event may be when it is reported
    max_future_minutes = 5         # clock skew allowed for events "from the future"
    warning_threshold = 80         # default warning level (percent of the limit)

    [settings.usage.metrics.api_calls]
    label = "API calls"
    unit = "calls"
    threshold = 80                 # this metric's warning level

Only metrics listed under ``metrics`` can be reported through the ingest API;
metrics measured by other plugins (seats, active API keys) come from their
``portal_usage_metrics`` hooks. Prices (plan price, currency, overage unit prices)
are not configured here: the projected bill asks the billing plugin through
``portal_billing_summaries`` (older manifests' ``plan_price`` / ``unit_prices`` keys are ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

METRIC_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
DEFAULT_THRESHOLDS = (50, 80, 100)
CRITICAL_PERCENT = 95.0


@dataclass(frozen=True)
class MetricDefinition:
    """An ingestible metric: its key, how people call it, its unit and warning level."""

    key: str
    label: str
    unit: str = ""
    threshold: float = 80.0


@dataclass(frozen=True)
class UsageConfig:
    """Everything the usage plugin reads from the tenant's settings, with defaults."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    backfill_days: int = 35
    max_future_minutes: int = 5
    warning_threshold: float = 80.0
    metrics: dict[str, MetricDefinition] = field(default_factory=dict)

    def threshold_for(self, key: str) -> float:
        """The warning level of a metric: its own, else the tenant's default (80%)."""
        metric = self.metrics.get(key)
        return metric.threshold if metric is not None else self.warning_threshold


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def parse_config(settings: dict[str, Any] | None) -> UsageConfig:
    """Read ``settings["usage"]``; a bad value falls back to its default instead of breaking pages."""
    raw = (settings or {}).get("usage") or {}
    try:
        zone = ZoneInfo(str(raw.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    warning = _number(raw.get("warning_threshold"), 80.0)
    metrics: dict[str, MetricDefinition] = {}
    raw_metrics = raw.get("metrics") or {}
    if isinstance(raw_metrics, list):  # also accept [[settings.usage.metrics]] with a key each
        raw_metrics = {str(m.get("key")): m for m in raw_metrics if isinstance(m, dict)}
    for key, spec in raw_metrics.items():
        if not METRIC_KEY.match(str(key)):
            continue
        spec = spec if isinstance(spec, dict) else {}
        metrics[key] = MetricDefinition(
            key=key, label=str(spec.get("label") or key.replace("_", " ").capitalize()),
            unit=str(spec.get("unit") or ""), threshold=_number(spec.get("threshold"), warning),
        )
    return UsageConfig(
        timezone=zone,
        backfill_days=max(0, int(_number(raw.get("backfill_days"), 35))),
        max_future_minutes=max(0, int(_number(raw.get("max_future_minutes"), 5))),
        warning_threshold=warning, metrics=metrics,
    )


def config_of(ctx: Any) -> UsageConfig:
    """The usage configuration of the request's tenant (parsed once per tenant version and process)."""
    cached = ctx.cache.get("usage.config")
    if cached is None:
        parsed: dict[tuple[Any, Any], UsageConfig] = ctx.runtime.state.setdefault("usage.configs", {})
        slot = (ctx.tenant.id, getattr(ctx.tenant, "version", None))
        cached = parsed.get(slot)
        if cached is None:
            if len(parsed) > 10_000:
                parsed.clear()
            cached = parsed[slot] = parse_config(ctx.tenant.settings)
        ctx.cache["usage.config"] = cached
    return cached
