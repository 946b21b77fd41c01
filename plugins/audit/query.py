"""Reading the log: filters, keyset pages (newest first) and batched iteration for exports.

Pages are keyset pages on ``(tenant, [organization,] seq)``: ``seq < cursor ORDER BY seq DESC LIMIT n``
walks the index from the cursor, so page 20,000 costs what page 1 costs (``bench/audit_bench.py``
measures it against OFFSET). Filters are SQL parameters, never spliced into the text.

Filters: ``actor`` (part of the actor's name/email, or its exact id), ``action`` (prefix:
``team.member`` matches ``team.member.removed``), ``target`` (part of its name, or its exact id or type),
``since``/``until`` (dates, inclusive, UTC), ``q`` (free text over action, actor, target, address,
request id and the changed values). Text filters are case-insensitive.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.db import is_sqlite, load_json
from plugins.audit.service import COLUMNS, decode_row
from plugins.audit.tables import AuditEvent

PAGE_SIZE = 50
EXPORT_BATCH = 1000
NO_ORGANIZATION = "none"
"""The tenant view's organization filter value for tenant-level rows (sign-ins, account changes)."""


@dataclass(frozen=True)
class Filters:
    """What the viewer narrows the log to; empty strings mean "any"."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""
    organization: str = ""
    errors: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Filters:
        """Read filters from query parameters; a malformed date becomes an error message, not a 500."""
        errors: dict[str, str] = {}

        def text(name: str) -> str:
            return str(params.get(name) or "").strip()[:200]

        def day(name: str) -> date | None:
            raw = text(name)
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                errors[name] = "Enter a date like 2025-01-31."
                return None

        since, until = day("since"), day("until")
        if since and until and since > until:
            errors["until"] = "The end date is before the start date."
        return cls(text("actor"), text("action"), text("target"), since, until, text("q"), text("organization"),
                   errors)

    def as_params(self) -> dict[str, str]:
        """The query parameters that reproduce these filters (links, export URLs)."""
        values = {"actor": self.actor, "action": self.action, "target": self.target, "q": self.q,
                  "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else "", "organization": self.organization}
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        """Whether any filter narrows the view (the empty state says so)."""
        return bool(self.as_params())


@dataclass(frozen=True)
class Scope:
    """Whose rows: a tenant, and one organization of it (the org view) or all of them (tenant admins)."""

    tenant_id: uuid.UUID
    organization_id: uuid.UUID | None = None


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where_clause(scope: Scope, filters: Filters) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters for a scope and filters (``{}`` placeholders, Piccolo raw style)."""
    like = "LIKE" if is_sqlite() else "ILIKE"
    esc = "ESCAPE '\\'"
    text = (lambda col: col) if is_sqlite() else (lambda col: f"{col}::text")
    conditions, args = ["tenant = {}"], [scope.tenant_id]
    if scope.organization_id is not None:
        conditions.append("organization = {}")
        args.append(scope.organization_id)
    elif filters.organization == NO_ORGANIZATION:
        conditions.append("organization IS NULL")
    elif filters.organization:
        try:
            conditions.append("organization = {}")
            args.append(uuid.UUID(filters.organization))
        except ValueError:
            conditions[-1] = "1 = 0"
    if filters.actor:
        conditions.append(f"(actor_display {like} {{}} {esc} OR actor_id = {{}})")
        args += [_like(filters.actor), filters.actor]
    if filters.action:
        conditions.append(f"action {like} {{}} {esc}")
        args.append(_like(filters.action)[1:])
    if filters.target:
        conditions.append(f"(target_display {like} {{}} {esc} OR target_id = {{}} OR target_type = {{}})")
        args += [_like(filters.target), filters.target, filters.target]
    if filters.since:
        conditions.append('"time" >= {}')
        args.append(datetime.combine(filters.since, time.min, UTC))
    if filters.until:
        conditions.append('"time" < {}')
        args.append(datetime.combine(filters.until + timedelta(days=1), time.min, UTC))
    if filters.q:
        fields = ["action", "actor_display", "target_display", "target_id", "ip", "request_id",
                  text('"before"'), text('"after"')]
        conditions.append("(" + " OR ".join(f"{f} {like} {{}} {esc}" for f in fields) + ")")
        args += [_like(filters.q)] * len(fields)
    return conditions, args


@dataclass(frozen=True)
class Page:
    """One page of rows, newest first, with the cursors of the neighbouring pages."""

    rows: list[dict[str, Any]]
    older: int | None
    newer: int | None


async def page(scope: Scope, filters: Filters, *, before: int | None = None, after: int | None = None,
               limit: int = PAGE_SIZE) -> Page:
    """Rows older than ``before`` (the next page), or newer than ``after`` (the previous one), newest first."""
    conditions, args = where_clause(scope, filters)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    if after is not None:
        conditions.append("seq > {}")
        args.append(after)
        order = "ASC"
    else:
        if before is not None:
            conditions.append("seq < {}")
            args.append(before)
        order = "DESC"
    sql = (f"SELECT {columns} FROM audit_event WHERE {' AND '.join(conditions)} "
           f"ORDER BY seq {order} LIMIT {int(limit) + 1}")
    rows = [decode_row(r) for r in await AuditEvent.raw(sql, *args)]
    more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
        older = rows[-1]["seq"] if rows else None
        newer = rows[0]["seq"] if rows and more else None
    else:
        older = rows[-1]["seq"] if rows and more else None
        newer = rows[0]["seq"] if rows and before is not None else None
    return Page([with_json(r) for r in rows], older, newer)


async def offset_page(scope: Scope, filters: Filters, *, offset: int, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """The naive OFFSET query: only the benchmark uses it, as the baseline keyset pages beat."""
    conditions, args = where_clause(scope, filters)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    sql = (f"SELECT {columns} FROM audit_event WHERE {' AND '.join(conditions)} "
           f"ORDER BY seq DESC LIMIT {int(limit)} OFFSET {int(offset)}")
    return [decode_row(r) for r in await AuditEvent.raw(sql, *args)]


async def iterate(scope: Scope, filters: Filters, *, batch: int = EXPORT_BATCH) -> AsyncIterator[dict[str, Any]]:
    """Every matching row, newest first, ``batch`` at a time: exports never hold the whole log."""
    cursor: int | None = None
    while True:
        result = await page(scope, filters, before=cursor, limit=batch)
        for row in result.rows:
            yield row
        if result.older is None:
            return
        cursor = result.older


def with_json(row: dict[str, Any]) -> dict[str, Any]:
    """Decode the JSON columns for display and export."""
    return {**row, "before": load_json(row["before"]), "after": load_json(row["after"]),
            "data": load_json(row["data"]) or {}}


def diff(row: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, before, after)`` for every field an event changed, in a stable order."""
    before, after = row.get("before") or {}, row.get("after") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [("value", before or None, after or None)]
    keys = list(dict.fromkeys([*before, *after]))
    return [(k, before.get(k), after.get(k)) for k in keys]


EXPORT_FIELDS = ("seq", "time", "organization", "action", "outcome", "actor_type", "actor_id", "actor_display",
                 "actor_auth_method", "target_type", "target_id", "target_display", "before", "after", "data",
                 "ip", "user_agent", "request_id", "id", "prev_hash", "hash")


def export_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as exported: plain JSON values, time in ISO 8601 UTC."""
    record = {name: row.get(name) for name in EXPORT_FIELDS}
    record["time"] = row["time"].isoformat()
    return record


def jsonl_line(row: dict[str, Any]) -> str:
    """One JSON Lines record."""
    return json.dumps(export_record(row), ensure_ascii=False, separators=(",", ":"), default=str) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text  # spreadsheets must not execute a cell (CSV injection)
    return text


def csv_line(values: list[Any]) -> str:
    """One CSV record (RFC 4180 quoting)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def csv_header() -> str:
    """The CSV header row."""
    return csv_line(list(EXPORT_FIELDS))


def csv_row(row: dict[str, Any]) -> str:
    """One exported row as CSV."""
    record = export_record(row)
    return csv_line([_cell(record[name]) if name not in ("seq",) else record[name] for name in EXPORT_FIELDS])


def narrowed(filters: Filters, **changes: Any) -> Filters:
    """The same filters with some replaced (links from a row: "more by this actor")."""
    return replace(filters, **changes)
