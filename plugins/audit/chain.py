"""Checking and trimming a tenant's hash chain: ``portal audit verify``, ``head`` and ``prune``.

Each row's ``hash`` covers its content and ``prev_hash`` (the previous row's hash), and rows are numbered
1, 2, 3... per tenant. ``verify`` walks the chain in order and names the first row where a number is
missing (a deleted row), a ``prev_hash`` does not link, or the content no longer matches its hash (an
edited row). A truncated tail leaves a consistent but shorter chain: compare it with a head exported
earlier (``--head seq:hash``).

Retention: ``prune`` deletes a tenant's oldest rows (older than ``retention_days``, default 365, from
``tenant.settings["audit"]["retention_days"]``) and appends a checkpoint row (``audit.log.pruned``) that
names the last removed row and its hash, so the first remaining row still links to something the chain
vouches for. Rows go only from the start of the chain, never from the middle.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.db import atomic, is_sqlite, load_json, utcnow
from plugins.audit.service import (
    CHECKPOINT_ACTION,
    COLUMNS,
    GENESIS,
    Head,
    current_head,
    decode_row,
    lock_tenant,
    record_system,
    row_hash,
)
from plugins.audit.tables import AuditEvent

DEFAULT_RETENTION_DAYS = 365
BATCH = 5000


@dataclass(frozen=True)
class Verification:
    """The outcome of checking one tenant's chain."""

    ok: bool
    rows_checked: int
    head: Head | None
    broken_seq: int | None = None
    broken_id: str | None = None
    problem: str = ""
    note: str = ""

    def describe(self) -> str:
        """One line for the CLI."""
        if self.ok:
            head = f"head {self.head}" if self.head else "empty"
            return f"OK: {self.rows_checked} row(s) verified, {head}" + (f" ({self.note})" if self.note else "")
        where = f"row seq {self.broken_seq}" + (f" (id {self.broken_id})" if self.broken_id else "")
        return f"BROKEN at {where}: {self.problem}"


def parse_head(text: str) -> tuple[int | None, str]:
    """``seq:hash`` (what ``portal audit head`` prints) or a bare hash."""
    seq, _, digest = text.strip().rpartition(":")
    return (int(seq) if seq.strip().isdigit() else None), digest.strip().lower()


async def chain_rows(tenant_id: uuid.UUID, *, batch: int = BATCH) -> AsyncIterator[dict[str, Any]]:
    """Every row of a tenant in chain order, read in keyset batches (bounded memory)."""
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    last = 0
    while True:
        rows = await AuditEvent.raw(
            f"SELECT {columns} FROM audit_event WHERE tenant = {{}} AND seq > {{}} ORDER BY seq LIMIT {int(batch)}",
            tenant_id, last)
        for raw in rows:
            yield decode_row(raw)
        if len(rows) < batch:
            return
        last = int(rows[-1]["seq"])


async def latest_checkpoint(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The ``data`` of the newest prune checkpoint (where the chain now starts), if any."""
    rows = await AuditEvent.raw(
        "SELECT data FROM audit_event WHERE tenant = {} AND action = {} ORDER BY seq DESC LIMIT 1",
        tenant_id, CHECKPOINT_ACTION)
    return load_json(rows[0]["data"]) if rows else None


async def verify(tenant_id: uuid.UUID, head: str | None = None) -> Verification:
    """Walk the tenant's chain; with ``head`` (an exported ``seq:hash``) also detect a truncated tail."""
    checkpoint = await latest_checkpoint(tenant_id)
    anchor_seq = int(checkpoint["through_seq"]) if checkpoint else 0
    anchor_hash = str(checkpoint["through_hash"]) if checkpoint else GENESIS
    expected_seq, previous = None, None
    checked = 0
    seen: Head | None = None
    head_seq, head_hash = parse_head(head) if head else (None, "")
    head_found = False
    async for row in chain_rows(tenant_id):
        if expected_seq is None:  # the first remaining row must link to genesis or to the last checkpoint
            if row["seq"] == 1:
                previous = GENESIS
            elif row["seq"] == anchor_seq + 1:
                previous = anchor_hash
            else:
                missing = f"{anchor_seq + 1}..{row['seq'] - 1}"
                return Verification(False, checked, seen, row["seq"], row["id"],
                                    f"rows {missing} are missing and no prune checkpoint accounts for them")
            expected_seq = row["seq"]
        if row["seq"] != expected_seq:
            gap = f"seq {expected_seq}" if row["seq"] == expected_seq + 1 else f"seq {expected_seq}..{row['seq'] - 1}"
            return Verification(False, checked, seen, row["seq"], row["id"],
                                f"the row(s) before it ({gap}) were deleted")
        if row["prev_hash"] != previous:
            return Verification(False, checked, seen, row["seq"], row["id"],
                                "prev_hash does not match the previous row's hash (a row was replaced)")
        if row_hash(row) != row["hash"]:
            return Verification(False, checked, seen, row["seq"], row["id"],
                                "its content does not match its hash (the row was edited)")
        if head and (row["seq"] == head_seq or (head_seq is None and row["hash"] == head_hash)):
            if row["hash"] != head_hash:
                return Verification(False, checked, seen, row["seq"], row["id"],
                                    f"it does not match the exported head {head}")
            head_found = True
        previous, expected_seq = row["hash"], row["seq"] + 1
        seen = Head(row["seq"], row["hash"])
        checked += 1
    note = ""
    if head and not head_found:
        pruned = head_seq is not None and head_seq <= anchor_seq
        if pruned and head_seq == anchor_seq and head_hash != anchor_hash:
            return Verification(False, checked, seen, head_seq, None,
                                f"the prune checkpoint does not match the exported head {head}")
        if pruned:
            note = f"exported head seq {head_seq} was pruned since; checked up to the checkpoint"
        else:
            last = f"seq {seen.seq}" if seen else "no rows"
            return Verification(False, checked, seen, head_seq, None,
                                f"the exported head {head} is missing: the log ends at {last} "
                                "(its tail was truncated or rewritten)")
    elif head:
        note = "matches the exported head"
    if seen is None and anchor_seq:
        return Verification(False, 0, None, anchor_seq + 1, None, "every row after the last checkpoint is gone")
    return Verification(True, checked, seen, note=note)


def retention_days(settings: dict[str, Any]) -> int:
    """A tenant's retention in days: ``settings.audit.retention_days``, at least 1, default 365."""
    raw = (settings or {}).get("audit", {}).get("retention_days", DEFAULT_RETENTION_DAYS)
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return DEFAULT_RETENTION_DAYS
    return max(days, 1)


@dataclass(frozen=True)
class PruneResult:
    """What ``prune`` removed (``removed`` 0: nothing was old enough, and no checkpoint was written)."""

    removed: int
    through_seq: int | None = None
    checkpoint_seq: int | None = None


async def _open_gate() -> None:
    if is_sqlite():
        await AuditEvent.raw("INSERT INTO audit_prune_gate (id, open) VALUES (1, 1) "
                             "ON CONFLICT (id) DO UPDATE SET open = 1")
    else:
        await AuditEvent.raw("SET LOCAL portal.audit_prune = 'on'")


async def _close_gate() -> None:
    if is_sqlite():
        await AuditEvent.raw("UPDATE audit_prune_gate SET open = 0 WHERE id = 1")
    else:
        await AuditEvent.raw("SET LOCAL portal.audit_prune = 'off'")


async def prune(tenant_id: uuid.UUID, days: int, *, now: Any = None) -> PruneResult:
    """Delete rows older than ``days`` from the start of the chain and append a checkpoint, in one transaction."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    async with atomic():
        await lock_tenant(tenant_id)
        head = await current_head(tenant_id)
        if head is None:
            return PruneResult(0)
        kept = await AuditEvent.raw("SELECT min(seq) AS seq FROM audit_event WHERE tenant = {} AND \"time\" >= {}",
                                    tenant_id, cutoff)
        first_kept = kept[0]["seq"] if kept and kept[0]["seq"] is not None else None
        through = int(first_kept) - 1 if first_kept is not None else head.seq
        last = await AuditEvent.raw("SELECT seq, hash FROM audit_event WHERE tenant = {} AND seq <= {} "
                                    "ORDER BY seq DESC LIMIT 1", tenant_id, through)
        if not last:
            return PruneResult(0)
        through, through_hash = int(last[0]["seq"]), last[0]["hash"]
        counted = await AuditEvent.raw("SELECT count(*) AS n FROM audit_event WHERE tenant = {} AND seq <= {}",
                                       tenant_id, through)
        await _open_gate()
        await AuditEvent.raw("DELETE FROM audit_event WHERE tenant = {} AND seq <= {}", tenant_id, through)
        await _close_gate()
        removed = int(counted[0]["n"])
        checkpoint = await record_system(tenant_id, CHECKPOINT_ACTION, data={
            "through_seq": through, "through_hash": through_hash, "removed": removed,
            "retention_days": days, "cutoff": cutoff.isoformat(),
        }, after=head)
    return PruneResult(removed, through, checkpoint["seq"])
