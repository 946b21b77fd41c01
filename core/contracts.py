"""The values plugins hand to the core through hooks.

Plain frozen dataclasses so a partner's plugin needs nothing but ``core`` to
build them, and the core can validate them in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

ROLES: tuple[str, ...] = ("owner", "admin", "billing", "member", "viewer")
"""Organization roles, highest first: a role never grants one above its own."""


@dataclass(frozen=True)
class PluginInfo:
    """Who a plugin is. ``requires_portal`` is a version specifier checked at registration."""

    slug: str
    label: str
    version: str
    description: str = ""
    requires_portal: str = ">=0.1,<1"


@dataclass(frozen=True)
class Permission:
    """A permission a plugin contributes; ``default_roles`` get it unless the tenant says otherwise."""

    name: str
    label: str
    default_roles: frozenset[str] = frozenset()

    def __init__(self, name: str, label: str, default_roles: Iterable[str] = ()) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "label", label)
        roles = frozenset(default_roles)
        unknown = roles - set(ROLES)
        if unknown:
            raise ValueError(f"permission {name}: unknown roles {sorted(unknown)}")
        object.__setattr__(self, "default_roles", roles)


@dataclass(frozen=True)
class NavItem:
    """A navigation link; ``href`` may contain ``{org}`` for the current organization's slug."""

    label: str
    href: str
    permission: str | None = None
    order: int = 100
    icon: str = ""


@dataclass(frozen=True)
class DashboardCard:
    """A card on the organization overview: a headline value or a template of the plugin."""

    title: str
    value: str = ""
    description: str = ""
    link: str = ""
    link_label: str = ""
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    permission: str | None = None
    order: int = 100


@dataclass(frozen=True)
class UsageMetric:
    """A metered quantity for the current period; ``limit`` -1 means unlimited, None means no limit set."""

    key: str
    label: str
    used: float
    limit: float | None = None
    unit: str = ""


@dataclass(frozen=True)
class PluginRoutes:
    """A plugin's handlers: ``pages`` under ``/o/{org}/{slug}``, ``api`` under ``/api/v1/{slug}``,
    ``public`` at the host root (invitation links, webhooks, SSO callbacks)."""

    pages: list[Any] = field(default_factory=list)
    api: list[Any] = field(default_factory=list)
    public: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class LoginOption:
    """Another way to sign in, shown under the login form."""

    label: str
    href: str


OutboxHandler = Callable[..., Any]
"""``async def handler(message_payload: dict, *, tenant_id, app) -> None``; raise to retry later."""


@dataclass(frozen=True)
class BillingSummary:
    """What an organization pays, as the billing plugin knows it (``portal_billing_summaries``).

    Amounts are ``Decimal`` in ``currency`` (ISO 4217). ``monthly_amount`` is the recurring
    price normalised to one month (a yearly plan counts a twelfth), which the console sums
    as revenue. ``unit_prices`` maps a usage metric key to the price of one unit over the
    plan's limit, for a projected bill.
    """

    plan_id: str
    plan_name: str
    status: str
    currency: str
    amount: Decimal
    interval: str
    monthly_amount: Decimal
    unit_prices: dict[str, Decimal] = field(default_factory=dict)
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class PlanOffer:
    """A plan as other plugins see it when asked whether an organization may move to it."""

    id: str
    name: str
    limits: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MeterEvent:
    """A metered quantity to report to the payment provider; ``identifier`` makes a retry harmless."""

    metric: str
    quantity: float
    timestamp: datetime
    identifier: str
