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
single-event requests committing together cost little more than one. All requests of a
transaction are written with one INSERT per table (``service.record_batches``), not one
per request. On SQLite the writer keeps its own connection open while requests keep
coming (closed after a second without work, and at shutdown) instead of opening one per
transaction as Piccolo does. If a shared transaction fails, each of its requests is
retried alone, so one bad request cannot fail the others (all-or-nothing stays per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
from piccolo.engine.sqlite import SQLiteTransaction, TransactionType, dict_factory

from core.db import atomic, engine, is_sqlite
from plugins.usage.alerts import check_alerts
from plugins.usage.service import Batch, NewEvent, record_batches

log = logging.getLogger("portal.usage.writer")

MAX_EVENTS = 5000
IDLE_SECONDS = 1.0
CACHE_KIB = 65536
STATE_KEY = "usage.writer"


class KeptConnectionTransaction(SQLiteTransaction):
    """Piccolo's SQLite transaction on a connection the writer keeps (Piccolo would open and close one)."""

    def __init__(self, db: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(db, TransactionType.immediate)
        self.kept = connection

    async def get_connection(self) -> aiosqlite.Connection:
        """The writer's open connection."""
        return self.kept

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        finally:
            self.engine.current_transaction.reset(self.context)
        return exception is None


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
        self.wake = asyncio.Event()
        self.connection: aiosqlite.Connection | None = None
        self.transactions = 0
        self.jobs = 0

    async def write(self, ctx: Any, org: Any, events: list[NewEvent], zone: ZoneInfo, now: datetime) -> set[str]:
        """Store ``events`` for ``org`` (with the alert check) and return the idempotency keys that were new."""
        loop = asyncio.get_running_loop()
        job = Job(ctx, org, events, zone, now, loop.create_future())
        self.pending.append(job)
        self.wake.set()
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
        while True:
            if not self.pending:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)
                except TimeoutError:
                    if self.pending:
                        continue
                    self.task = None  # the next request starts a new drain (and connection)
                    await self.close()
                    return
            await self._write_pending()

    async def stop(self) -> None:
        """Shutdown: stop draining and close the connection."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()

    async def close(self) -> None:
        """Close the kept SQLite connection (idle, shutdown)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _transaction(self) -> Any:
        if not is_sqlite():
            return atomic()
        if self.connection is None:
            db = engine()
            self.connection = await aiosqlite.connect(**db.connection_kwargs)
            self.connection.row_factory = dict_factory
            await self.connection.execute("PRAGMA foreign_keys = 1")
            await self.connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # index pages stay warm
        return KeptConnectionTransaction(engine(), self.connection)

    async def _write_pending(self) -> None:
        while self.pending:
            jobs = self._take()
            try:
                results = await self._commit(jobs)
            except Exception:  # noqa: BLE001 - isolate the failing request: each one alone
                if len(jobs) > 1:
                    log.warning("a shared ingest transaction of %d requests failed; retrying each alone", len(jobs),
                                exc_info=True)
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
        touched: dict[Any, tuple[Job, set[str]]] = {}
        try:
            transaction = await self._transaction()
            async with transaction:
                recorded = await record_batches(
                    [Batch(job.ctx.tenant.id, job.org.id, job.events, job.zone) for job in jobs], now=jobs[0].now)
                results = recorded.inserted
                for job, inserted in zip(jobs, results, strict=True):
                    metrics = {e.metric for e in job.events if e.idempotency_key in inserted}
                    if metrics:
                        touched.setdefault(job.org.id, (job, set()))[1].update(metrics)
                for first, metrics in touched.values():
                    await check_alerts(first.ctx, first.org, metrics=metrics, now=first.now,
                                       known_totals=recorded.totals_of(first.org.id))
        except Exception:
            await self.close()  # a broken connection is not kept
            raise
        self.transactions += 1
        self.jobs += len(jobs)
        return results


def writer_of(runtime: Any) -> GroupWriter:
    """The app's group writer (made on first use)."""
    writer = runtime.state.get(STATE_KEY)
    if writer is None:
        writer = runtime.state[STATE_KEY] = GroupWriter()
    return writer

