"""The read path: every number a page shows comes from the rollups, never from a scan of raw events."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.db import fetch_small, is_sqlite
from plugins.usage.periods import add_months, as_date, utc_hour
from plugins.usage.tables import UsageDaily, UsageMonthly


async def totals_between(org_id: uuid.UUID, start: date, end: date) -> dict[str, float]:
    """Sum per metric over the local days ``[start, end)``."""
    rows = await UsageDaily.raw(
        "SELECT metric, SUM(quantity) AS quantity FROM usage_daily "
        "WHERE organization = {} AND day >= {} AND day < {} GROUP BY metric", org_id, start, end)
    return {row["metric"]: float(row["quantity"] or 0) for row in rows}


async def period_totals(org_id: uuid.UUID, period_start: date) -> dict[str, float]:
    """Per metric, the total of the period (calendar month) starting ``period_start``: its monthly bucket."""
    rows = await UsageMonthly.select(UsageMonthly.metric, UsageMonthly.quantity).where(
        UsageMonthly.organization == org_id, UsageMonthly.month == period_start)
    return {row["metric"]: float(row["quantity"]) for row in rows}


async def daily_between(org_id: uuid.UUID, start: date, end: date,
                        metric: str | None = None) -> dict[str, dict[date, float]]:
    """Per metric, per local day in ``[start, end)``: the day's total (days without usage are absent)."""
    query = UsageDaily.select(UsageDaily.metric, UsageDaily.day, UsageDaily.quantity).where(
        UsageDaily.organization == org_id, UsageDaily.day >= start, UsageDaily.day < end)
    if metric is not None:
        query = query.where(UsageDaily.metric == metric)
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for row in await query:
        series[row["metric"]][as_date(row["day"])] = float(row["quantity"])
    return dict(series)


async def monthly_between(org_id: uuid.UUID, start: date, end: date) -> dict[str, dict[str, float]]:
    """Per metric, per month (``YYYY-MM``) of local days in ``[start, end)``."""
    month = "substr(day, 1, 7)" if is_sqlite() else "to_char(day, 'YYYY-MM')"
    rows = await UsageDaily.raw(
        f"SELECT metric, {month} AS month, SUM(quantity) AS quantity FROM usage_daily "
        "WHERE organization = {} AND day >= {} AND day < {} GROUP BY metric, " + month, org_id, start, end)
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        series[row["metric"]][str(row["month"])] = float(row["quantity"] or 0)
    return dict(series)


@dataclass
class PageSeries:
    """Everything the usage page reads about ingested metrics, from one query over the rollups."""

    totals: dict[str, float] = field(default_factory=dict)
    daily: dict[str, dict[date, float]] = field(default_factory=dict)
    monthly: dict[str, dict[str, float]] = field(default_factory=dict)
    last_24h: dict[str, float] = field(default_factory=dict)


@functools.lru_cache(maxsize=64)
def _page_sql(metric_count: int) -> str:
    names = ", ".join(["?"] * metric_count)
    return (
        "SELECT 'm' AS kind, metric, month AS at, quantity FROM usage_monthly "
        f"WHERE organization = ? AND metric IN ({names}) AND month >= ? AND month < ? "
        "UNION ALL SELECT 'd' AS kind, metric, day AS at, quantity FROM usage_daily "
        f"WHERE organization = ? AND metric IN ({names}) AND day >= ? AND day <= ? "
        "UNION ALL SELECT 'h' AS kind, metric, NULL AS at, SUM(quantity) AS quantity FROM usage_hourly "
        f"WHERE organization = ? AND metric IN ({names}) AND hour >= ? AND hour <= ? GROUP BY metric"
    )


async def page_series(org_id: uuid.UUID, metrics: list[str], period_start: date, period_end: date, today: date,
                      now: datetime) -> PageSeries:
    """Period totals, the last 30 days, the last 12 months and the last 24 hours of ``metrics``, in ONE query.

    Reads 12 monthly buckets, 30 daily buckets and 24 hourly buckets per metric, each
    from a covering index: about 200 index entries (130 rows) for three metrics, whatever
    the number of raw events. The period total is the current period's monthly bucket.
    ``period_*`` are local days of the tenant's zone; the 24 hours end with the current
    one (an event stamped a few minutes ahead counts once its hour begins, as a day
    ahead counts once it is today). Naming the metrics lets every part walk an index as
    a range. Every range has both ends so that PostgreSQL, which estimates an open range
    on a parameter as a third of the table, keeps the generic plan of the prepared
    statement instead of planning each read again (measured: 0.28 ms of a 0.7 ms read).
    Runs through ``fetch_small`` (no Piccolo query building, and on SQLite no hop to a
    driver thread): the query itself is most of its cost.
    """
    if not metrics:
        return PageSeries()
    org = str(org_id)
    rows = await fetch_small(_page_sql(len(metrics)), (
        org, *metrics, add_months(period_start, -11), period_end,
        org, *metrics, today - timedelta(days=29), today,
        org, *metrics, utc_hour(now) - timedelta(hours=23), utc_hour(now)))
    if rows and isinstance(rows[0], dict):  # inside a SQLite transaction the driver gives dicts
        rows = [tuple(row.values()) for row in rows]
    series = PageSeries()
    daily, monthly = series.daily, series.monthly
    for kind, metric, at, quantity in rows:  # by position: name lookups cost 25 µs of a 0.35 ms read
        if kind == "d":
            days = daily.get(metric)
            if days is None:
                days = daily[metric] = {}
            days[as_date(at)] = float(quantity)
        elif kind == "m":
            months = monthly.get(metric)
            if months is None:
                months = monthly[metric] = {}
            months[str(at)[:7]] = float(quantity)
        else:
            series.last_24h[metric] = float(quantity or 0)
    period_month = period_start.isoformat()[:7]
    for metric, months in series.monthly.items():
        series.totals[metric] = months.get(period_month, 0.0)
    return series
