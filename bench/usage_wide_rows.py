"""Would wider rollup rows make the PostgreSQL usage page read much cheaper? An experiment, not the app's schema.

Builds, on a throwaway PostgreSQL, the page's rollups for 1,000 organizations in two shapes:
today's (monthly, daily and hourly rows, read as ``plugins.usage.queries.page_series`` reads
them: 129 rows from ~200 index entries) and a wide one (a month row carrying its days as an
array, a day row its hours: 42 rows), each under a covering index. Reads both in alternating
blocks in one run on one connection, with ``SELECT 1`` as the floor, and prints the server's
own execution time of each. Run: ``.venv/bin/python bench/usage_wide_rows.py``.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ["api_calls", "transfer_gb", "compute_minutes"]
TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 15, tzinfo=UTC)
TABLES = """
CREATE TABLE m (org uuid, metric text, month date, quantity float8);
CREATE TABLE d (org uuid, metric text, day date, quantity float8);
CREATE TABLE h (org uuid, metric text, hour timestamptz, quantity float8);
CREATE TABLE mw (org uuid, metric text, month date, quantity float8, days float8[]);
CREATE TABLE dw (org uuid, metric text, day date, quantity float8, hours float8[]);
"""
INDEXES = """
CREATE UNIQUE INDEX m_c ON m (org, metric, month) INCLUDE (quantity);
CREATE UNIQUE INDEX d_c ON d (org, metric, day) INCLUDE (quantity);
CREATE UNIQUE INDEX h_c ON h (org, metric, hour) INCLUDE (quantity);
CREATE UNIQUE INDEX mw_c ON mw (org, metric, month) INCLUDE (quantity, days);
CREATE UNIQUE INDEX dw_c ON dw (org, metric, day) INCLUDE (quantity, hours);
"""
NARROW = """
SELECT 'm' AS kind, metric, month AS at, quantity FROM m
 WHERE org = $1 AND metric IN ($2, $3, $4) AND month >= $5 AND month < $6
UNION ALL SELECT 'd', metric, day, quantity FROM d
 WHERE org = $1 AND metric IN ($2, $3, $4) AND day >= $7 AND day <= $8
UNION ALL SELECT 'h', metric, NULL, SUM(quantity) FROM h
 WHERE org = $1 AND metric IN ($2, $3, $4) AND hour >= $9 AND hour <= $10 GROUP BY metric
"""
WIDE = """
SELECT 'm' AS kind, metric, month AS at, quantity, CASE WHEN month >= $7 THEN days END AS parts FROM mw
 WHERE org = $1 AND metric IN ($2, $3, $4) AND month >= $5 AND month < $6
UNION ALL SELECT 'h', metric, day, quantity, hours FROM dw
 WHERE org = $1 AND metric IN ($2, $3, $4) AND day >= $8 AND day <= $9
"""


def rollup_rows(orgs: list[uuid.UUID], rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    """Both shapes of the same numbers: 400 days of daily values, and the last 30 days' hours."""
    days = [TODAY - timedelta(days=i) for i in range(400)]
    months = sorted({day.replace(day=1) for day in days})
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in ("m", "d", "h", "mw", "dw")}
    for org in orgs:
        for metric in METRICS:
            per_day = {day: rng.random() * 100 for day in days}
            for month in months:
                values = [per_day.get(month + timedelta(days=i), 0.0) if (month + timedelta(days=i)).month
                          == month.month else 0.0 for i in range(31)]
                rows["m"].append((org, metric, month, sum(values)))
                rows["mw"].append((org, metric, month, sum(values), values))
            rows["d"] += [(org, metric, day, per_day[day]) for day in days]
            for day in days[:30]:
                hours = [rng.random() for _ in range(24)]
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                rows["dw"].append((org, metric, day, sum(hours), hours))
                rows["h"] += [(org, metric, midnight + timedelta(hours=i), hours[i]) for i in range(24)]
    return rows


def narrow_args(org: uuid.UUID) -> tuple[Any, ...]:
    """``page_series``' parameters: 12 months, 30 days, the 24 hours ending with the current one."""
    hour = NOW.replace(minute=0)
    return (org, *METRICS, date(2025, 12, 1), date(2026, 12, 1), TODAY - timedelta(days=29), TODAY,
            hour - timedelta(hours=23), hour)


def wide_args(org: uuid.UUID) -> tuple[Any, ...]:
    """The same window in the wide shape: the days of the last two months, the hours of two days."""
    return (org, *METRICS, date(2025, 12, 1), date(2026, 12, 1), date(2026, 10, 1), TODAY - timedelta(days=1),
            TODAY)


async def main(url: str) -> None:
    """Build both shapes, read them alternately, print p50/p95 and the server's execution time."""
    connection = await asyncpg.connect(url)
    await connection.execute(TABLES)
    rng = random.Random(1)
    orgs = [uuid.uuid4() for _ in range(1000)]
    for table, rows in rollup_rows(orgs, rng).items():
        await connection.copy_records_to_table(table, records=rows)
    await connection.execute(INDEXES)
    await connection.execute("VACUUM ANALYZE")
    sample = rng.sample(orgs, 200)
    reads: dict[str, Callable[[uuid.UUID], Any]] = {
        "today's shape (129 rows)": lambda org: connection.fetch(NARROW, *narrow_args(org)),
        "wide rows (42 rows)": lambda org: connection.fetch(WIDE, *wide_args(org)),
        "SELECT 1 (the floor)": lambda org: connection.fetch("SELECT 1"),
    }
    gc.freeze()
    times: dict[str, list[float]] = {name: [] for name in reads}
    for block in range(6):  # the first block warms plans and caches and is not counted
        for name, read in reads.items():
            for org in sample:
                started = time.perf_counter()
                await read(org)
                if block:
                    times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        values.sort()
        p50, p95 = values[len(values) // 2] * 1000, values[int(len(values) * .95)] * 1000
        print(f"{name:26} p50 {p50:.3f} ms  p95 {p95:.3f} ms")
    for name, sql, args in (("today's shape", NARROW, narrow_args), ("wide rows", WIDE, wide_args)):
        plan = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args(sample[1]))
        print(f"{name}: server {plan[-1][0].strip().lower()}")
    await connection.close()


if __name__ == "__main__":
    from core.testing import ThrowawayPostgres

    postgres = ThrowawayPostgres()
    try:
        asyncio.run(main(postgres.start()))
    finally:
        postgres.stop()
