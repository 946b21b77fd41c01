"""Per-key usage counters and "last used", buffered in memory and flushed in batches.

The request path only bumps a dict entry: no database write per request. A background
task (started in ``portal_startup``) flushes every ``FLUSH_INTERVAL`` seconds, on shutdown,
and before a key's detail page is shown. Counts are upserted into ``api_key_usage_day``
(one row per key and UTC day, ``count = count + n``), so several processes add up.
``last_used_at`` is written at most once a minute per key: the process skips keys it
wrote less than a minute ago, and the UPDATE's condition skips keys another process did.
A failed flush puts the counts back, so a database hiccup loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from piccolo.columns.combination import Or

from core.db import atomic
from plugins.apikeys.tables import ApiKey, ApiKeyUsageDay

log = logging.getLogger("portal.apikeys")

FLUSH_INTERVAL = 10.0
LAST_USED_RESOLUTION = timedelta(minutes=1)
UPSERT = (
    "INSERT INTO api_key_usage_day (id, tenant, organization, api_key, day, requests) "
    "VALUES ({}, {}, {}, {}, {}, {}) "
    "ON CONFLICT (api_key, day) DO UPDATE SET requests = api_key_usage_day.requests + excluded.requests"
)


@dataclass
class UsageBuffer:
    """What requests did since the last flush, in this process."""

    counts: dict[tuple[uuid.UUID, date], int] = field(default_factory=dict)
    owners: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    seen: dict[uuid.UUID, tuple[datetime, str]] = field(default_factory=dict)
    written: dict[uuid.UUID, datetime] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self, key_id: uuid.UUID, tenant_id: uuid.UUID, organization_id: uuid.UUID, at: datetime,
               ip: str) -> None:
        """Count one request (hot path: two dict writes)."""
        slot = (key_id, at.date())
        self.counts[slot] = self.counts.get(slot, 0) + 1
        if key_id not in self.owners:
            self.owners[key_id] = (tenant_id, organization_id)
        self.seen[key_id] = (at, ip)

    def pending(self, key_id: uuid.UUID) -> dict[date, int]:
        """Unflushed counts of one key (to show alongside stored ones)."""
        return {day: n for (kid, day), n in self.counts.items() if kid == key_id}

    async def flush(self) -> int:
        """Write buffered counts and last-used times; returns how many counter rows were upserted."""
        async with self.lock:
            counts, self.counts = self.counts, {}
            seen, self.seen = self.seen, {}
            try:
                if counts:
                    async with atomic():
                        for (key_id, day), n in counts.items():
                            tenant_id, org_id = self.owners[key_id]
                            await ApiKeyUsageDay.raw(UPSERT, uuid.uuid4(), tenant_id, org_id, key_id, day, n)
                await self._write_last_used(seen)
            except Exception:
                for slot, n in counts.items():
                    self.counts[slot] = self.counts.get(slot, 0) + n
                for key_id, value in seen.items():
                    self.seen.setdefault(key_id, value)
                raise
            return len(counts)

    async def _write_last_used(self, seen: dict[uuid.UUID, tuple[datetime, str]]) -> None:
        for key_id, (at, ip) in seen.items():
            written = self.written.get(key_id)
            if written is not None and at - written < LAST_USED_RESOLUTION:
                continue
            await ApiKey.update({ApiKey.last_used_at: at, ApiKey.last_used_ip: ip[:64]}).where(
                ApiKey.id == key_id,
                Or(ApiKey.last_used_at.is_null(), ApiKey.last_used_at <= at - LAST_USED_RESOLUTION),
            )
            self.written[key_id] = at
        if len(self.written) > 100_000:
            self.written.clear()


async def flush_forever(buffer: UsageBuffer, interval: float = FLUSH_INTERVAL) -> None:
    """The background flusher: never dies of a failed flush (it logs and tries again)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await buffer.flush()
        except Exception:  # noqa: BLE001 - the counts were put back; try again next round
            log.exception("API key usage flush failed; will retry")
