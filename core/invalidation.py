"""Cross-process cache invalidation over Redis pub/sub (when ``PORTAL_REDIS_URL`` is set).

A tenant or domain change calls ``directory.invalidate()``: this process reloads
at once, and with Redis every other process hears about it within milliseconds
instead of waiting for the snapshot's TTL. Without Redis the TTL is the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

log = logging.getLogger("portal.invalidation")

CHANNEL = "portal:tenant-directory"


class RedisInvalidation:
    """Publishes this process's invalidations and applies everyone else's."""

    def __init__(self, url: str, directory: Any) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url)
        self.directory = directory
        self.origin = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    def publish(self) -> None:
        """Tell the other processes (fire and forget: the TTL still bounds staleness if Redis is down)."""
        task = asyncio.get_running_loop().create_task(self.client.publish(CHANNEL, self.origin))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message.get("type") == "message" and message["data"].decode() != self.origin:
                self.directory.invalidate(broadcast=False)

    async def start(self) -> None:
        """Subscribe before serving, so no invalidation published after start-up is missed."""
        await self.client.ping()
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        """Unsubscribe and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        try:
            await self.client.aclose()
        except Exception:  # noqa: BLE001 - Redis already gone: nothing left to release
            log.info("redis connection was already closed")
