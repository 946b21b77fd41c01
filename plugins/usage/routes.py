"""HTTP handlers: the ingest/read API (``/api/v1/usage``) and the pages (``/o/{org}/usage``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Stream

from core.context import Ctx
from core.db import utcnow
from core.guards import requires
from core.rendering import render
from plugins.usage.alerts import parse_thresholds, save_thresholds, thresholds_of
from plugins.usage.config import config_of
from plugins.usage.dashboard import build_dashboard
from plugins.usage.export import MAX_EXPORT_DAYS, csv_rows
from plugins.usage.ingest import ingest
from plugins.usage.metrics import all_metrics
from plugins.usage.periods import local_day
from plugins.usage.queries import daily_between
from plugins.usage.validation import IngestError, IngestResponse, UsageBatchIn

OptionalStr = FromQuery[str | None]


def _json(value: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


# -- API ------------------------------------------------------------------------------------------------------


@post("/events", guards=[requires("usage.write")], summary="Report usage events",
      description="One event object, or {\"events\": [...]} with up to 100 events. All-or-nothing: if any event "
                  "is invalid, the answer is 422 with the errors of each invalid event and nothing is recorded. "
                  "An event whose idempotency_key this organization already sent is accepted and counted once.",
      responses=None, status_code=200)
async def post_events(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[bytes]:
    """Ingest usage for the API key's organization (schema: ``UsageEventIn`` or ``UsageBatchIn``)."""
    status, result = await ingest(ctx, await request.body())
    return _json(result, status)


class MetricOut(msgspec.Struct):
    """A metric of the current period."""

    key: str
    label: str
    unit: str
    used: float
    limit: float | None
    source: str


class SummaryOut(msgspec.Struct):
    """The organization's usage in the current period."""

    period_start: date
    period_end: date
    timezone: str
    metrics: list[MetricOut]


@get("/summary", guards=[requires("usage.read")], summary="Usage of the current period")
async def get_summary(ctx: Ctx) -> Response[bytes]:
    """Used and limit per metric for the current period (the dashboard's numbers, from rollups)."""
    dashboard = await build_dashboard(ctx, ctx.organization)
    return _json(SummaryOut(dashboard.period.start, dashboard.period.end - timedelta(days=1),
                            config_of(ctx).timezone.key,
                            [MetricOut(r.key, r.label, r.unit, r.used, r.limit, r.source) for r in dashboard.rows]))


def _parse_range(start: str | None, end: str | None, today: date, default_start: date) -> tuple[date, date]:
    try:
        first = date.fromisoformat(start) if start else default_start
        last = date.fromisoformat(end) if end else today
    except ValueError:
        raise ValueError("Dates look like 2024-05-31.") from None
    if first > last:
        raise ValueError("The start date is after the end date.")
    if (last - first).days >= MAX_EXPORT_DAYS:
        raise ValueError(f"Pick a range of at most {MAX_EXPORT_DAYS} days.")
    return first, last


@get("/daily", guards=[requires("usage.read")], summary="Daily usage of a metric")
async def get_daily(ctx: Ctx, metric: FromQuery[str], start: OptionalStr = None,
                    end: OptionalStr = None) -> Response[bytes]:
    """Per day of ``[start, end]`` (default: the last 30 days), the metric's total from the daily rollups."""
    config = config_of(ctx)
    today = local_day(utcnow(), config.timezone)
    try:
        first, last = _parse_range(start, end, today, today - timedelta(days=29))
    except ValueError as exc:
        return _json(IngestError("invalid_range", str(exc)), 400)
    series = (await daily_between(ctx.organization.id, first, last + timedelta(days=1), metric)).get(metric, {})
    days = [{"date": (first + timedelta(days=i)).isoformat(), "quantity": series.get(first + timedelta(days=i), 0.0)}
            for i in range((last - first).days + 1)]
    return _json({"metric": metric, "timezone": config.timezone.key, "days": days})


# -- pages ----------------------------------------------------------------------------------------------------


async def _dashboard_page(ctx: Any, chart_metric: str | None, *, status_code: int = 200,
                          export_error: str | None = None, export_start: str = "", export_end: str = "") -> Response:
    dashboard = await build_dashboard(ctx, ctx.organization)
    selected = chart_metric if chart_metric in dashboard.charts else next(iter(dashboard.charts), None)
    chart = dashboard.charts.get(selected) if selected else None
    chart_json = msgspec.json.encode({
        "label": chart.label, "unit": chart.unit, "limit": chart.limit,
        "daily": {"labels": chart.daily_labels, "values": chart.daily_values},
        "monthly": {"labels": chart.monthly_labels, "values": chart.monthly_values},
    }).decode() if chart else "null"
    return await render(
        ctx, "usage/index.html", status_code=status_code, dashboard=dashboard, chart=chart, chart_json=chart_json,
        selected=selected, export_error=export_error,
        export_start=export_start or dashboard.period.start.isoformat(),
        export_end=export_end or dashboard.today.isoformat(),
    )


@get("/", guards=[requires("usage.read")], name="usage_dashboard")
async def usage_page(ctx: Ctx, metric: OptionalStr = None) -> Response:
    """The usage dashboard of the organization."""
    return await _dashboard_page(ctx, metric)


@get("/export.csv", guards=[requires("usage.read")])
async def export_csv(ctx: Ctx, start: OptionalStr = None, end: OptionalStr = None,
                     metric: OptionalStr = None) -> Response:
    """Daily usage per metric for ``[start, end]`` as a streamed CSV download."""
    config = config_of(ctx)
    today = local_day(utcnow(), config.timezone)
    try:
        first, last = _parse_range(start, end, today, today.replace(day=1))
    except ValueError as exc:
        return await _dashboard_page(ctx, None, status_code=400, export_error=str(exc),
                                     export_start=start or "", export_end=end or "")
    known = list(config.metrics)
    metrics = [metric] if metric else known
    if not metrics or any(m not in known for m in metrics):
        return await _dashboard_page(ctx, None, status_code=400, export_error="Pick one of the metrics listed.",
                                     export_start=first.isoformat(), export_end=last.isoformat())
    filename = f"usage-{ctx.organization.slug}-{first.isoformat()}-{last.isoformat()}.csv"
    return Stream(csv_rows(ctx.organization.id, first, last, metrics), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": f'attachment; filename="{filename}"',
                           "Cache-Control": "private, no-store"})


async def _alerts_page(ctx: Any, *, values: str | None = None, error: str | None = None, saved: bool = False,
                       status_code: int = 200) -> Response:
    current = await thresholds_of(ctx.organization.id)
    limited = [v.metric for v in await all_metrics(ctx, ctx.organization)
               if v.metric.limit is not None and v.metric.limit > 0]
    return await render(ctx, "usage/alerts.html", status_code=status_code,
                        values=values if values is not None else ", ".join(str(t) for t in current),
                        thresholds=current, error=error, saved=saved, limited=limited)


@get("/alerts", guards=[requires("usage.manage")])
async def alerts_page(ctx: Ctx, saved: OptionalStr = None) -> Response:
    """Which thresholds send an alert."""
    return await _alerts_page(ctx, saved=bool(saved))


@post("/alerts", guards=[requires("usage.manage")])
async def save_alerts(ctx: Ctx, request: Request[Any, Any, Any]) -> Response:
    """Save the thresholds; re-render with the error when they are not valid."""
    form = await request.form()
    text = str(form.get("thresholds", ""))
    values, error = parse_thresholds(text)
    if error:
        return await _alerts_page(ctx, values=text, error=error, status_code=400)
    await save_thresholds(ctx, ctx.organization, values)
    return Response("", status_code=303, headers={"Location": ctx.org_url("usage/alerts?saved=1")})


API_HANDLERS = [post_events, get_summary, get_daily]
PAGE_HANDLERS = [usage_page, export_csv, alerts_page, save_alerts]
SCHEMA_TYPES = (UsageBatchIn, IngestResponse)
