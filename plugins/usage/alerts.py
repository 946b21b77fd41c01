"""Usage alerts: when a metric crosses a threshold the organization picked, tell its managers once per period.

Checked in the ingest transaction for the metrics a batch touched (and by
``portal usage check-alerts`` for every metric, e.g. seats, from cron). The
``usage_alert_fired`` unique key (organization, metric, period, threshold) makes a
threshold fire once per period even under concurrent requests; when one batch
crosses several thresholds at once, one message names the highest. Mail goes
through the outbox (``send_mail``); the in-app notification is a row in the same
transaction. Recipients: owners, admins and billing members.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.db import atomic, load_json, utcnow
from core.events import Target, emit
from core.mail import send_mail
from core.notifications import notify
from core.tables import Membership, User
from plugins.usage.config import DEFAULT_THRESHOLDS, config_of
from plugins.usage.metrics import all_metrics, ingested_metrics, plan_limits
from plugins.usage.periods import current_period
from plugins.usage.tables import UsageAlertFired, UsageAlertSettings

ALERT_ROLES = ("owner", "admin", "billing")
MAX_THRESHOLDS = 10
LOWEST_THRESHOLD = 1  # percent; below it no organization's threshold can be crossed


@dataclass(frozen=True)
class FiredAlert:
    """A threshold that was newly crossed (what the message says)."""

    metric: str
    label: str
    threshold: int
    used: float
    limit: float


async def thresholds_of(org_id: uuid.UUID) -> list[int]:
    """The organization's alert thresholds in percent (default 50, 80, 100)."""
    row = await UsageAlertSettings.select(UsageAlertSettings.thresholds).where(
        UsageAlertSettings.organization == org_id).first()
    if row is None:
        return list(DEFAULT_THRESHOLDS)
    return sorted(int(t) for t in load_json(row["thresholds"]) or [])


def parse_thresholds(text: str) -> tuple[list[int], str | None]:
    """Read "50, 80, 100" from the settings form; returns the values or an error message."""
    parts = [p.strip().rstrip("%") for p in text.replace(";", ",").split(",") if p.strip()]
    values = []
    for part in parts:
        if not part.isdigit() or not LOWEST_THRESHOLD <= int(part) <= 1000:
            return [], f"{part!r} is not a whole percentage between {LOWEST_THRESHOLD} and 1000."
        values.append(int(part))
    if len(set(values)) > MAX_THRESHOLDS:
        return [], f"Pick at most {MAX_THRESHOLDS} thresholds."
    return sorted(set(values)), None


async def save_thresholds(ctx: Any, org: Any, values: list[int]) -> None:
    """Store the organization's thresholds and record who changed them."""
    before = await thresholds_of(org.id)
    async with atomic():
        existing = await UsageAlertSettings.select(UsageAlertSettings.id).where(
            UsageAlertSettings.organization == org.id).first()
        if existing is None:
            await UsageAlertSettings.insert(UsageAlertSettings(
                id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org.id, thresholds=values, updated_at=utcnow()))
        else:
            await UsageAlertSettings.update({UsageAlertSettings.thresholds: values,
                                             UsageAlertSettings.updated_at: utcnow()}).where(
                UsageAlertSettings.id == existing["id"])
        await emit(ctx, "usage.alerts.updated", target=Target("usage_alerts", str(org.id), org.name),
                   before={"thresholds": before}, after={"thresholds": values}, organization_id=org.id)


async def _claim(ctx: Any, org: Any, metric: str, period_start: Any, crossed: Iterable[int], used: float,
                 limit: float, now: datetime) -> list[int]:
    """Insert fired rows for ``crossed`` thresholds; returns those that were not fired before."""
    new = []
    for threshold in crossed:
        rows = await UsageAlertFired.raw(
            "INSERT INTO usage_alert_fired (id, tenant, organization, metric, period_start, threshold, used, "
            "limit_value, fired_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "ON CONFLICT (organization, metric, period_start, threshold) DO NOTHING RETURNING threshold",
            uuid.uuid4(), ctx.tenant.id, org.id, metric, period_start, threshold, used, limit, now)
        if rows:
            new.append(threshold)
    return new


async def _recipients(ctx: Any, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await Membership.select(Membership.user, Membership.role).where(
        Membership.organization == org_id, Membership.tenant == ctx.tenant.id, Membership.role.is_in(ALERT_ROLES))
    if not rows:
        return []
    users = await User.select(User.id, User.email, User.name).where(User.id.is_in([r["user"] for r in rows]))
    return sorted(users, key=lambda u: u["email"])


async def check_alerts(ctx: Any, org: Any, *, metrics: Iterable[str] | None = None, now: datetime | None = None,
                       known_totals: Mapping[tuple[str, date], float] | None = None) -> list[FiredAlert]:
    """Fire the thresholds crossed in the current period (for ``metrics``, or all); idempotent.

    Call inside the transaction that changed the usage: the fired rows, the
    notifications and the queued mail commit or roll back with it. ``known_totals``
    ((metric, month) -> total) spares the ingest writer a query for numbers its upsert
    just returned; the thresholds are read only once some metric reaches 1% of its limit.
    """
    now = now or utcnow()
    ctx.cache["usage.now"] = now
    if metrics is not None:  # after an ingest: only this plugin's metrics the batch touched, if they have limits
        wanted = set(metrics)
        limits = await plan_limits(ctx, org)
        if not any(limits.get(key, 0) > 0 for key in wanted):
            return []
        candidates = [m for m in await ingested_metrics(ctx, org, now=now, known_totals=known_totals)
                      if m.key in wanted]
    else:
        candidates = [value.metric for value in await all_metrics(ctx, org)]
    measured = [(metric, metric.used / metric.limit * 100) for metric in candidates
                if metric.limit is not None and metric.limit > 0]  # unlimited (-1), unset or 0: no percentage
    if not any(percent >= LOWEST_THRESHOLD for _metric, percent in measured):
        return []
    thresholds = await thresholds_of(org.id)
    period = current_period(now, config_of(ctx).timezone)
    fired: list[FiredAlert] = []
    for metric, percent in measured:
        crossed = [t for t in thresholds if percent >= t]
        if not crossed:
            continue
        async with atomic():
            new = await _claim(ctx, org, metric.key, period.start, crossed, metric.used, metric.limit, now)
            if new:
                alert = FiredAlert(metric.key, metric.label, max(new), metric.used, metric.limit)
                await _announce(ctx, org, alert, period.start)
                fired.append(alert)
    return fired


async def _announce(ctx: Any, org: Any, alert: FiredAlert, period_start: Any) -> None:
    link = f"/o/{org.slug}/usage"
    title = f"{alert.label} reached {alert.threshold}% of your plan limit"
    body = f"{org.name} used {alert.used:,.0f} of {alert.limit:,.0f} this period."
    for user in await _recipients(ctx, org.id):
        await notify(ctx.tenant.id, user["id"], title, body=body, link=link, organization_id=org.id)
        await send_mail(
            ctx, user["email"], "usage_alert", f"{org.name}: {title}",
            dedupe_key=f"usage-alert:{org.id}:{alert.metric}:{period_start}:{alert.threshold}:{user['id']}",
            name=user["name"] or user["email"], organization_name=org.name, alert=alert,
            percent=alert.used / alert.limit * 100, link=link, billing_link=f"/o/{org.slug}/billing",
        )
    await emit(ctx, "usage.threshold.crossed", target=Target("usage_metric", alert.metric, alert.label),
               after={"threshold": alert.threshold, "used": alert.used, "limit": alert.limit},
               organization_id=org.id)
