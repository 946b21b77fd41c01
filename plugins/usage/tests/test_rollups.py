"""Rollups equal brute-force sums of the raw events, across time zones, DST and period boundaries."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import as_utc, atomic
from plugins.usage.config import parse_config
from plugins.usage.periods import current_period, local_day, utc_hour
from plugins.usage.queries import monthly_between, totals_between
from plugins.usage.service import NewEvent, rebuild_rollups, record_events
from plugins.usage.tables import UsageDaily, UsageEvent, UsageHourly

from .helpers import add_organization

START = datetime(2026, 3, 20, tzinfo=UTC)  # spans the European DST change of 29 March and a month end
ZONES = ["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"]

event_strategy = st.builds(
    lambda metric, quarter, minutes, key: NewEvent(metric, quarter / 4, START + timedelta(minutes=minutes), key),
    metric=st.sampled_from(["api_calls", "transfer_gb"]),
    quarter=st.integers(min_value=0, max_value=4000),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 20),
    key=st.text(alphabet="abcdefgh", min_size=1, max_size=3),
)


async def _buckets(table, column, org_id):
    rows = await table.select().where(table.organization == org_id)
    return {(r["metric"], r[column]): (r["quantity"], r["events"]) for r in rows if r["events"]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(event_strategy, min_size=1, max_size=40), min_size=1, max_size=4),
       zone_name=st.sampled_from(ZONES))
async def test_rollups_match_brute_force(usage_env, batches, zone_name):
    tenant = await usage_env.tenant() if not usage_env.tenants else usage_env.tenants[0]
    usage_env.tenants[:1] = [tenant]
    org = await add_organization(tenant.id)
    zone = ZoneInfo(zone_name)
    for batch in batches:
        await record_events(tenant.id, org.id, batch, zone)
    first_by_key: dict[str, NewEvent] = {}
    for batch in batches:
        for item in batch:
            first_by_key.setdefault(item.idempotency_key, item)
    hourly, daily = defaultdict(lambda: [0.0, 0]), defaultdict(lambda: [0.0, 0])
    for item in first_by_key.values():
        for bucket in (hourly[(item.metric, utc_hour(item.occurred_at))],
                       daily[(item.metric, local_day(item.occurred_at, zone))]):
            bucket[0] += item.quantity
            bucket[1] += 1
    stored_hourly = {(m, as_utc(h)): v for (m, h), v in (await _buckets(UsageHourly, "hour", org.id)).items()}
    assert stored_hourly == {k: tuple(v) for k, v in hourly.items()}
    assert await _buckets(UsageDaily, "day", org.id) == {k: tuple(v) for k, v in daily.items()}
    assert await UsageEvent.count().where(UsageEvent.organization == org.id) == len(first_by_key)
    # the read path agrees too: a month's total is the sum of its days
    totals = await totals_between(org.id, date(2026, 3, 1), date(2026, 4, 1))
    expected = defaultdict(float)
    for (metric, day), (quantity, _) in daily.items():
        if day.month == 3:
            expected[metric] += quantity
    assert totals == dict(expected)
    # and rebuilding from raw events gives the same rollups
    await rebuild_rollups(tenant.id, org.id, zone)
    assert await _buckets(UsageDaily, "day", org.id) == {k: tuple(v) for k, v in daily.items()}


async def test_local_day_and_month_boundaries(usage_env):
    tenant = await usage_env.tenant()
    org = await add_organization(tenant.id)
    berlin = ZoneInfo("Europe/Berlin")
    events = [
        NewEvent("api_calls", 1, datetime(2026, 1, 31, 22, 59, tzinfo=UTC), "jan-last"),   # 23:59 Berlin, January
        NewEvent("api_calls", 10, datetime(2026, 1, 31, 23, 0, tzinfo=UTC), "feb-first"),  # 00:00 Berlin, February
        NewEvent("api_calls", 100, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "dst-day"),  # 29 March, 00:30 CET
        NewEvent("api_calls", 1000, datetime(2026, 3, 29, 21, 59, tzinfo=UTC), "dst-end"),  # 29 March, 23:59 CEST
        NewEvent("api_calls", 5000, datetime(2026, 3, 29, 22, 0, tzinfo=UTC), "dst-next"),  # 30 March, 00:00
    ]
    await record_events(tenant.id, org.id, events, berlin)
    days = {r["day"]: r["quantity"] for r in await UsageDaily.select().where(UsageDaily.organization == org.id)}
    days = {(d if isinstance(d, date) else date.fromisoformat(d)): q for d, q in days.items()}
    assert days == {date(2026, 1, 31): 1, date(2026, 2, 1): 10, date(2026, 3, 29): 1100, date(2026, 3, 30): 5000}
    months = await monthly_between(org.id, date(2026, 1, 1), date(2026, 4, 1))
    assert months == {"api_calls": {"2026-01": 1, "2026-02": 10, "2026-03": 6100}}
    # the current period is the Berlin calendar month: 00:30 on 1 Feb Berlin is still 31 Jan in UTC
    period = current_period(datetime(2026, 1, 31, 23, 30, tzinfo=UTC), berlin)
    assert (period.start, period.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert period.starts_at == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    assert await totals_between(org.id, period.start, period.end) == {"api_calls": 10}
    # the same instants in Los Angeles fall on other days
    la = current_period(datetime(2026, 2, 1, 7, 30, tzinfo=UTC), ZoneInfo("America/Los_Angeles"))
    assert la.start == date(2026, 1, 1)
    # a DST month is 743 hours long in Berlin
    march = current_period(datetime(2026, 3, 15, tzinfo=UTC), berlin)
    assert (march.ends_at - march.starts_at) == timedelta(hours=31 * 24 - 1)


def test_config_parsing_defaults_and_bad_values():
    config = parse_config({"usage": {"timezone": "Mars/Olympus", "backfill_days": "x",
                                     "metrics": {"ok_metric": {"threshold": 70}, "Bad Key": {}}}})
    assert config.timezone.key == "UTC" and config.backfill_days == 35
    assert list(config.metrics) == ["ok_metric"]
    assert config.threshold_for("ok_metric") == 70 and config.threshold_for("seats") == 80
    assert parse_config(None).metrics == {}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.builds(
    lambda metric, quarter, minutes, key: NewEvent(metric, quarter / 4, START + timedelta(minutes=minutes), key),
    metric=st.sampled_from(["api_calls", "transfer_gb"]), quarter=st.integers(min_value=0, max_value=4000),
    minutes=st.integers(min_value=-60 * 24 * 400, max_value=60 * 24 * 20), key=st.uuids().map(str)),
    min_size=1, max_size=60),
    zone_name=st.sampled_from(ZONES), now_minutes=st.integers(min_value=0, max_value=60 * 24 * 25))
async def test_page_series_matches_brute_force(usage_env, events, zone_name, now_minutes):
    """The page's one-query read (totals, 30 days, 12 months, 24 hours) equals sums over the raw events."""
    from plugins.usage.periods import add_months
    from plugins.usage.queries import page_series

    tenant = await usage_env.tenant() if not usage_env.tenants else usage_env.tenants[0]
    usage_env.tenants[:1] = [tenant]
    org = await add_organization(tenant.id)
    zone = ZoneInfo(zone_name)
    await record_events(tenant.id, org.id, events, zone)
    now = START + timedelta(minutes=now_minutes)
    period = current_period(now, zone)
    today = local_day(now, zone)
    series = await page_series(org.id, ["api_calls", "transfer_gb"], period.start, period.end, today, now)
    async with atomic():  # on the transaction's connection (SQLite's driver gives dicts there): the same numbers
        assert await page_series(org.id, ["api_calls", "transfer_gb"], period.start, period.end, today, now) == series
    totals, daily, monthly, recent = defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(float)
    first_month = add_months(period.start, -11)
    for item in events:
        day = local_day(item.occurred_at, zone)
        if period.start <= day < period.end:
            totals[item.metric] += item.quantity
        if today - timedelta(days=29) <= day <= today:
            daily[(item.metric, day)] += item.quantity
        if first_month <= day < period.end:
            monthly[(item.metric, day.strftime("%Y-%m"))] += item.quantity
        if utc_hour(now) - timedelta(hours=23) <= item.occurred_at < utc_hour(now) + timedelta(hours=1):
            recent[item.metric] += item.quantity

    def close(a: dict, b: dict) -> bool:
        keys = {k for k, v in a.items() if v} | {k for k, v in b.items() if v}
        return all(abs(a.get(k, 0) - b.get(k, 0)) < 1e-6 for k in keys)

    assert close(dict(series.totals), totals)
    assert close({(m, d): v for m, days in series.daily.items() for d, v in days.items() if d <= today}, daily)
    assert close({(m, k): v for m, months in series.monthly.items() for k, v in months.items()}, monthly)
    assert close(dict(series.last_24h), recent)
