"""Who may read and manage billing.

``billing.read``: owner, admin, billing, viewer. ``billing.manage``: owner and billing.
A tenant that lets admins manage billing says so with the core's role overrides in its
manifest (``[settings.roles.admin] grant = ["billing.manage"]``), so the buttons a
template shows and the checks a route makes come from the same permission set.
"""

from __future__ import annotations

READ_ROLES = ("owner", "admin", "billing", "viewer")
MANAGE_ROLES = ("owner", "billing")
