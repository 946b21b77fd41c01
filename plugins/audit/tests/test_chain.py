"""Tamper evidence and retention: verify names the first broken row; prune keeps the chain verifiable."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from core.db import atomic, is_sqlite, utcnow
from core.tables import Tenant
from plugins.audit import service
from plugins.audit.chain import parse_head, prune, retention_days, verify
from plugins.audit.service import CHECKPOINT_ACTION, current_head
from plugins.audit.tables import AuditEvent

from .conftest import audit_rows, event, triggers_dropped

ROOT = Path(__file__).resolve().parents[3]


async def write(tenant_id, count, *, days_ago: float = 0, start: int = 0):
    """``count`` events of a tenant, ``days_ago`` old."""
    async with atomic():
        for i in range(count):
            await service.record(event(tenant_id, f"test.thing.n{start + i}",
                                       time=utcnow() - timedelta(days=days_ago), before={"n": i}, after={"n": i + 1}))


async def delete_rows(tenant_id, *seqs):
    """Delete rows the way only a tamperer (or prune) could: through the gate, in one transaction."""
    async with atomic():
        if is_sqlite():
            await AuditEvent.raw("INSERT INTO audit_prune_gate (id, open) VALUES (1, 1) "
                                 "ON CONFLICT (id) DO UPDATE SET open = 1")
        else:
            await AuditEvent.raw("SET LOCAL portal.audit_prune = 'on'")
        for seq in seqs:
            await AuditEvent.raw("DELETE FROM audit_event WHERE tenant = {} AND seq = {}", tenant_id, seq)
        if is_sqlite():
            await AuditEvent.raw("UPDATE audit_prune_gate SET open = 0")


async def test_an_empty_log_verifies_but_not_against_a_head(app, tenant):
    assert (await verify(tenant.id)).ok and (await current_head(tenant.id)) is None
    assert not (await verify(tenant.id, "3:" + "0" * 64)).ok


async def test_an_intact_chain_verifies(app, tenant):
    await write(tenant.id, 7)
    result = await verify(tenant.id)
    assert result.ok and result.rows_checked == 7 and result.head.seq == 7
    assert "7 row(s) verified" in result.describe()


async def test_verify_names_an_edited_row(app, tenant):
    await write(tenant.id, 6)
    async with triggers_dropped():
        await AuditEvent.raw("UPDATE audit_event SET after = {} WHERE tenant = {} AND seq = 4", '{"n":999}', tenant.id)
    result = await verify(tenant.id)
    assert not result.ok and result.broken_seq == 4
    assert "edited" in result.problem and "seq 4" in result.describe()

    # Re-hashing the edited row to hide the edit breaks the link to the next row instead.
    rows = await audit_rows(tenant.id)
    forged = service.decode_row(rows[3])
    async with triggers_dropped():
        await AuditEvent.raw("UPDATE audit_event SET hash = {} WHERE tenant = {} AND seq = 4",
                             service.row_hash(forged), tenant.id)
    result = await verify(tenant.id)
    assert not result.ok and result.broken_seq == 5 and "prev_hash" in result.problem


async def test_verify_names_a_deleted_row(app, tenant):
    await write(tenant.id, 6)
    await delete_rows(tenant.id, 3)
    result = await verify(tenant.id)
    assert not result.ok and result.broken_seq == 4
    assert "deleted" in result.problem and "seq 3" in result.problem


async def test_verify_notices_deleted_first_rows(app, tenant):
    await write(tenant.id, 4)
    await delete_rows(tenant.id, 1, 2)
    result = await verify(tenant.id)
    assert not result.ok and result.broken_seq == 3 and "1..2" in result.problem


async def test_a_truncated_tail_is_caught_with_an_exported_head(app, tenant):
    await write(tenant.id, 5)
    exported = str(await current_head(tenant.id))
    assert parse_head(exported) == (5, exported.split(":")[1])
    assert (await verify(tenant.id, exported)).ok
    await write(tenant.id, 2, start=5)
    assert (await verify(tenant.id, exported)).ok  # the chain grew past the exported head: fine
    bare_hash = exported.split(":")[1]
    assert (await verify(tenant.id, bare_hash)).ok  # a bare hash (no seq) works too

    await delete_rows(tenant.id, 6, 7, 5)
    alone = await verify(tenant.id)
    assert alone.ok  # without the head, a cut tail looks like a shorter log...
    result = await verify(tenant.id, exported)
    assert not result.ok and result.broken_seq == 5 and "truncated" in result.problem  # ...with it, it does not
    assert not (await verify(tenant.id, bare_hash)).ok

    # Rewriting the tail (new rows after the cut) does not fool the exported head either.
    await write(tenant.id, 3, start=100)
    result = await verify(tenant.id, exported)
    assert not result.ok and result.broken_seq == 5 and "does not match the exported head" in result.problem


async def test_prune_removes_old_rows_and_the_chain_still_verifies(app, tenant):
    await write(tenant.id, 5, days_ago=400)
    exported_old = str(await current_head(tenant.id))
    await write(tenant.id, 3, days_ago=10, start=5)
    exported = str(await current_head(tenant.id))

    result = await prune(tenant.id, 365)
    assert result.removed == 5 and result.through_seq == 5 and result.checkpoint_seq == 9
    rows = await audit_rows(tenant.id)
    assert [r["seq"] for r in rows] == [6, 7, 8, 9]
    checkpoint = rows[-1]
    assert checkpoint["action"] == CHECKPOINT_ACTION and checkpoint["actor_type"] == "system"
    verified = await verify(tenant.id, exported)
    assert verified.ok and verified.rows_checked == 4, verified.describe()
    assert (await verify(tenant.id, exported_old)).ok  # the checkpoint vouches for the pruned head

    assert (await prune(tenant.id, 365)).removed == 0  # nothing old left: no new checkpoint
    assert len(await audit_rows(tenant.id)) == 4

    # A second prune removes the first checkpoint too; the newest checkpoint anchors the chain.
    await write(tenant.id, 2, start=20)
    result = await prune(tenant.id, 1, now=utcnow() + timedelta(days=30))
    assert result.removed == 6 and result.through_seq == 11
    assert (await verify(tenant.id)).ok

    # Deleting rows right after a checkpoint's range is still caught.
    await write(tenant.id, 2, start=30)
    await delete_rows(tenant.id, 13)
    result = await verify(tenant.id)
    assert not result.ok and result.broken_seq == 14


async def test_prune_keeps_rows_newer_than_an_old_one_out_of_order(app, tenant):
    await write(tenant.id, 2, days_ago=500)
    await write(tenant.id, 1, days_ago=5, start=2)
    await write(tenant.id, 1, days_ago=500, start=3)  # late, old-dated row after a recent one
    result = await prune(tenant.id, 365)
    assert result.removed == 2  # rows go only from the start: the chain never gets a hole
    assert [r["seq"] for r in await audit_rows(tenant.id)] == [3, 4, 5]
    assert (await verify(tenant.id)).ok


def test_retention_setting():
    assert retention_days({}) == 365
    assert retention_days({"audit": {"retention_days": 30}}) == 30
    assert retention_days({"audit": {"retention_days": "bogus"}}) == 365
    assert retention_days({"audit": {"retention_days": 0}}) == 1


async def test_other_tenants_chains_are_independent(app, tenant, make_tenant):
    other = await make_tenant(plugins=["audit"])
    await write(tenant.id, 3)
    await write(other.id, 2)
    await delete_rows(other.id, 1)
    assert (await verify(tenant.id)).ok
    assert not (await verify(other.id)).ok
    assert [r["seq"] for r in await audit_rows(tenant.id)] == [1, 2, 3]


def portal(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``portal`` command against the test session's database."""
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", "from core.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def test_cli_verify_head_and_prune(app, make_tenant):
    tenant = await make_tenant(plugins=["audit"], settings={"audit": {"retention_days": 30}})
    await write(tenant.id, 3, days_ago=90)
    await write(tenant.id, 2, start=3)

    head = portal("audit", "head", "--tenant", tenant.slug)
    assert head.returncode == 0, head.stderr
    slug, exported = head.stdout.split()
    assert slug == tenant.slug and exported == str(await current_head(tenant.id))

    ok = portal("audit", "verify", "--tenant", tenant.slug, "--head", exported)
    assert ok.returncode == 0, ok.stderr
    assert "OK: 5 row(s) verified" in ok.stdout

    pruned = portal("audit", "prune", "--tenant", tenant.slug)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 3 row(s) older than 30 days" in pruned.stdout
    assert portal("audit", "verify", "--tenant", tenant.slug, "--head", exported).returncode == 0

    await delete_rows(tenant.id, 5)
    broken = portal("audit", "verify", "--tenant", tenant.slug)
    assert broken.returncode == 1
    assert "BROKEN at row seq 6" in broken.stdout
    missing = portal("audit", "verify", "--tenant", "no-such-tenant")
    assert missing.returncode != 0 and "no tenant" in missing.stderr
    assert await Tenant.exists().where(Tenant.slug == tenant.slug)
