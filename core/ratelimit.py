"""Named throttles (failed logins, second-factor codes, password resets, ``/_tls/ask`` ...).

Built on the ``limits`` library's moving-window strategy. Without ``PORTAL_REDIS_URL``
each app keeps its windows in memory, which is exact for one process. With it, every
process counts in the same Redis window (the scale-out contract in ARCHITECTURE.md):
five wrong passwords are five wherever the load balancer sent them. If Redis is
unreachable a throttle falls back to its process's own window and logs it, so an
outage neither locks everybody out nor turns throttling off.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger(__name__)

REDIS_KEY_PREFIX = "portal-limits"


def redis_storage_uri(redis_url: str) -> str:
    """The ``limits`` URI of a ``PORTAL_REDIS_URL`` (``redis://``, ``rediss://`` or ``unix://``)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class Throttle:
    """At most ``limit`` events per key in a moving window of ``window`` seconds."""

    def __init__(self, name: str, limit: int, window: float, shared: Storage | None) -> None:
        self.name = name
        self.item = RateLimitItemPerSecond(limit, max(1, math.ceil(window)))
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(shared) if shared is not None else None

    async def _call(self, method: str, key: str) -> object:
        if self._shared is not None:
            try:
                return await getattr(self._shared, method)(self.item, self.name, key)
            except Exception as error:  # the store is down: this process's own window still counts
                log.warning("throttle %s: shared store unavailable (%s); counting in this process", self.name, error)
        return await getattr(self._local, method)(self.item, self.name, key)

    async def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it is not blocked."""
        if await self._call("test", key):
            return 0
        stats = await self._call("get_window_stats", key)
        return max(1, math.ceil(stats.reset_time - time.time()))  # type: ignore[attr-defined]

    async def hit(self, key: str) -> None:
        """Record one event (a failed login, a code sent)."""
        await self._call("hit", key)

    async def reset(self, key: str) -> None:
        """Forget a key (a successful login clears its account's failures)."""
        await self._call("clear", key)


class Throttles:
    """The app's named throttles, created on first use and shared by name."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._shared = (storage_from_string(redis_storage_uri(redis_url), implementation="redispy",
                                            key_prefix=REDIS_KEY_PREFIX, socket_timeout=1.0,
                                            socket_connect_timeout=1.0) if redis_url else None)
        self._throttles: dict[str, Throttle] = {}

    def get(self, name: str, limit: int, window: float) -> Throttle:
        """The throttle called ``name`` (its limit and window are fixed by the first caller)."""
        throttle = self._throttles.get(name)
        if throttle is None:
            throttle = self._throttles[name] = Throttle(name, limit, window, self._shared)
        return throttle
