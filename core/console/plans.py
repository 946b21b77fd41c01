"""The tenant's plans, kept in ``tenant.settings["billing"]["plans"]``.

This is the shape the billing plugin reads (the console and the billing plugin agree on
data only, never on code)::

    {"id": "pro", "name": "Pro", "price": 2900, "currency": "EUR", "interval": "month",
     "limits": {"seats": 10, "api_calls": -1}, "features": ["SSO", "Priority support"],
     "stripe_price_id": "price_123", "retired": false, "description": "For growing teams"}

``price`` is in minor units of ``currency`` (an upper-case ISO 4217 code; minor-unit
digits as Babel counts them, the same as the billing plugin); a limit of ``-1`` means
unlimited; ``stripe_price_id`` is ``""`` when the plan is not on Stripe. Keys the
console does not edit (set by a manifest) are kept. A plan is never deleted: retiring
it means no new subscriptions or switches to it, while organizations on it keep it.
Which plans an organization may switch to from a plan is
``settings["billing"]["allowed_plan_changes"][plan_id]`` (a list of plan ids; absent
means every other plan), as the billing plugin reads it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from core.console.service import ConsoleError, change_tenant, settings_section
from core.context import RequestContext
from core.events import Target

INTERVALS = ("month", "year")
PLAN_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LIMIT_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
MAX_PLANS = 50


def exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (JPY has none), as Babel and the billing plugin count."""
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency.upper()) if re.fullmatch(r"[A-Za-z]{3}", currency or "") else 2


def format_price(plan: dict[str, Any]) -> str:
    """``29.00 EUR / month`` for lists."""
    digits = exponent(str(plan.get("currency", "EUR")))
    amount = Decimal(int(plan.get("price", 0))) / (10 ** digits)
    return f"{amount:,.{digits}f} {str(plan.get('currency', '')).upper()} / {plan.get('interval', 'month')}"


def major_units(plan: dict[str, Any]) -> str:
    """The price as the admin typed it (``29.00``), for the edit form."""
    digits = exponent(str(plan.get("currency", "EUR")))
    return f"{Decimal(int(plan.get('price', 0))) / (10 ** digits):.{digits}f}"


async def list_plans(tenant_id: Any) -> list[dict[str, Any]]:
    """The tenant's plans as stored (active first, then retired)."""
    _settings, billing = await settings_section(tenant_id, "billing")
    plans = [p for p in billing.get("plans", []) if isinstance(p, dict)]
    return sorted(plans, key=lambda p: (bool(p.get("retired")), int(p.get("price", 0))))


async def plan_switches(tenant_id: Any) -> dict[str, list[str]]:
    """``allowed_plan_changes``: plan id → the plan ids organizations on it may switch to."""
    _settings, billing = await settings_section(tenant_id, "billing")
    changes = billing.get("allowed_plan_changes") or {}
    return {str(k): [str(x) for x in v] for k, v in changes.items() if isinstance(v, list)}


def slugify(name: str) -> str:
    """A plan id from its name (``Pro Plus`` → ``pro-plus``)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", name.lower())).strip("-")[:63]


def parse_plan(form: Any, *, existing: dict[str, Any] | None, taken_ids: set[str]) -> tuple[dict[str, Any],
                                                                                          dict[str, str]]:
    """Validate the plan form; returns the plan and errors per field."""
    errors: dict[str, str] = {}
    name = " ".join(str(form.get("name", "")).split())[:80]
    if not name:
        errors["name"] = "Give the plan a name customers will see."
    if existing is not None:
        plan_id = existing["id"]
    else:
        plan_id = str(form.get("id", "")).strip().lower() or slugify(name)
        if not PLAN_ID.match(plan_id):
            errors["id"] = "Use lower-case letters, digits and dashes (it identifies the plan for good)."
        elif plan_id in taken_ids:
            errors["id"] = f"There is already a plan with the id {plan_id}."
    currency = str(form.get("currency", "")).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors["currency"] = "Enter a three-letter currency code such as EUR or USD."
        currency = currency[:3]
    raw_price = str(form.get("price", "")).strip().replace(",", ".")
    price = 0
    try:
        amount = Decimal(raw_price or "x")
        digits = exponent(currency or "EUR")
        if amount < 0 or amount != amount.quantize(Decimal(1).scaleb(-digits)):
            raise InvalidOperation
        price = int(amount.scaleb(digits))
        if price > 10**11:
            errors["price"] = "That price is too large."
    except InvalidOperation:
        errors["price"] = (f"Enter the price like 29.00 (at most {exponent(currency or 'EUR')} decimals), "
                           "0 for a free plan.")
    interval = str(form.get("interval", "month"))
    if interval not in INTERVALS:
        errors["interval"] = "Choose monthly or yearly."
    limits: dict[str, int] = {}
    for number, line in enumerate(str(form.get("limits", "")).splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or not LIMIT_KEY.match(key):
            errors["limits"] = f"Line {number}: write one limit per line, like seats = 10."
            break
        if value in {"unlimited", "-1", "∞"}:
            limits[key] = -1
        elif value.isdigit():
            limits[key] = int(value)
        else:
            errors["limits"] = f"Line {number}: {key} needs a whole number, or 'unlimited'."
            break
    features = [" ".join(f.split())[:120] for f in str(form.get("features", "")).splitlines() if f.strip()][:30]
    stripe_price_id = str(form.get("stripe_price_id", "")).strip()
    if stripe_price_id and not re.fullmatch(r"(price|plan)_[A-Za-z0-9_]{1,120}", stripe_price_id):
        errors["stripe_price_id"] = "A Stripe price id looks like price_1Nabc… (leave empty if not on Stripe)."
    description = " ".join(str(form.get("description", "")).split())[:200]
    plan = {**(existing or {}), "id": plan_id, "name": name, "price": price, "currency": currency,
            "interval": interval, "limits": limits, "features": features, "stripe_price_id": stripe_price_id,
            "description": description, "retired": bool(existing.get("retired")) if existing else False}
    plan.pop("display_price", None)
    return plan, errors


def parse_switches(form: Any, plan_id: str, known_ids: set[str]) -> list[str] | None:
    """Plans organizations on ``plan_id`` may switch to: ``None`` for any, else the ticked ids."""
    if str(form.get("switch_mode", "any")) != "listed":
        return None
    return sorted({str(v) for v in form.getall("switch_to", [])} & known_ids - {plan_id})


async def save_plan(ctx: RequestContext, plan: dict[str, Any], switch_to: list[str] | None = None) -> bool:
    """Create or replace a plan (by id) and where it may switch to; returns True when it was new."""
    settings, billing = await settings_section(ctx.tenant.id, "billing")
    plans = [p for p in billing.get("plans", []) if isinstance(p, dict)]
    before = next((p for p in plans if p.get("id") == plan["id"]), None)
    if before is None and len(plans) >= MAX_PLANS:
        raise ConsoleError(f"A portal can have at most {MAX_PLANS} plans; retire and reuse one.")
    plans = [plan if p.get("id") == plan["id"] else p for p in plans] + ([plan] if before is None else [])
    changes = dict(billing.get("allowed_plan_changes") or {})
    previous_switches = changes.get(plan["id"])
    if switch_to is None:
        changes.pop(plan["id"], None)
    else:
        changes[plan["id"]] = switch_to
    billing = {**billing, "allowed_plan_changes": changes} if changes or "allowed_plan_changes" in billing \
        else billing
    before_event = None if before is None else {**before, "switch_to": previous_switches}
    await _write(ctx, settings, billing, plans, "console.plan.created" if before is None else "console.plan.updated",
                 {**plan, "switch_to": switch_to}, before_event)
    return before is None





async def set_retired(ctx: RequestContext, plan_id: str, retired: bool) -> dict[str, Any]:
    """Retire a plan (no new switches to it) or bring it back."""
    settings, billing = await settings_section(ctx.tenant.id, "billing")
    plans = [p for p in billing.get("plans", []) if isinstance(p, dict)]
    before = next((p for p in plans if p.get("id") == plan_id), None)
    if before is None:
        raise ConsoleError("That plan does not exist.")
    if not retired and before.get("retired") is False:
        return before
    after = {**before, "retired": retired}
    plans = [after if p.get("id") == plan_id else p for p in plans]
    await _write(ctx, settings, billing, plans, "console.plan.retired" if retired else "console.plan.restored",
                 after, before)
    return after


async def _write(ctx: RequestContext, settings: dict[str, Any], billing: dict[str, Any], plans: list[dict[str, Any]],
                 event: str, plan: dict[str, Any], before: dict[str, Any] | None) -> None:
    from core.tables import Tenant

    settings = {**settings, "billing": {**billing, "plans": plans}}
    await change_tenant(ctx, event, updates={Tenant.settings: settings}, before=before, after=plan,
                        target=Target("plan", plan["id"], str(plan.get("name", plan["id"]))))
