"""Demo usage: twelve months of believable history for every configured metric of a demo organization.

One event per metric and local day at noon (so the day buckets are right in any
time zone), written through the same ``record_events`` as the API, with keys
``demo:<metric>:<day>`` so seeding twice adds nothing. The series grows over the
year, dips on weekends and carries deterministic noise seeded by the organization id.
Where the organization's plan limits a metric (``portal_plan_limits``), a month's use
lands between a third of the limit and just past the warning line, so the demo shows
healthy, warning and critical bars rather than thousands of percent.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, time, timedelta
from typing import Any

from core.db import utcnow
from plugins.usage.config import config_of
from plugins.usage.periods import add_months, local_day
from plugins.usage.service import NewEvent, record_events

BASE_PER_DAY = {"api_calls": 2400.0, "transfer_gb": 40.0, "compute_minutes": 310.0, "emails_sent": 900.0}
DAY_FACTOR_PER_MONTH = 26.0  # a month of days at full growth, weekends dipping: sum of the daily factors

async def seed_usage(ctx: Any, org: Any, *, now: datetime | None = None) -> int:
    """Write the demo history for ``org``; returns how many events were new."""
    config = config_of(ctx)
    if not config.metrics:
        return 0
    now = now or utcnow()
    zone = config.timezone
    today = local_day(now, zone)
    first = add_months(today.replace(day=1), -11)
    rng = random.Random(str(org["id"]))
    scale = rng.uniform(0.6, 1.4)
    limits = await ctx.runtime.plugins.first("portal_plan_limits", tenant=ctx.tenant, ctx=ctx, org=org) or {}
    events = []
    total_days = (today - first).days + 1
    for metric in config.metrics.values():
        base = BASE_PER_DAY.get(metric.key, 100.0) * scale
        limit = limits.get(metric.key)
        if limit is not None and limit > 0:
            base = limit * rng.uniform(0.35, 0.97) / DAY_FACTOR_PER_MONTH
        for offset in range(total_days):
            day = first + timedelta(days=offset)
            growth = 0.55 + 0.45 * offset / max(1, total_days - 1)
            weekly = 0.6 if day.weekday() >= 5 else 1.0
            seasonal = 1 + 0.08 * math.sin(offset / 58)
            value = base * growth * weekly * seasonal * rng.uniform(0.85, 1.15)
            moment = datetime.combine(day, time(12), tzinfo=zone)
            if day == today and moment > now:
                moment = now - timedelta(minutes=1)
            events.append(NewEvent(metric.key, round(value, 2 if value < 100 else 0), moment,
                                   f"demo:{metric.key}:{day.isoformat()}", {"source": "demo"}))
    inserted = 0
    for start in range(0, len(events), 500):
        inserted += len(await record_events(ctx.tenant.id, org["id"], events[start:start + 500], zone, now=now))
    return inserted
