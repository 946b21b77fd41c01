"""Group commit: concurrent ingest requests of a process share one database transaction.

Every ingest request hands its validated events to the app's ``GroupWriter`` and waits.
While a transaction is being written and committed, the requests arriving meanwhile
queue up; the next transaction takes all of them (up to ``MAX_EVENTS`` events). Each
request still gets exactly its own answer: its events are inserted with its own
``record_events`` call (idempotency keys are per organization, so requests never
affect each other's results), and it is answered only after the transaction that holds
its events committed. The alert check runs in the same transaction, once per organization
and transaction instead of once per request.

Why: a commit is the expensive part of a small write (on SQLite a new connection for
the transaction and a WAL fsync; on PostgreSQL a round trip and a WAL flush), so 50
single-event requests committing together cost little more than one. If a shared
transaction fails, each of its requests is retried alone, so one bad request cannot fail
the others (all-or-nothing stays per request).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.db import atomic
from plugins.usage.alerts import check_alerts
from plugins.usage.service import NewEvent, record_events

log = logging.getLogger("portal.usage.writer")

MAX_EVENTS = 5000
STATE_KEY = "usage.writer"


@dataclass
class Job:
    """One request's events and the future its handler awaits."""

    ctx: Any
    org: Any
    events: list[NewEvent]
    zone: ZoneInfo
    now: datetime
    future: asyncio.Future[set[str]] = field(repr=False)


class GroupWriter:
    """Collects jobs and writes them in as few transactions as the load allows (one process, one event loop)."""

    def __init__(self) -> None:
        self.pending: list[Job] = []
        self.task: asyncio.Task[None] | None = None
        self.transactions = 0
        self.jobs = 0

    async def write(self, ctx: Any, org: Any, events: list[NewEvent], zone: ZoneInfo, now: datetime) -> set[str]:
        """Store ``events`` for ``org`` (with the alert check) and return the idempotency keys that were new."""
        loop = asyncio.get_running_loop()
        job = Job(ctx, org, events, zone, now, loop.create_future())
        self.pending.append(job)
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain())
        return await asyncio.shield(job.future)  # a client hanging up does not cancel the others' transaction

    def _take(self) -> list[Job]:
        taken, count = [], 0
        while self.pending and (not taken or count + len(self.pending[0].events) <= MAX_EVENTS):
            job = self.pending.pop(0)
            taken.append(job)
            count += len(job.events)
        return taken

    async def _drain(self) -> None:
        while self.pending:
            jobs = self._take()
            try:
                results = await self._commit(jobs)
            except Exception:  # noqa: BLE001 - isolate the failing request: each one alone
                if len(jobs) > 1:
                    log.warning("a shared ingest transaction of %d requests failed; retrying each alone", len(jobs))
                for job in jobs:
                    try:
                        [result] = await self._commit([job])
                    except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
                        if not job.future.done():
                            job.future.set_exception(exc)
                    else:
                        if not job.future.done():
                            job.future.set_result(result)
            else:
                for job, result in zip(jobs, results, strict=True):
                    if not job.future.done():
                        job.future.set_result(result)

    async def _commit(self, jobs: list[Job]) -> list[set[str]]:
        results: list[set[str]] = []
        touched: dict[Any, tuple[Job, set[str]]] = {}
        async with atomic():
            for job in jobs:
                inserted = await record_events(job.ctx.tenant.id, job.org.id, job.events, job.zone, now=job.now)
                results.append(inserted)
                metrics = {e.metric for e in job.events if e.idempotency_key in inserted}
                if metrics:
                    touched.setdefault(job.org.id, (job, set()))[1].update(metrics)
            for first, metrics in touched.values():
                await check_alerts(first.ctx, first.org, metrics=metrics, now=first.now)
        self.transactions += 1
        self.jobs += len(jobs)
        return results


def writer_of(runtime: Any) -> GroupWriter:
    """The app's group writer (made on first use)."""
    writer = runtime.state.get(STATE_KEY)
    if writer is None:
        writer = runtime.state[STATE_KEY] = GroupWriter()
    return writer

