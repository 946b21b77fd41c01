"""The process's database engine, chosen by ``PORTAL_DATABASE_URL``.

Piccolo finds its engine through a ``piccolo_conf`` module; ours
(``core.piccolo_conf``) asks this module, so the CLI, the app and Piccolo's own
migration commands all talk to the same database. A process has one database;
what must not leak between apps (plugins, settings, caches) lives on the app.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType, dict_factory
from piccolo.table import TABLE_REGISTRY

os.environ.setdefault("PICCOLO_CONF", "core.piccolo_conf")

_engine: Engine | None = None
_engine_url: str | None = None


class PooledSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLite engine, keeping a few connections open for queries outside a transaction.

    The stock engine opens a new connection (and aiosqlite thread) for every such
    query, which costs a millisecond or more each and dominated page and ingest
    times. Connections are kept per event loop (aiosqlite binds them to one) in
    autocommit mode; transactions still get a connection of their own.
    """

    pool_size = 4

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[asyncio.AbstractEventLoop, tuple[asyncio.Queue[aiosqlite.Connection],
                                                          list[aiosqlite.Connection]]] = {}

    async def _acquire(self) -> tuple[asyncio.Queue[aiosqlite.Connection], aiosqlite.Connection]:
        loop = asyncio.get_running_loop()
        idle, opened = self._pools.setdefault(loop, (asyncio.Queue(), []))
        if idle.empty() and len(opened) < self.pool_size:
            connection = await aiosqlite.connect(**self.connection_kwargs)
            await connection.execute("PRAGMA foreign_keys = 1")
            connection.row_factory = dict_factory
            opened.append(connection)
            return idle, connection
        return idle, await idle.get()

    async def _run_in_new_connection(self, query: str, args: list[Any] | None = None,
                                     query_type: str = "generic", table: Any = None) -> Any:
        return await self.fetch(query, args or [])

    async def fetch(self, statement: str, args: list[Any]) -> list[dict[str, Any]]:
        """Rows of ``statement`` from a kept connection, in one hop to its thread (Piccolo's queries too)."""
        idle, connection = await self._acquire()
        try:
            return list(await connection.execute_fetchall(statement, args))
        finally:
            idle.put_nowait(connection)

    async def close_connections(self) -> None:
        """Close this event loop's connections (shutdown, end of a CLI command)."""
        idle, opened = self._pools.pop(asyncio.get_running_loop(), (None, []))
        for connection in opened:
            await connection.close()


def engine_for_url(url: str) -> Engine:
    """Build (but do not connect) the Piccolo engine a database URL names."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return PooledSQLiteEngine(path=str(path), timeout=30)
    return PostgresEngine(config={"dsn": url})


def use_database(url: str) -> Engine:
    """Point every table at the database ``url`` (idempotent for the same URL)."""
    global _engine, _engine_url
    if _engine is None or url != _engine_url:
        _engine = engine_for_url(url)
        _engine_url = url
    for table in TABLE_REGISTRY:
        table._meta.db = _engine
    return _engine


def engine() -> Engine:
    """The current engine; configured from the environment on first use (CLI, Piccolo)."""
    if _engine is None:
        from core.settings import load_settings

        use_database(load_settings().database_url)
    assert _engine is not None
    return _engine


def is_sqlite() -> bool:
    """SQLite and PostgreSQL differ in transaction modes and a few SQL details."""
    return isinstance(engine(), SQLiteEngine)


async def _keep_session(connection: Any) -> None:
    """Pool ``reset``: nothing beyond what asyncpg always does (roll back an open transaction).

    asyncpg's default also runs ``RESET ALL``, ``UNLISTEN *``, ``CLOSE ALL`` and an
    advisory unlock on every release: a round trip (about 0.2 ms) after each query run
    outside a transaction. The portal leaves no session state to undo: its ``SET LOCAL``
    and advisory locks are transaction-scoped, and it never listens or holds cursors.
    """


async def connect() -> None:
    """Open what the engine needs for serving: a pool on PostgreSQL, WAL mode on SQLite."""
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.start_connection_pool(min_size=1, max_size=10, reset=_keep_session)
    else:
        await db.run_ddl("PRAGMA journal_mode=WAL")


async def disconnect() -> None:
    """Close the pool on shutdown."""
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.close_connection_pool()
    elif isinstance(db, PooledSQLiteEngine):
        await db.close_connections()
        _close_inline_reader()


@functools.lru_cache(maxsize=512)
def driver_sql(sql: str, postgres: bool) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own style (``$1, $2, ...`` for asyncpg)."""
    if not postgres:
        return sql
    parts = sql.split("?")
    return "".join(f"{part}${index}" if index < len(parts) else part for index, part in enumerate(parts, 1))


async def fetch(sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Run ``sql`` (``?`` placeholders) with the driver directly; rows allow ``row["column"]``.

    For hot paths where Piccolo's query building costs more than the query (usage
    ingest, the usage page). Inside ``atomic()`` it runs on the transaction's
    connection, so it sees the transaction's own writes.
    """
    db = engine()
    postgres = isinstance(db, PostgresEngine)
    statement = driver_sql(sql, postgres)
    transaction = db.current_transaction.get()
    if transaction is not None:
        if postgres:
            return await transaction.connection.fetch(statement, *args)
        async with transaction.connection.execute(statement, list(args)) as cursor:
            return list(await cursor.fetchall())
    if postgres:
        if db.pool is not None:
            return await db.pool.fetch(statement, *args)
        connection = await db.get_new_connection()
        try:
            return await connection.fetch(statement, *args)
        finally:
            await connection.close()
    assert isinstance(db, PooledSQLiteEngine)
    return await db.fetch(statement, list(args))


async def fetch_small(sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """``fetch`` for a read that walks indexes for at most a few hundred rows (a page's numbers).

    On SQLite, outside a transaction, it runs inline on this thread's own read-only
    connection instead of aiosqlite's worker thread: the hand-off to that thread and
    back costs about 0.3 ms on a busy 2-core machine, as much as such a query
    (``bench/usage_bench.py``). A read that may scan must use ``fetch``: inline, it
    would stall every request of the process.
    """
    db = engine()
    if isinstance(db, PostgresEngine) or db.current_transaction.get() is not None:
        return await fetch(sql, args)
    return _inline_reader(db).execute(sql, list(args)).fetchall()


_readers = threading.local()


def _inline_reader(db: SQLiteEngine) -> sqlite3.Connection:
    connection: sqlite3.Connection | None = getattr(_readers, "connection", None)
    if connection is None or getattr(_readers, "engine", None) is not db:
        if connection is not None:
            connection.close()
        # WAL readers do not wait for the writer; a 1 s busy timeout bounds the rare wait (recovery) on the loop
        connection = sqlite3.connect(**{**db.connection_kwargs, "timeout": 1.0})
        connection.execute("PRAGMA query_only = 1")
        # its reads are the hot pages of every signed-in request: a 64 MiB cache (grown on use) instead of 2 MiB,
        # and pages mapped rather than copied by a syscall each; p95 of the usage page read 0.55 -> 0.26 ms
        connection.execute("PRAGMA cache_size = -65536")
        connection.execute("PRAGMA mmap_size = 1073741824")
        connection.row_factory = sqlite3.Row
        _readers.connection, _readers.engine = connection, db
    return connection


def _close_inline_reader() -> None:
    connection = getattr(_readers, "connection", None)
    if connection is not None:
        connection.close()
        _readers.connection = _readers.engine = None


@asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    """One database transaction for a change and everything it records (events, audit, outbox).

    Nested calls join the outer transaction. On SQLite the transaction takes the
    write lock up front (IMMEDIATE) so two writers queue instead of failing.
    """
    db = engine()
    if db.current_transaction.get() is not None:
        yield
        return
    if isinstance(db, SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with db.transaction():
            yield


def new_id() -> uuid.UUID:
    """Random, non-sequential ids for every row (no guessable counters in URLs)."""
    return uuid.uuid4()


def utcnow() -> datetime:
    """Timezone-aware now; every stored time is UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; treat them as the UTC they were stored as."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_json(value: Any) -> Any:
    """JSON columns come back as text on some engines; give callers Python values."""
    import json

    if isinstance(value, str | bytes):
        return json.loads(value) if value else None
    return value
