"""What the usage page shows, computed from rollups and the plugins' metrics (no HTTP here).

- Each metric: used / limit for the current period, percent, a state (``ok``,
  ``warning`` from the metric's threshold, default 80%, ``critical`` from 95%,
  ``over`` above 100% with the overage, ``unlimited`` for -1, ``no-limit`` when the
  plan sets none).
- Forecast for the period end: metrics with rollups (ingested) are projected from
  the run rate so far (used / elapsed share of the period, counted from at least one
  day in so a quiet first hour does not explode); metrics reported as a level by
  other plugins (seats, keys) are projected at their current value.
- Projected bill: the plan price plus projected overage × the plan's unit price, both
  from the billing plugin (``portal_billing_summaries``); an estimate. With no billing
  plugin answering there is no projected bill (never a made-up price). A yearly plan
  counts its monthly share (``monthly_amount``), since the usage period is a month.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.contracts import BillingSummary
from core.db import utcnow
from plugins.usage.config import CRITICAL_PERCENT, UsageConfig, config_of
from plugins.usage.metrics import all_metrics, page_data
from plugins.usage.periods import Period, add_months, current_period, days, local_day
from plugins.usage.queries import PageSeries

MIN_ELAPSED = 1 / 31


@dataclass
class MetricRow:
    """One line of the usage table."""

    key: str
    label: str
    unit: str
    used: float
    limit: float | None
    source: str
    threshold: float
    percent: float | None = None
    state: str = "no-limit"
    overage: float = 0.0
    forecast: float = 0.0
    forecast_overage: float = 0.0
    unit_price: Decimal = Decimal(0)
    last_24h: float | None = None
    ingested: bool = False

    @property
    def bar_percent(self) -> float:
        """Width of the bar (capped at 100%)."""
        return min(100.0, self.percent or 0.0)


@dataclass
class Chart:
    """A series for the charts, also rendered as a table (readable without the chart and without colour)."""

    metric: str
    label: str
    unit: str
    daily_labels: list[str] = field(default_factory=list)
    daily_values: list[float] = field(default_factory=list)
    monthly_labels: list[str] = field(default_factory=list)
    monthly_values: list[float] = field(default_factory=list)
    limit: float | None = None


@dataclass
class Dashboard:
    """Everything the page needs."""

    period: Period
    rows: list[MetricRow]
    charts: dict[str, Chart]
    billing: BillingSummary | None
    today: date

    @property
    def currency(self) -> str:
        """The plan's currency (empty without a billing summary)."""
        return self.billing.currency if self.billing else ""

    @property
    def plan_price(self) -> Decimal | None:
        """The plan's price for one month (a yearly plan's twelfth), or None when billing did not say."""
        if self.billing is None:
            return None
        return self.billing.amount if self.billing.interval == "month" else self.billing.monthly_amount

    @property
    def projected_overage(self) -> Decimal:
        """Projected overage × the plan's unit price, summed over the metrics."""
        return sum((Decimal(str(round(r.forecast_overage, 6))) * r.unit_price for r in self.rows), Decimal(0))

    @property
    def projected_bill(self) -> Decimal | None:
        """Plan price plus projected overage (an estimate), rounded to cents; None without billing."""
        if self.plan_price is None:
            return None
        return (self.plan_price + self.projected_overage).quantize(Decimal("0.01"))

    @property
    def period_label(self) -> str:
        """E.g. "1–30 June 2024"."""
        last = self.period.end - timedelta(days=1)
        return f"{self.period.start.day}–{last.day} {calendar.month_name[last.month]} {last.year}"


def classify(row: MetricRow) -> None:
    """Fill percent, state and overage of a row from used and limit."""
    if row.limit is None:
        row.state = "no-limit"
        return
    if row.limit < 0:
        row.state = "unlimited"
        return
    if row.limit == 0:
        row.percent = 100.0 if row.used > 0 else 0.0
    else:
        row.percent = row.used / row.limit * 100
    row.overage = max(0.0, row.used - row.limit)
    if row.used > row.limit:
        row.state = "over"
    elif row.percent >= CRITICAL_PERCENT:
        row.state = "critical"
    elif row.percent >= row.threshold:
        row.state = "warning"
    else:
        row.state = "ok"


def forecast(row: MetricRow, period: Period, now: datetime) -> None:
    """Project the period-end value and its overage."""
    if row.ingested:
        elapsed = max(MIN_ELAPSED, period.elapsed_fraction(now))
        row.forecast = row.used / elapsed
    else:
        row.forecast = row.used
    if row.limit is not None and row.limit >= 0:
        row.forecast_overage = max(0.0, row.forecast - row.limit)


def month_label(key: str) -> str:
    """``2024-06`` → ``Jun 2024``."""
    year, month = key.split("-")
    return f"{calendar.month_abbr[int(month)]} {year}"


async def billing_summary(ctx: Any, org: Any) -> BillingSummary | None:
    """The billing plugin's summary of what ``org`` pays (``portal_billing_summaries``), or None."""
    summaries = await ctx.runtime.plugins.first("portal_billing_summaries", tenant=ctx.tenant, ctx=ctx, orgs=[org])
    summary = (summaries or {}).get(org["id"] if isinstance(org, dict) else org.id)
    return summary if isinstance(summary, BillingSummary) else None


async def build_dashboard(ctx: Any, org: Any, *, now: datetime | None = None) -> Dashboard:
    """Compute the page's data: metric rows (all plugins), charts of ingested metrics, forecast and bill."""
    now = now or utcnow()
    ctx.cache["usage.now"] = now
    config: UsageConfig = config_of(ctx)
    period = current_period(now, config.timezone)
    today = local_day(now, config.timezone)
    # one query for every rollup number of the page; the metrics hook below reuses it
    series = await page_data(ctx, org, now=now) if config.metrics else PageSeries()
    billing = await billing_summary(ctx, org)
    prices = billing.unit_prices if billing else {}
    rows = []
    for value in await all_metrics(ctx, org):
        metric = value.metric
        row = MetricRow(metric.key, metric.label, metric.unit, float(metric.used), metric.limit, value.source,
                        config.threshold_for(metric.key), unit_price=Decimal(str(prices.get(metric.key, 0))),
                        ingested=value.source == "usage")
        classify(row)
        forecast(row, period, now)
        rows.append(row)
    charts: dict[str, Chart] = {}
    ingested = [r for r in rows if r.ingested]
    if ingested:
        daily_start = today - timedelta(days=29)
        first_month = add_months(period.start, -11)
        month_keys = [add_months(first_month, i).strftime("%Y-%m") for i in range(12)]
        for row in ingested:
            row.last_24h = series.last_24h.get(row.key, 0.0)
            daily = series.daily.get(row.key, {})
            months = series.monthly.get(row.key, {})
            charts[row.key] = Chart(
                row.key, row.label, row.unit,
                daily_labels=[d.isoformat() for d in days(daily_start, today + timedelta(days=1))],
                daily_values=[daily.get(d, 0.0) for d in days(daily_start, today + timedelta(days=1))],
                monthly_labels=[month_label(k) for k in month_keys],
                monthly_values=[months.get(k, 0.0) for k in month_keys],
                limit=row.limit if row.limit is not None and row.limit >= 0 else None,
            )
    return Dashboard(period, rows, charts, billing, today)
