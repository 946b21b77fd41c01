"""Calendar arithmetic in the tenant's time zone: days, months and the current billing period.

The period is the calendar month in the tenant's usage time zone (the billing
plugin may bill on another anchor; usage pages show calendar months). Hourly
buckets are UTC; daily buckets are local days, so DST changes give 23- or 25-hour days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    """A half-open range of local days ``[start, end)`` and its instants in UTC."""

    start: date
    end: date
    zone: ZoneInfo

    @property
    def starts_at(self) -> datetime:
        """The first instant of the period (UTC)."""
        return local_midnight(self.start, self.zone)

    @property
    def ends_at(self) -> datetime:
        """The first instant after the period (UTC)."""
        return local_midnight(self.end, self.zone)

    def elapsed_fraction(self, now: datetime) -> float:
        """How much of the period lies behind ``now`` (0..1)."""
        total = (self.ends_at - self.starts_at).total_seconds()
        done = (now - self.starts_at).total_seconds()
        return min(1.0, max(0.0, done / total))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``zone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of ``moment`` in ``zone``."""
    return moment.astimezone(zone).date()


def utc_hour(moment: datetime) -> datetime:
    """The UTC hour bucket ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def as_date(value: object) -> date:
    """A ``date`` from what a driver returns for a DATE column (PostgreSQL a date, SQLite ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def month_start(day: date) -> date:
    """First day of ``day``'s month."""
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """The first of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def current_period(now: datetime, zone: ZoneInfo) -> Period:
    """The calendar month in ``zone`` that contains ``now``."""
    start = month_start(local_day(now, zone))
    return Period(start, add_months(start, 1), zone)


def days(start: date, end: date) -> list[date]:
    """Every day of ``[start, end)``."""
    return [start + timedelta(days=i) for i in range((end - start).days)]
