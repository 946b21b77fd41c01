"""The read path: every number a page shows comes from the rollups, never from a scan of raw events."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta

from core.db import is_sqlite
from plugins.usage.periods import utc_hour
from plugins.usage.tables import UsageDaily, UsageHourly


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def totals_between(org_id: uuid.UUID, start: date, end: date) -> dict[str, float]:
    """Sum per metric over the local days ``[start, end)``."""
    rows = await UsageDaily.raw(
        "SELECT metric, SUM(quantity) AS quantity FROM usage_daily "
        "WHERE organization = {} AND day >= {} AND day < {} GROUP BY metric", org_id, start, end)
    return {row["metric"]: float(row["quantity"] or 0) for row in rows}


async def daily_between(org_id: uuid.UUID, start: date, end: date,
                        metric: str | None = None) -> dict[str, dict[date, float]]:
    """Per metric, per local day in ``[start, end)``: the day's total (days without usage are absent)."""
    query = UsageDaily.select(UsageDaily.metric, UsageDaily.day, UsageDaily.quantity).where(
        UsageDaily.organization == org_id, UsageDaily.day >= start, UsageDaily.day < end)
    if metric is not None:
        query = query.where(UsageDaily.metric == metric)
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for row in await query:
        series[row["metric"]][_day(row["day"])] = float(row["quantity"])
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


async def last_hours(org_id: uuid.UUID, now: datetime, hours: int = 24) -> dict[str, float]:
    """Sum per metric over the last ``hours`` whole UTC hours plus the current one (hourly rollups)."""
    since = utc_hour(now) - timedelta(hours=hours - 1)
    rows = await UsageHourly.raw(
        "SELECT metric, SUM(quantity) AS quantity FROM usage_hourly "
        "WHERE organization = {} AND hour >= {} GROUP BY metric", org_id, since)
    return {row["metric"]: float(row["quantity"] or 0) for row in rows}
