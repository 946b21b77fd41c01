"""Transactional outbox: side effects that leave the process (mail, Stripe, webhooks).

``enqueue`` inserts a row in the caller's transaction, so a change that rolls
back sends nothing. The worker claims due rows with a conditional UPDATE (safe
with several processes: a row is claimed by one worker at a time, and a claim
expires if its worker dies), calls the handler for the row's kind, and marks it
sent, or schedules a retry with exponential back-off. A ``dedupe_key`` makes
enqueueing the same message twice a no-op. Delivery is at least once: a crash
between a handler's success and the ``sent`` mark repeats that one message, so
handlers pass the message id on (e.g. as Message-ID or Idempotency-Key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from piccolo.columns.combination import Or

from core.db import load_json, utcnow
from core.tables import OutboxMessage

log = logging.getLogger("portal.outbox")

MAX_ATTEMPTS = 8
CLAIM_SECONDS = 120


async def enqueue(kind: str, payload: dict[str, Any], *, tenant_id: uuid.UUID | None = None,
                  dedupe_key: str | None = None, delay: float = 0) -> bool:
    """Queue a side effect; returns False when ``dedupe_key`` was already queued."""
    if dedupe_key is not None and await OutboxMessage.exists().where(OutboxMessage.dedupe_key == dedupe_key):
        return False
    now = utcnow()
    await OutboxMessage.insert(OutboxMessage(
        id=uuid.uuid4(), tenant=tenant_id, kind=kind, payload=payload, dedupe_key=dedupe_key,
        status="pending", attempts=0, next_attempt_at=now + timedelta(seconds=delay), created_at=now,
    ))
    return True


class OutboxWorker:
    """Delivers due outbox messages; run in-process by the app or alone with ``portal outbox work``."""

    def __init__(self, handlers: dict[str, Any], app: Any, poll_interval: float = 1.0) -> None:
        self.handlers = handlers
        self.app = app
        self.poll_interval = poll_interval
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        now = utcnow()
        due = await OutboxMessage.select(OutboxMessage.id).where(
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
            Or(OutboxMessage.locked_until.is_null(), OutboxMessage.locked_until < now),
        ).order_by(OutboxMessage.next_attempt_at).limit(limit)
        claimed = []
        for row in due:
            rows = await OutboxMessage.update({
                OutboxMessage.locked_by: self.worker_id,
                OutboxMessage.locked_until: now + timedelta(seconds=CLAIM_SECONDS),
            }).where(
                OutboxMessage.id == row["id"], OutboxMessage.status == "pending",
                Or(OutboxMessage.locked_until.is_null(), OutboxMessage.locked_until < now),
            ).returning(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.payload, OutboxMessage.tenant,
                        OutboxMessage.attempts)
            claimed.extend(rows)
        return claimed

    async def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many messages were handled (sent or failed)."""
        handled = 0
        for message in await self._claim(limit):
            handler = self.handlers.get(message["kind"])
            try:
                if handler is None:
                    raise LookupError(f"no outbox handler for kind {message['kind']!r}")
                await handler(load_json(message["payload"]) or {}, tenant_id=message["tenant"], app=self.app,
                              message_id=message["id"])
            except Exception as exc:  # noqa: BLE001 - any failure is retried or recorded
                attempts = message["attempts"] + 1
                give_up = attempts >= MAX_ATTEMPTS
                log.warning("outbox %s (%s) failed attempt %d: %s", message["id"], message["kind"], attempts, exc)
                await OutboxMessage.update({
                    OutboxMessage.attempts: attempts,
                    OutboxMessage.status: "failed" if give_up else "pending",
                    OutboxMessage.last_error: str(exc)[:2000],
                    OutboxMessage.next_attempt_at: utcnow() + timedelta(seconds=min(3600, 2 ** attempts)),
                    OutboxMessage.locked_until: None,
                }).where(OutboxMessage.id == message["id"])
            else:
                await OutboxMessage.update({
                    OutboxMessage.status: "sent", OutboxMessage.sent_at: utcnow(),
                    OutboxMessage.attempts: message["attempts"] + 1, OutboxMessage.locked_until: None,
                }).where(OutboxMessage.id == message["id"])
            handled += 1
        return handled

    def wake(self) -> None:
        """Deliver soon instead of at the next poll (called after a commit that enqueued)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the worker
                log.exception("outbox worker pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            self._wake.clear()

    def start(self) -> None:
        """Run in the background of the app's event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the background loop (app shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
