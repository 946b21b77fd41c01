"""CSV export of daily usage per metric for any range, streamed month by month from the daily rollups.

Columns: ``date,metric,quantity,events``. Every day of the range appears for each
metric (zero when nothing was used), so spreadsheets can chart it as it is.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import date

from plugins.usage.periods import add_months, days
from plugins.usage.tables import UsageDaily

MAX_EXPORT_DAYS = 3660


def _line(*values: object) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


async def csv_rows(org_id: uuid.UUID, start: date, end: date, metrics: list[str]) -> AsyncIterator[str]:
    """Yield the CSV: a header, then per month of ``[start, end]`` every day × metric (inclusive end)."""
    yield _line("date", "metric", "quantity", "events")
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(add_months(chunk_start, 1), date.fromordinal(end.toordinal() + 1))
        rows = await UsageDaily.select(UsageDaily.day, UsageDaily.metric, UsageDaily.quantity,
                                       UsageDaily.events).where(
            UsageDaily.organization == org_id, UsageDaily.day >= chunk_start, UsageDaily.day < chunk_end,
            UsageDaily.metric.is_in(metrics))
        found = {(str(r["day"])[:10], r["metric"]): r for r in rows}
        out = []
        for day in days(chunk_start, chunk_end):
            for metric in metrics:
                row = found.get((day.isoformat(), metric))
                out.append(_line(day.isoformat(), metric, _fmt(row["quantity"]) if row else "0",
                                 row["events"] if row else 0))
        yield "".join(out)
        chunk_start = chunk_end
