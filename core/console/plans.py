"""The tenant's plans, kept in ``tenant.settings["billing"]["plans"]``.

This is the shape the billing plugin reads (the console and the billing plugin agree on
data only, never on code)::

    {"id": "pro", "name": "Pro", "price": 2900, "currency": "EUR", "interval": "month",
     "limits": {"seats": 10, "api_calls": -1}, "features": ["SSO", "Priority support"],
     "stripe_price_id": "price_123", "retired": false, "description": "For growing teams",
     "unit_prices": {"api_calls": 0.0005, "seats": 9}}

``price`` is in minor units of ``currency`` (an upper-case ISO 4217 code; minor-unit
digits as Babel counts them, the same as the billing plugin); a limit of ``-1`` means
unlimited; ``stripe_price_id`` is ``""`` when the plan is not on Stripe. ``unit_prices`` (absent
when there are none) is the price of one unit over the plan's limit per usage metric, in major
units of ``currency`` (at most 6 decimals), stored as JSON numbers like a manifest writes them;
billing hands them to the usage page's projected bill (``portal_billing_summaries``). Keys the
console does not edit (set by a manifest) are kept. A plan is never deleted: retiring
it means no new subscriptions or switches to it, while organizations on it keep it.
Which plans an organization may switch to from a plan is
``settings["billing"]["allowed_plan_changes"][plan_id]`` (a list of plan ids; absent
means every other plan), as the billing plugin reads it.

The metric keys the editor offers for unit prices are the ones the tenant's sections meter
(``portal_usage_metrics``, asked for one organization: every organization of a tenant has the
same metrics, only the numbers differ); any key with the grammar of a limit key is accepted,
so a price can be set before the metric is configured.
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
UNIT_PRICE_FIELD = re.compile(r"^unit_prices-(\d{1,3})-(?:metric|price|remove)$")
UNIT_PRICE_NUMBER = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
UNIT_PRICE_DECIMALS = 6
MAX_UNIT_PRICE = Decimal(1_000_000)
MAX_UNIT_PRICES = 30


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


def unit_price_text(value: Any) -> str:
    """A stored unit price as the admin would type it (``0.0005``, ``9``; never ``5E-4``)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return format(amount.normalize(), "f") if amount.is_finite() else str(value)


def unit_price_rows_of(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The plan's stored unit prices as editor rows (``metric``, ``price``, ``remove``)."""
    prices = (plan or {}).get("unit_prices") or {}
    if not isinstance(prices, dict):
        return []
    return [{"metric": str(k), "price": unit_price_text(v), "remove": False} for k, v in prices.items()]


def unit_price_rows(form: Any) -> list[dict[str, Any]]:
    """The unit-price rows as submitted, in form order, blank ones dropped.

    Rows are ``unit_prices-<n>-metric`` / ``-price`` / ``-remove`` fields; the same list is
    validated and, on a mistake, shown again, so errors keyed by row position line up.
    """
    indexes = sorted({int(match.group(1)) for key in form if (match := UNIT_PRICE_FIELD.match(str(key)))})
    rows = []
    for index in indexes:
        metric = str(form.get(f"unit_prices-{index}-metric", "")).strip().lower()[:64]
        price = str(form.get(f"unit_prices-{index}-price", "")).strip()[:40]
        if metric or price:
            rows.append({"metric": metric, "price": price,
                         "remove": bool(form.get(f"unit_prices-{index}-remove"))})
    return rows


def parse_unit_prices(rows: list[dict[str, Any]], stored: Any) -> tuple[dict[str, int | float], dict[str, str]]:
    """Validate the unit-price rows; returns ``{metric: price}`` and errors keyed ``unit_prices-<row>-<field>``.

    Rows ticked for removal are dropped unchecked. A price is a non-negative decimal in major units
    with at most 6 decimals; one the plan already has is kept as stored even with more (a manifest
    may set finer prices), so editing another field never forces a price change.
    """
    stored = stored if isinstance(stored, dict) else {}
    prices: dict[str, int | float] = {}
    errors: dict[str, str] = {}
    for position, row in enumerate(rows):
        if row["remove"]:
            continue
        metric, text = row["metric"], row["price"].replace(",", ".")
        field = f"unit_prices-{position}"
        if not metric:
            errors[f"{field}-metric"] = "Choose the usage metric this price is for."
        elif not LIMIT_KEY.match(metric):
            errors[f"{field}-metric"] = ("Use a metric key: lower-case letters, digits and _ (like api_calls), "
                                         "starting with a letter.")
        elif any(metric == other["metric"] and not other["remove"] for other in rows[:position]):
            errors[f"{field}-metric"] = f"{metric} already has a price above; keep one row per metric."
        amount = _unit_price(text, stored.get(metric))
        if isinstance(amount, str):
            errors[f"{field}-price"] = amount
        elif f"{field}-metric" not in errors:
            prices[metric] = stored[metric] if metric in stored and _same(stored[metric], amount) \
                else _json_number(amount)
    if len(prices) > MAX_UNIT_PRICES:
        errors["unit_prices"] = f"A plan can price at most {MAX_UNIT_PRICES} metrics."
    return prices, errors


def _unit_price(text: str, stored: Any) -> Decimal | str:
    """The price typed in a row, or the message saying what is wrong with it."""
    example = "like 0.0005 (per unit, in the plan's currency)"
    if not text:
        return f"Enter a price {example}, or tick Remove."
    if text.startswith("-") and UNIT_PRICE_NUMBER.match(text[1:]):
        return "A unit price cannot be negative; use 0 to include the usage for free."
    if not UNIT_PRICE_NUMBER.match(text):
        return f"Enter a number {example}."
    amount = Decimal(text)
    if amount > MAX_UNIT_PRICE:
        return "That unit price is too large."
    if amount != amount.quantize(Decimal(1).scaleb(-UNIT_PRICE_DECIMALS)) and not _same(stored, amount):
        return f"Use at most {UNIT_PRICE_DECIMALS} decimals, like 0.000125."
    return amount


def _same(stored: Any, amount: Decimal) -> bool:
    try:
        return stored is not None and not isinstance(stored, bool) and Decimal(str(stored)) == amount
    except InvalidOperation:
        return False


def _json_number(amount: Decimal) -> int | float:
    """The JSON number a manifest would hold (exact: at most 13 significant digits survive a float)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


async def metric_choices(ctx: RequestContext) -> dict[str, str]:
    """Metric key → label of what the tenant's sections meter, to offer as unit-price keys.

    Asks ``portal_usage_metrics`` for the tenant's oldest organization (the metrics are the
    tenant's; only the numbers are per organization). Empty when the tenant has no organization
    yet or no section meters anything; the editor then takes typed keys alone.
    """
    from core.context import CurrentOrganization
    from core.contracts import UsageMetric
    from core.tables import Organization

    org = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.tenant == ctx.tenant.id).order_by(Organization.created_at).first()
    if org is None:
        return {}
    results = await ctx.runtime.plugins.call("portal_usage_metrics", tenant=ctx.tenant, ctx=ctx,
                                             org=CurrentOrganization(org["id"], org["slug"], org["name"]))
    choices: dict[str, str] = {}
    for _slug, metrics in results:
        for metric in metrics if isinstance(metrics, list | tuple) else []:
            if isinstance(metric, UsageMetric) and LIMIT_KEY.match(metric.key):
                choices.setdefault(metric.key, metric.label or metric.key)
    return dict(sorted(choices.items()))


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
    if "unit_prices_form" in form:  # only a form that showed the unit prices may change them
        unit_prices, price_errors = parse_unit_prices(unit_price_rows(form), (existing or {}).get("unit_prices"))
        errors.update(price_errors)
        if unit_prices:
            plan["unit_prices"] = unit_prices
        else:
            plan.pop("unit_prices", None)
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
