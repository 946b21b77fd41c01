"""Which metrics an organization has, with used and limit, from every plugin alike.

The usage plugin reports its own ingested metrics through ``portal_usage_metrics``
like team (seats) and API keys (active keys) do, so the dashboard, the alerts and
the billing plugin treat them all the same way. Limits come from the plan
(``portal_plan_limits``, implemented by billing) unless a plugin set its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.contracts import UsageMetric
from core.db import utcnow
from plugins.usage.config import config_of
from plugins.usage.periods import current_period, local_day
from plugins.usage.queries import PageSeries, page_series, period_totals


@dataclass(frozen=True)
class MeteredValue:
    """A metric of an organization with the plugin that measures it."""

    source: str
    metric: UsageMetric


async def plan_limits(ctx: Any, org: Any) -> dict[str, float]:
    """The plan's limits (``portal_plan_limits``), once per request and organization."""
    key = f"usage.limits.{org.id}"
    if key not in ctx.cache:
        limits = await ctx.runtime.plugins.first("portal_plan_limits", tenant=ctx.tenant, ctx=ctx, org=org)
        ctx.cache[key] = {str(k): float(v) for k, v in (limits or {}).items() if _is_number(v)}
    return ctx.cache[key]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def clock(ctx: Any, now: datetime | None = None) -> datetime:
    """``now``, else the instant a caller pinned for this request (``ctx.cache["usage.now"]``), else the time.

    Pinning lets the dashboard and alerts compute "the current period" for a given
    instant through the hooks, which take no time argument (tests, replays).
    """
    return now or ctx.cache.get("usage.now") or utcnow()


def _series_key(org: Any, now: datetime) -> str:
    return f"usage.series.{org.id}.{now.isoformat()}"


async def page_data(ctx: Any, org: Any, *, now: datetime | None = None) -> PageSeries:
    """The page's rollup numbers for ``org`` at ``now`` (one query, then cached for the request)."""
    now = clock(ctx, now)
    key = _series_key(org, now)
    if key not in ctx.cache:
        config = config_of(ctx)
        period = current_period(now, config.timezone)
        ctx.cache[key] = await page_series(org.id, list(config.metrics), period.start, period.end,
                                           local_day(now, config.timezone), now)
    return ctx.cache[key]


async def ingested_metrics(ctx: Any, org: Any, *, now: datetime | None = None,
                           known_totals: Mapping[tuple[str, date], float] | None = None) -> list[UsageMetric]:
    """This plugin's own metrics: each configured metric's total for the current period (monthly rollups).

    Reuses numbers already at hand: ``known_totals`` ((metric, month) -> total, what the
    ingest writer's upsert returned) or the page's numbers when the request read them
    (the dashboard); else reads just the period totals.
    """
    config = config_of(ctx)
    if not config.metrics:
        return []
    moment = clock(ctx, now)
    period = current_period(moment, config.timezone)
    cached = ctx.cache.get(_series_key(org, moment))
    if known_totals is not None:
        totals = {metric: total for (metric, month), total in known_totals.items() if month == period.start}
    elif cached is not None:
        totals = cached.totals
    else:
        totals = await period_totals(org.id, period.start)
    limits = await plan_limits(ctx, org)
    return [UsageMetric(m.key, m.label, used=totals.get(m.key, 0.0), limit=limits.get(m.key), unit=m.unit)
            for m in config.metrics.values()]


async def all_metrics(ctx: Any, org: Any) -> list[MeteredValue]:
    """Every plugin's metrics for ``org`` (first plugin to report a key wins), with plan limits filled in."""
    limits = await plan_limits(ctx, org)
    seen: set[str] = set()
    values = []
    results = await ctx.runtime.plugins.call("portal_usage_metrics", tenant=ctx.tenant, ctx=ctx, org=org)
    results.sort(key=lambda pair: pair[0] != "usage")
    for slug, metrics in results:
        for metric in metrics or []:
            if not isinstance(metric, UsageMetric) or metric.key in seen:
                continue
            seen.add(metric.key)
            if metric.limit is None and metric.key in limits:
                metric = UsageMetric(metric.key, metric.label, metric.used, limits[metric.key], metric.unit)
            values.append(MeteredValue(slug, metric))
    return values


async def foreign_metric_owners(ctx: Any, org: Any) -> dict[str, str]:
    """Metric keys other plugins measure, with the plugin's label (for a clear ingest error)."""
    owners = {}
    for slug, metrics in await ctx.runtime.plugins.call("portal_usage_metrics", tenant=ctx.tenant, ctx=ctx, org=org):
        if slug == "usage":
            continue
        label = ctx.runtime.plugins.plugins[slug].info.label if slug in ctx.runtime.plugins.plugins else slug
        for metric in metrics or []:
            if isinstance(metric, UsageMetric):
                owners[metric.key] = label
    return owners
