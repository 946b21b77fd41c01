"""Ingest one request: validate every item, then store the batch, roll it up and check alerts, or store nothing.

Returns plain structs and a status code; the route only moves bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.db import utcnow
from plugins.usage.config import config_of
from plugins.usage.metrics import foreign_metric_owners
from plugins.usage.service import NewEvent
from plugins.usage.validation import (
    BodyProblem,
    IngestError,
    IngestResponse,
    ItemResult,
    UsageEventIn,
    check_item,
    decode_valid,
    split_body,
)
from plugins.usage.writer import writer_of


def _key_of(item: Any) -> str | None:
    key = item.get("idempotency_key") if isinstance(item, dict) else None
    return key if isinstance(key, str) else None


async def ingest(ctx: Any, raw: bytes, *, now: datetime | None = None) -> tuple[int, IngestResponse | IngestError]:
    """Handle an ingest body for ``ctx.organization``: 200 with per-item results, or a 4xx with nothing written."""
    now = now or utcnow()
    config = config_of(ctx)
    fast = decode_valid(raw, config, now)
    if fast is not None:
        return 200, await _store(ctx, fast, [ItemResult(i, e.idempotency_key, "valid") for i, e in enumerate(fast)],
                                 config, now)
    try:
        items, _single = split_body(raw)
    except BodyProblem as problem:
        return 400 if "JSON" in problem.detail else 422, IngestError("invalid_body", problem.detail)
    foreign: dict[str, str] | None = None
    if any(isinstance(i, dict) and i.get("metric") not in config.metrics for i in items):
        foreign = await foreign_metric_owners(ctx, ctx.organization)
    valid: list[UsageEventIn] = []
    results: list[ItemResult] = []
    for index, item in enumerate(items):
        event, errors = check_item(item, config, now, foreign)
        if event is None:
            results.append(ItemResult(index, _key_of(item), "invalid", errors))
            continue
        valid.append(event)
        results.append(ItemResult(index, event.idempotency_key, "valid"))
    bad = [r for r in results if r.status == "invalid"]
    if bad:
        detail = (f"{len(bad)} of {len(items)} events are invalid; nothing was recorded. "
                  "Fix them and send the batch again.")
        return 422, IngestError("validation_failed", detail, bad)
    return 200, await _store(ctx, valid, results, config, now)


async def _store(ctx: Any, valid: list[UsageEventIn], results: list[ItemResult], config: Any,
                 now: datetime) -> IngestResponse:
    """Write the events (group commit, with the alert check) and mark each item accepted or duplicate."""
    events = [NewEvent(e.metric, e.quantity, e.timestamp, e.idempotency_key, dict(e.dimensions)) for e in valid]
    inserted = await writer_of(ctx.runtime).write(ctx, ctx.organization, events, config.timezone, now)
    counted: set[str] = set()
    for result in results:
        key = result.idempotency_key or ""
        result.status = "accepted" if key in inserted and key not in counted else "duplicate"
        counted.add(key)
    accepted = sum(r.status == "accepted" for r in results)
    return IngestResponse(accepted, len(results) - accepted, results)
