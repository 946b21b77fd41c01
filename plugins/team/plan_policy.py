"""Which plans an organization's team fits in (``portal_plan_change_allowed``).

A plan whose seat limit is below the number of people already in the organization
would leave it over its limit the moment the change applies, so the change-plan page
refuses it with what to do instead. Pending invitations are not counted: they can be
revoked at any time and do not hold an account yet.
"""

from __future__ import annotations

from typing import Any

from plugins.team.queries import member_count


def seat_limit(limits: dict[str, Any]) -> int | None:
    """The plan's seat limit; None when it has none or it is unlimited (-1)."""
    value = limits.get("seats")
    if value is None:
        return None
    try:
        seats = int(value)
    except (TypeError, ValueError):
        return None
    return None if seats < 0 else seats


async def refuse_if_too_small(ctx: Any, org: Any, new_plan: Any) -> str | None:
    """A message when the organization has more members than ``new_plan`` has seats; None otherwise."""
    seats = seat_limit(dict(getattr(new_plan, "limits", {}) or {}))
    if seats is None:
        return None
    org_id = org["id"] if isinstance(org, dict) else org.id
    members = await member_count(ctx.tenant.id, org_id)
    if members <= seats:
        return None
    return (f"You have {members} member{'s' * (members != 1)}; {new_plan.name} allows {seats} "
            f"seat{'s' * (seats != 1)}. Remove members first.")
