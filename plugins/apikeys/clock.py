"""The plugin's one clock, so tests can travel in time (expiry, grace periods, last-used throttling)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Timezone-aware UTC now; tests monkeypatch this function."""
    return datetime.now(UTC)
