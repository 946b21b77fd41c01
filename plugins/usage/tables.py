"""Tables of the usage plugin: raw events, hourly and daily rollups, alert settings and fired alerts.

Raw events are the record of what a customer's systems reported; every page reads
the rollups instead. Hourly buckets are UTC hours; daily buckets are calendar days
in the tenant's usage time zone (``[settings.usage] timezone``), so a month total is
an exact sum of its days. Composite unique keys (one event per idempotency key per
organization, one bucket per organization, metric and hour/day) are created in the
second migration.
"""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Date, DoublePrecision, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.table import Table

from core.tables import Organization, Tenant


class UsageEvent(Table, tablename="usage_event"):
    """One reported event, as received (quantity, when it happened, its idempotency key)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    metric = Varchar(length=64)
    quantity = DoublePrecision()
    occurred_at = Timestamptz()
    idempotency_key = Varchar(length=200)
    dimensions = JSON(default={})
    received_at = Timestamptz()


class UsageHourly(Table, tablename="usage_hourly"):
    """Sum of an organization's events of one metric in one UTC hour.

    ``reported`` is how much of ``quantity`` was already queued for the payment
    provider's meter (``meters``): a late event raises ``quantity`` above it again.
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    metric = Varchar(length=64)
    hour = Timestamptz()
    quantity = DoublePrecision(default=0)
    events = Integer(default=0)
    reported = DoublePrecision(default=0)


class UsageDaily(Table, tablename="usage_daily"):
    """Sum of an organization's events of one metric on one day of the tenant's time zone."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    metric = Varchar(length=64)
    day = Date()
    quantity = DoublePrecision(default=0)
    events = Integer(default=0)


class UsageMonthly(Table, tablename="usage_monthly"):
    """Sum of an organization's events of one metric in one calendar month of the tenant's time zone.

    ``month`` is the month's first day. Kept beside the daily buckets so the twelve-month
    chart and the period total read 36 rows instead of a year of days.
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    metric = Varchar(length=64)
    month = Date()
    quantity = DoublePrecision(default=0)
    events = Integer(default=0)


class UsageAlertSettings(Table, tablename="usage_alert_settings"):
    """The thresholds (percent of the limit) an organization wants to hear about."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, unique=True)
    thresholds = JSON(default=[50, 80, 100])
    updated_at = Timestamptz()


class UsageAlertFired(Table, tablename="usage_alert_fired"):
    """A threshold already announced for a metric in a period: the unique key makes it fire once."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    metric = Varchar(length=64)
    period_start = Date()
    threshold = Integer()
    used = DoublePrecision(default=0)
    limit_value = DoublePrecision(default=0)
    fired_at = Timestamptz()


USAGE_TABLES: list[type[Table]] = [UsageEvent, UsageHourly, UsageDaily, UsageMonthly, UsageAlertSettings,
                                   UsageAlertFired]
