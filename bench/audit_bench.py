"""Audit log at scale: keyset pages vs OFFSET on 1,000,000 rows, and the memory an export stream holds.

    .venv/bin/python bench/audit_bench.py [--rows 1000000] [--export-rows 100000]

Seeds a temporary SQLite database (the real migrations, then bulk ``executemany`` batches; the hash
columns get a cheap stand-in chain, since the viewer never recomputes hashes and a million real
``row_hash`` calls would dominate the run) and measures, in the same run:

- the viewer's query (keyset on ``(tenant, organization, seq)``) for the first page and for a page
  deep in the log, against the naive ``LIMIT/OFFSET`` query for the same pages;
- exporting ``--export-rows`` rows as CSV through the streaming generator the export endpoint uses,
  against loading the same rows in one query first: peak Python memory (tracemalloc) of each.

Prints medians and ratios; nothing is asserted (times depend on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(path: Path, rows: int, tenant_id: uuid.UUID, orgs: list[uuid.UUID]) -> None:
    """Bulk-insert ``rows`` chained rows for one tenant spread over ``orgs`` (one transaction)."""
    import hashlib

    from plugins.audit.service import COLUMNS, GENESIS, canonical

    actions = ["team.member.role_changed", "api-keys.key.created", "billing.details.updated",
               "auth.login.succeeded", "team.invitation.sent"]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    previous = GENESIS
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    placeholders = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO audit_event ({', '.join(chr(34) + c + chr(34) for c in COLUMNS)}) VALUES ({placeholders})"
    batch = []
    for seq in range(1, rows + 1):
        row = {
            "id": uuid.uuid4(), "tenant": tenant_id, "organization": orgs[seq % len(orgs)], "seq": seq,
            "time": start + timedelta(seconds=seq * 20), "action": actions[seq % len(actions)], "outcome": "success",
            "actor_type": "user", "actor_id": f"user-{seq % 97}", "actor_display": f"person{seq % 97}@example.com",
            "actor_auth_method": "password", "target_type": "membership", "target_id": f"m-{seq % 1013}",
            "target_display": f"member{seq % 1013}@example.com", "before": canonical({"role": "member"}),
            "after": canonical({"role": "admin", "n": seq}), "data": "{}", "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (bench)", "request_id": uuid.uuid4().hex, "prev_hash": previous,
        }
        row["hash"] = previous = hashlib.sha256(f"{previous}{seq}".encode()).hexdigest()
        batch.append(tuple(
            str(row[c]) if c in ("id", "tenant", "organization") else
            str(row[c]) if c == "time" else row[c] for c in COLUMNS))
        if len(batch) == 50_000:
            connection.executemany(sql, batch)
            batch.clear()
    connection.executemany(sql, batch)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()


async def timed(make, repeat: int = 7) -> float:
    """Median seconds of ``await make()`` over ``repeat`` runs (after one warm-up)."""
    await make()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await make()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--export-rows", type=int, default=100_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    db_path = workdir / "bench.db"
    os.environ.update({"PORTAL_DATABASE_URL": f"sqlite:///{db_path}", "PORTAL_ENV": "test",
                       "PORTAL_SECRET_KEY": "bench-secret-key-" + "x" * 32, "PORTAL_VAR_DIR": str(workdir)})
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from core.db import connect, use_database
    from plugins.audit.query import Filters, Scope, csv_header, csv_row, iterate, offset_page, page, with_json

    use_database(os.environ["PORTAL_DATABASE_URL"])
    await connect()
    for app_name in ("core", "audit"):
        result = await run_forwards(app_name=app_name, migration_id="all")
        assert result.success, result.message

    tenant_id, orgs = uuid.uuid4(), [uuid.uuid4() for _ in range(4)]
    began = time.perf_counter()
    seed(db_path, args.rows, tenant_id, orgs)
    print(f"seeded {args.rows:,} chained rows in {time.perf_counter() - began:.1f} s ({db_path})")

    org_scope, everything = Scope(tenant_id, orgs[0]), Filters()
    org_rows = args.rows // len(orgs)
    deep = int(org_rows * 0.95)
    first = await page(org_scope, everything)
    cursor_page = first
    # The cursor of the deep page, as a user who clicked "Older" that often would hold it.
    deep_cursor = (await offset_page(org_scope, everything, offset=deep - 1, limit=1))[0]["seq"]
    assert [r["seq"] for r in (await page(org_scope, everything, before=deep_cursor)).rows] == \
        [r["seq"] for r in await offset_page(org_scope, everything, offset=deep)]

    results = {
        "keyset first page": await timed(lambda: page(org_scope, everything)),
        "keyset deep page": await timed(lambda: page(org_scope, everything, before=deep_cursor)),
        "OFFSET first page": await timed(lambda: offset_page(org_scope, everything, offset=0)),
        "OFFSET deep page": await timed(lambda: offset_page(org_scope, everything, offset=deep), repeat=3),
    }
    filtered = Filters(action="api-keys.")
    deep_filtered = (await offset_page(org_scope, filtered, offset=int(org_rows / 5 * 0.95) - 1, limit=1))[0]["seq"]
    results["keyset deep page, action filter"] = await timed(lambda: page(org_scope, filtered, before=deep_filtered))
    results["OFFSET deep page, action filter"] = await timed(
        lambda: offset_page(org_scope, filtered, offset=int(org_rows / 5 * 0.95)), repeat=3)

    print(f"\norganization view: {org_rows:,} rows of {args.rows:,}; deep page = row {deep:,} (newest first)")
    for name, seconds in results.items():
        print(f"  {name:<34} {seconds * 1000:9.2f} ms")
    print(f"  ratio OFFSET/keyset, first page      {results['OFFSET first page'] / results['keyset first page']:9.1f}x")
    print(f"  ratio OFFSET/keyset, deep page       {results['OFFSET deep page'] / results['keyset deep page']:9.1f}x")
    print(f"  ratio keyset deep/first page         {results['keyset deep page'] / results['keyset first page']:9.2f}x")
    ratio = results["OFFSET deep page, action filter"] / results["keyset deep page, action filter"]
    print(f"  ratio OFFSET/keyset, filtered deep   {ratio:9.1f}x")
    assert cursor_page.rows

    # Export memory: the streaming generator vs loading every row first.
    export_scope = Scope(tenant_id)
    limit = args.export_rows
    newest = (await page(export_scope, everything, limit=1)).rows[0]["seq"]
    window = Filters()

    async def stream() -> int:
        written = 0
        chunk = [csv_header()]
        async for row in iterate(export_scope, window):
            if row["seq"] <= newest - limit:
                break
            chunk.append(csv_row(row))
            written += 1
            if len(chunk) >= 500:
                chunk = []  # what the endpoint hands to the socket
        return written

    async def materialised() -> int:
        from plugins.audit.query import COLUMNS
        from plugins.audit.service import decode_row
        from plugins.audit.tables import AuditEvent

        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        rows = [with_json(decode_row(r)) for r in await AuditEvent.raw(
            f"SELECT {columns} FROM audit_event WHERE tenant = {{}} ORDER BY seq DESC LIMIT {limit}", tenant_id)]
        body = csv_header() + "".join(csv_row(r) for r in rows)
        return len(rows) if body else 0

    peaks = {}
    print()
    for name, work in (("streamed export", stream), ("load-everything export", materialised)):
        began = time.perf_counter()
        count = await work()
        elapsed = time.perf_counter() - began
        tracemalloc.start()  # a second run under tracemalloc (which slows everything down) for the peak
        await work()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name}: {count:,} rows in {elapsed:.2f} s, peak Python memory {peaks[name] / 1e6:.1f} MB")
    ratio = peaks["load-everything export"] / peaks["streamed export"]
    print(f"  ratio peak memory load-everything/streamed {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
