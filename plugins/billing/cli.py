"""``portal billing`` commands (filled in with the Stripe provider)."""

from typing import Any


def register(group: Any) -> None:
    """Add the ``billing`` group."""
