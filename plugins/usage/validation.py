"""The ingest API's body: msgspec Structs plus the rules msgspec cannot know (metric catalogue, time window).

A body is one event object or ``{"events": [...]}`` with 1..100 events. Every
item is checked on its own so the response can say what is wrong with each;
if any item is wrong, nothing of the batch is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from plugins.usage.config import UsageConfig

MAX_BATCH = 100
MAX_DIMENSIONS = 20
MAX_QUANTITY = 1e15

Dimensions = dict[Annotated[str, Meta(min_length=1, max_length=64)],
                  Annotated[str, Meta(max_length=200)] | int | float | bool]


class UsageEventIn(msgspec.Struct, forbid_unknown_fields=True):
    """One usage event as a customer's system reports it."""

    metric: Annotated[str, Meta(min_length=1, max_length=64, description="A metric key of this portal")]
    quantity: Annotated[float, Meta(ge=0, description="How much was used (a non-negative number)")]
    timestamp: Annotated[datetime, Meta(description="When it was used, RFC 3339 with a UTC offset")]
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200,
                                         description="Unique per event; a retry with the same key counts once")]
    dimensions: Dimensions = {}


class UsageBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 events, written all together or not at all."""

    events: list[UsageEventIn]


class ItemResult(msgspec.Struct):
    """What happened to one event of a request."""

    index: int
    idempotency_key: str | None
    status: str
    errors: list[str] = []


class IngestResponse(msgspec.Struct):
    """The answer to an ingest request: counts and one result per event, in request order."""

    accepted: int
    duplicates: int
    items: list[ItemResult]


class IngestError(msgspec.Struct):
    """A rejected request: a message for people, and the items that were wrong (nothing was written)."""

    error: str
    detail: str
    items: list[ItemResult] = []


@dataclass(frozen=True)
class BodyProblem(Exception):
    """The body as a whole is unusable (not JSON, not an object, empty or too large a batch)."""

    detail: str


_PATH = re.compile(r" - at `\$\.?([A-Za-z0-9_]*)")


def split_body(raw: bytes) -> tuple[list[Any], bool]:
    """The body's events as plain values, and whether it was a single event (not a batch)."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BodyProblem(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BodyProblem('Send one event object, or {"events": [...]} with up to 100 events.')
    if "events" not in body:
        return [body], True
    if set(body) != {"events"} or not isinstance(body["events"], list):
        raise BodyProblem('A batch is {"events": [...]} and nothing else.')
    events = body["events"]
    if not events:
        raise BodyProblem("The batch is empty: send between 1 and 100 events.")
    if len(events) > MAX_BATCH:
        raise BodyProblem(f"A batch holds at most {MAX_BATCH} events; this one has {len(events)}. "
                          "Split it into several requests.")
    return events, False


def _friendly(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    match = _PATH.search(message)
    field = match.group(1) if match else ""
    text = _PATH.split(message)[0]
    if field == "quantity" and "Expected `float`" in text and ">=" not in text:
        return "quantity: must be a number"
    if field == "quantity" and ">=" in text:
        return "quantity: must not be negative"
    if field == "timestamp":
        return "timestamp: must be an RFC 3339 date-time with a UTC offset, e.g. 2024-05-01T12:00:00Z"
    if "missing required field" in text:
        missing = text.split("`")[1] if "`" in text else "a field"
        return f"{missing}: is required"
    if "unknown field" in text:
        return f"{text.split('`')[1] if '`' in text else 'field'}: is not a field of a usage event"
    return f"{field}: {text}" if field else text


def check_rules(event: UsageEventIn, config: UsageConfig, now: datetime,
                foreign_metrics: dict[str, str] | None = None) -> list[str]:
    """What msgspec cannot know: the metric catalogue, finite quantities, the allowed time window."""
    errors = []
    if event.metric not in config.metrics:
        owner = (foreign_metrics or {}).get(event.metric)
        if owner:
            errors.append(f"metric: {event.metric!r} is measured by the portal itself ({owner}) "
                          "and cannot be reported")
        else:
            known = ", ".join(sorted(config.metrics)) or "none are configured"
            errors.append(f"metric: unknown metric {event.metric!r} (known: {known})")
    if not math.isfinite(event.quantity) or event.quantity > MAX_QUANTITY:
        errors.append(f"quantity: must be a finite number up to {MAX_QUANTITY:.0e}")
    if event.timestamp.tzinfo is None:
        errors.append("timestamp: needs a UTC offset, e.g. 2024-05-01T12:00:00Z")
    else:
        if event.timestamp > now + timedelta(minutes=config.max_future_minutes):
            errors.append(f"timestamp: is in the future (more than {config.max_future_minutes} minutes ahead "
                          "of the server clock)")
        if event.timestamp < now - timedelta(days=config.backfill_days):
            errors.append(f"timestamp: is older than the back-fill window of {config.backfill_days} days")
    if len(event.dimensions) > MAX_DIMENSIONS:
        errors.append(f"dimensions: at most {MAX_DIMENSIONS} keys")
    return errors


def check_item(item: Any, config: UsageConfig, now: datetime,
               foreign_metrics: dict[str, str] | None = None) -> tuple[UsageEventIn | None, list[str]]:
    """Validate one event: its shape (msgspec), then the catalogue and the allowed time window."""
    try:
        event = msgspec.convert(item, UsageEventIn)
    except msgspec.ValidationError as exc:
        return None, [_friendly(exc)]
    errors = check_rules(event, config, now, foreign_metrics)
    return (event if not errors else None), errors


_BATCH = msgspec.json.Decoder(UsageBatchIn)
_SINGLE = msgspec.json.Decoder(UsageEventIn)


def decode_valid(raw: bytes, config: UsageConfig, now: datetime) -> list[UsageEventIn] | None:
    """The hot path: decode straight into typed events; None when anything is off (then ``split_body`` and
    ``check_item`` find and explain every problem, item by item)."""
    try:
        events = _BATCH.decode(raw).events if b'"events"' in raw else [_SINGLE.decode(raw)]
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not 1 <= len(events) <= MAX_BATCH:
        return None
    for event in events:
        if check_rules(event, config, now):
            return None
    return events
