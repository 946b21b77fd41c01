"""Portal core: the host every portal section plugs into.

Plugins import what they need from here: ``hookimpl`` to implement hooks, the
contract types in ``core.contracts``, ``core.events.emit`` for domain events,
``core.outbox`` / ``core.mail`` / ``core.notifications`` for side effects.
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "portal"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator a plugin puts on every hook implementation (``@hookimpl``)."""
