"""Small formatting helpers handed to the team templates (dates a person reads at a glance)."""

from __future__ import annotations

from datetime import datetime

from core.db import as_utc, utcnow


def day(value: datetime | None) -> str:
    """``12 Mar 2026`` (UTC), or an em dash."""
    value = as_utc(value)
    return value.strftime("%d %b %Y").lstrip("0") if value else "—"


def ago(value: datetime | None, never: str = "Never") -> str:
    """``just now``, ``5 minutes ago``, ``3 days ago``; older than a month: the date."""
    value = as_utc(value)
    if value is None:
        return never
    seconds = (utcnow() - value).total_seconds()
    if seconds < 0:
        return in_(value)
    for limit, size, unit in ((60, 1, None), (3600, 60, "minute"), (86400, 3600, "hour"), (86400 * 31, 86400, "day")):
        if seconds < limit:
            if unit is None:
                return "just now"
            count = int(seconds // size)
            return f"{count} {unit}{'s' * (count != 1)} ago"
    return day(value)


def in_(value: datetime | None) -> str:
    """``in 6 days`` / ``in 3 hours`` for a time ahead; ``expired`` when it has passed."""
    value = as_utc(value)
    if value is None:
        return "—"
    seconds = (value - utcnow()).total_seconds()
    if seconds <= 0:
        return "expired"
    if seconds < 3600:
        minutes = max(1, int(seconds // 60))
        return f"in {minutes} minute{'s' * (minutes != 1)}"
    if seconds < 86400:
        hours = int(seconds // 3600)
        return f"in {hours} hour{'s' * (hours != 1)}"
    days = int(seconds // 86400)
    return f"in {days} day{'s' * (days != 1)}"


HELPERS = {"day": day, "ago": ago, "in_": in_}
