"""Plans and billing settings of a tenant, read from its manifest (``[settings.billing]``).

A tenant declares its plans in its manifest; nothing about plans is stored per
organization except the plan id of its subscription. Prices are in minor units of
the plan's currency; a limit of -1 means unlimited. Money is formatted with Babel
in the tenant's billing locale. A plan's optional ``unit_prices`` (major units per unit
over a limit, by usage metric) travel in ``portal_billing_summaries`` to whoever projects a
bill; ``pause_allowed`` / ``pause_max_months`` (1-3) decide the pause offered on cancel;
``invoice_reminder_days`` (days after issue, default 3 and 7, ``[]`` for none) when a renewal invoice left
open is reminded of (``reminders.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, get_currency_precision

DEFAULT_REMINDER_DAYS = (3, 7)
MAX_REMINDER_DAYS = 365

LIMIT_LABELS = {"seats": "Seats", "api_calls": "API calls / month", "storage_gb": "Storage (GB)",
                "projects": "Projects"}


@dataclass(frozen=True)
class Plan:
    """One plan a tenant sells."""

    id: str
    name: str
    price: int
    currency: str
    interval: str = "month"
    limits: dict[str, int] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    stripe_price_id: str = ""
    description: str = ""
    retired: bool = False  # still honoured for subscribers, never offered again
    unit_prices: dict[str, Decimal] = field(default_factory=dict)  # per usage metric, major units, over the limit

    @property
    def monthly_price(self) -> float:
        """Price per month, to rank plans with different intervals."""
        return self.price / 12 if self.interval == "year" else float(self.price)

    @property
    def monthly_amount(self) -> Decimal:
        """The recurring price per month in major units (a yearly plan counts a twelfth): what revenue sums."""
        amount = to_major(self.price, self.currency)
        return amount / 12 if self.interval == "year" else amount


@dataclass(frozen=True)
class BillingConfig:
    """A tenant's billing settings with defaults filled in."""

    provider: str = "local"
    plans: tuple[Plan, ...] = ()
    currency: str = "USD"
    locale: str = "en"
    tax_rate: Decimal = Decimal("0")
    tax_label: str = "Tax"
    allowed_plan_changes: dict[str, list[str]] = field(default_factory=dict)
    downgrade_at_period_end: bool = True
    payment_terms_days: int = 14
    default_plan: str | None = None
    portal_features: dict[str, Any] = field(default_factory=dict)
    pause_allowed: bool = False
    pause_max_months: int = 3
    invoice_reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS

    def plan(self, plan_id: str | None) -> Plan | None:
        """A plan by id (``None`` when the tenant no longer sells it)."""
        return next((p for p in self.plans if p.id == plan_id), None)


def billing_config(tenant: Any) -> BillingConfig:
    """Parse ``tenant.settings["billing"]``; bad entries are skipped rather than breaking every page."""
    raw = (tenant.settings or {}).get("billing") or {}
    currency = str(raw.get("currency", "USD")).upper()
    plans = []
    for item in raw.get("plans", []):
        try:
            plans.append(Plan(
                id=str(item["id"]), name=str(item.get("name", item["id"])), price=int(item.get("price", 0)),
                currency=str(item.get("currency", currency)).upper(), interval=str(item.get("interval", "month")),
                limits={str(k): int(v) for k, v in (item.get("limits") or {}).items()},
                features=tuple(str(f) for f in item.get("features", [])),
                stripe_price_id=str(item.get("stripe_price_id", "")),
                description=str(item.get("description", "")),
                retired=bool(item.get("retired", False)),
                unit_prices={str(k): Decimal(str(v)) for k, v in (item.get("unit_prices") or {}).items()},
            ))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            continue
    return BillingConfig(
        provider=str(raw.get("provider", "local")),
        plans=tuple(plans),
        currency=currency,
        locale=str(raw.get("locale", "en")),
        tax_rate=Decimal(str(raw.get("tax_rate", 0))),
        tax_label=str(raw.get("tax_label", "Tax")),
        allowed_plan_changes={str(k): [str(x) for x in v] for k, v in (raw.get("allowed_plan_changes") or {}).items()},
        downgrade_at_period_end=bool(raw.get("downgrade_at_period_end", True)),
        payment_terms_days=int(raw.get("payment_terms_days", 14)),
        default_plan=raw.get("default_plan"),
        portal_features=dict(raw.get("customer_portal") or {}),
        pause_allowed=bool(raw.get("pause_allowed", False)),
        pause_max_months=max(1, min(3, int(raw.get("pause_max_months", 3)))),
        invoice_reminder_days=reminder_days(raw.get("invoice_reminder_days", DEFAULT_REMINDER_DAYS)),
    )


def reminder_days(raw: Any) -> tuple[int, ...]:
    """``invoice_reminder_days`` as sorted, distinct whole days from 1 to 365; entries that are not are skipped
    (a typo drops one reminder, not every billing page), and an empty list means no reminders."""
    values = raw if isinstance(raw, list | tuple) else [raw]
    days = set()
    for value in values:
        if isinstance(value, bool):
            continue
        try:
            day = int(value)
        except (TypeError, ValueError):
            continue
        if 1 <= day <= MAX_REMINDER_DAYS:
            days.add(day)
    return tuple(sorted(days))


def to_major(amount: int, currency: str) -> Decimal:
    """Minor units to a decimal amount (cents → dollars; yen stay yen)."""
    return Decimal(amount).scaleb(-get_currency_precision(currency.upper()))


def money(amount: int | None, currency: str, locale: str = "en") -> str:
    """``4900, "EUR"`` → ``€49.00`` in the tenant's billing locale."""
    return format_currency(to_major(amount or 0, currency), currency.upper(), locale=locale)


def limit_text(value: int | None) -> str:
    """A plan limit for people: -1 is Unlimited, thousands get separators."""
    if value is None:
        return "—"
    return "Unlimited" if value < 0 else f"{value:,}"
