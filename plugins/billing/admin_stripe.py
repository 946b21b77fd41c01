"""The tenant console's Stripe connection, without HTTP: keys, webhook secret rotation, test, Customer Portal.

A tenant admin connects the tenant's own Stripe account at ``/admin/billing`` (routes in
``admin.py``). Keys are stored exactly as ``portal billing connect-stripe`` stores them
(``stripe_provider.connect``: encrypted with the platform key); the rotation helpers here
write the webhook secrets in that same encrypted format. Secrets never leave this module
in full: pages get ``sk_test_…abcd`` and events get counts and modes only.

The Customer Portal configuration (which features, the business profile, the return URL on
the tenant's own domain) is kept in the tenant's ``settings["billing"]["customer_portal"]``
(read by ``plans.billing_config`` as ``portal_features``) and pushed to Stripe as a
``billing_portal.configuration`` whose id ``StripeProvider`` then uses for every session.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import stripe

from core.console.service import bump_version, settings_section
from core.context import RequestContext
from core.db import atomic, is_sqlite, utcnow
from core.events import Target, emit
from core.tables import Organization, Tenant
from plugins.billing.plans import billing_config
from plugins.billing.service import customer_of, ensure_customer
from plugins.billing.stripe_provider import client_for, connect, stripe_account
from plugins.billing.tables import BillingCustomer, StripeAccount, Subscription

SECRET_KEY = re.compile(r"^(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,247}$")
WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9_+/=-]{8,200}$")
MAX_WEBHOOK_SECRETS = 3
WEBHOOK_PATH = "/billing/webhooks/stripe"
WEBHOOK_EVENTS = (
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_failed", "invoice.voided",
    "customer.updated", "payment_method.attached", "payment_method.detached",
)
"""What ``webhooks.apply_event`` handles: the events to select when adding the endpoint in Stripe."""

PORTAL_FEATURES = (
    ("payment_method_update", "Update payment method", "Customers add or replace their card."),
    ("invoice_history", "Invoice history", "Customers see and download their past invoices."),
    ("subscription_cancel", "Cancel subscription", "Customers cancel on Stripe's page (a reason is asked)."),
    ("subscription_update", "Switch plan", "Customers move between your plans that have a Stripe price id."),
)
CANCEL_MODES = {"at_period_end": "At the end of the billing period", "immediately": "Immediately"}
CANCELLATION_REASONS = ["too_expensive", "missing_features", "switched_service", "unused", "other"]
HEADLINE_MAX = 60


class AdminError(ValueError):
    """A change the console refuses: ``errors`` maps form fields to messages (``""`` is the whole form)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def mask(secret: str) -> str:
    """``sk_test_…abcd``: the kind of secret and its last four characters, enough to recognise it."""
    prefix = secret.split("_")[0] + "_"
    for mode in ("test_", "live_"):
        if secret[len(prefix):].startswith(mode):
            prefix += mode
    return f"{prefix}…{secret[-4:]}"


def fingerprint(secret: str) -> str:
    """A short stable name for a stored secret (what the "remove" button posts; the secret can't be derived)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def key_mode(secret_key: str) -> str:
    """``test`` or ``live``."""
    return "live" if "_live_" in secret_key[:8] else "test"


def secret_key_error(value: str) -> str | None:
    """Why a pasted secret key is not one (``None`` when its format is right)."""
    if not value:
        return "Paste your Stripe secret key."
    if value.startswith("pk_"):
        return "That is the publishable key (pk_…). Paste the secret key (sk_…) or a restricted key (rk_…)."
    if value.startswith("whsec_"):
        return "That is a webhook signing secret. Paste it in the webhook secret field below."
    if not SECRET_KEY.match(value):
        return ("A Stripe secret key starts with sk_test_, sk_live_, rk_test_ or rk_live_ "
                "followed by letters and digits.")
    return None


def webhook_secret_error(value: str) -> str | None:
    """Why a pasted webhook signing secret is not one (``None`` when its format is right)."""
    if not value:
        return "Paste the webhook signing secret (whsec_…)."
    if not WEBHOOK_SECRET.match(value):
        return "A webhook signing secret starts with whsec_ (Stripe shows it under the endpoint's 'Signing secret')."
    return None


@dataclass(frozen=True)
class Connection:
    """What the console shows of a tenant's connection: never a secret in full."""

    secret_key: str
    mode: str
    restricted: bool
    webhook_secrets: list[tuple[str, str]]  # (fingerprint, masked), oldest first
    api_base: str
    portal_configuration: str
    updated_at: Any
    unreadable: bool = False


async def load_account(ctx: RequestContext) -> dict[str, Any] | None:
    """``stripe_provider.stripe_account``, except that keys the platform can no longer decrypt (its
    ``PORTAL_SECRET_KEY`` changed) come back empty with ``unreadable`` set, so the console can ask for
    them again instead of failing."""
    try:
        account = await stripe_account(ctx)
    except ValueError:
        row = await StripeAccount.select().where(StripeAccount.tenant == ctx.tenant.id).first()
        return {**row, "secret_key": "", "webhook_secrets": [], "unreadable": True}
    return None if account is None else {**account, "unreadable": False}


async def connection(ctx: RequestContext) -> Connection | None:
    """The tenant's connection as the console shows it (``None`` when not connected)."""
    account = await load_account(ctx)
    if account is None:
        return None
    key = account["secret_key"]
    return Connection(mask(key) if key else "", key_mode(key), key.startswith("rk_"),
                      [(fingerprint(s), mask(s)) for s in account["webhook_secrets"]],
                      account["api_base"], account["portal_configuration"], account["updated_at"],
                      account["unreadable"])


def default_api_base(ctx: RequestContext) -> str:
    """Stripe's API unless the platform operator points every new connection elsewhere
    (``PORTAL_BILLING_STRIPE_API_BASE``, for staging and tests); tenants never choose it."""
    return str(ctx.runtime.settings.extra.get("billing_stripe_api_base", "")).strip()


async def connect_account(ctx: RequestContext, secret_key: str, webhook_secret: str) -> None:
    """Connect (or replace the key of) the tenant's Stripe account through the CLI's storage function.

    The webhook secret may be left empty when already connected: the stored ones are kept.
    """
    secret_key, webhook_secret = secret_key.strip(), webhook_secret.strip()
    account = await load_account(ctx)
    errors = {}
    if problem := secret_key_error(secret_key):
        errors["secret_key"] = problem
    needs_webhook_secret = bool(webhook_secret) or account is None or not account["webhook_secrets"]
    if needs_webhook_secret and (problem := webhook_secret_error(webhook_secret)):
        errors["webhook_secret"] = problem
    if errors:
        raise AdminError(errors)
    if account is None:
        secrets, api_base, portal_configuration = [webhook_secret], default_api_base(ctx), ""
    else:
        kept = [s for s in account["webhook_secrets"] if s != webhook_secret]
        secrets = [webhook_secret] if webhook_secret else kept
        api_base, portal_configuration = account["api_base"], account["portal_configuration"]
    await connect(ctx, secret_key, secrets, api_base, portal_configuration)


async def _store_webhook_secrets(ctx: RequestContext, account: dict[str, Any], secrets: list[str], change: str
                                 ) -> None:
    """Write the secrets encrypted exactly as ``stripe_provider.connect`` does, with the rotation event."""
    async with atomic():
        await StripeAccount.update({
            StripeAccount.webhook_secrets: ctx.runtime.secrets.encrypt(json.dumps(secrets)),
            StripeAccount.updated_at: utcnow()}).where(StripeAccount.id == account["id"],
                                                       StripeAccount.tenant == ctx.tenant.id)
        await emit(ctx, "billing.stripe.secret_rotated", target=_target(ctx),
                   before={"webhook_secrets": len(account["webhook_secrets"])},
                   after={"webhook_secrets": len(secrets), "change": change})


def _target(ctx: RequestContext) -> Target:
    return Target("stripe_account", str(ctx.tenant.id), f"Stripe account of {ctx.tenant.name}")


UNREADABLE = ("The stored Stripe keys can no longer be read (the platform's encryption key changed). "
              "Paste your secret key and webhook secret again.")


async def _connected(ctx: RequestContext) -> dict[str, Any]:
    account = await load_account(ctx)
    if account is None:
        raise AdminError({"": "Stripe is not connected yet. Connect it first."})
    if account["unreadable"]:
        raise AdminError({"": UNREADABLE})
    return account


async def add_webhook_secret(ctx: RequestContext, secret: str) -> None:
    """Accept a second signing secret while Stripe rolls the endpoint's secret (both verify until removed)."""
    secret = secret.strip()
    account = await _connected(ctx)
    if problem := webhook_secret_error(secret):
        raise AdminError({"new_webhook_secret": problem})
    if secret in account["webhook_secrets"]:
        raise AdminError({"new_webhook_secret": "This webhook secret is already stored."})
    if len(account["webhook_secrets"]) >= MAX_WEBHOOK_SECRETS:
        raise AdminError({"new_webhook_secret": f"At most {MAX_WEBHOOK_SECRETS} webhook secrets are kept: "
                                                "remove the old one first."})
    await _store_webhook_secrets(ctx, account, [*account["webhook_secrets"], secret], "added")


async def remove_webhook_secret(ctx: RequestContext, secret_fingerprint: str) -> None:
    """Drop a secret Stripe no longer signs with; the last one stays (disconnect instead)."""
    account = await _connected(ctx)
    kept = [s for s in account["webhook_secrets"] if fingerprint(s) != secret_fingerprint]
    if len(kept) == len(account["webhook_secrets"]):
        raise AdminError({"": "That webhook secret is no longer stored (the page was out of date)."})
    if not kept:
        raise AdminError({"": "This is the only webhook secret: without it no Stripe event would be accepted. "
                              "Add the new secret first, or disconnect Stripe."})
    await _store_webhook_secrets(ctx, account, kept, "removed")


async def disconnect(ctx: RequestContext) -> None:
    """Forget the keys: Stripe is no longer called and webhooks for this tenant are refused (404)."""
    account = await load_account(ctx)
    if account is None:
        raise AdminError({"": "Stripe is not connected yet. Connect it first."})
    async with atomic():
        await StripeAccount.delete().where(StripeAccount.id == account["id"], StripeAccount.tenant == ctx.tenant.id)
        await emit(ctx, "billing.stripe.disconnected", target=_target(ctx),
                   before={"mode": key_mode(account["secret_key"]) if account["secret_key"] else "unreadable",
                           "webhook_secrets": len(account["webhook_secrets"]),
                           "portal_configuration": account["portal_configuration"]})


# -- test connection ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionCheck:
    """The answer of "Test connection", in words a reseller understands."""

    ok: bool
    message: str
    detail: str = ""


def explain(exc: stripe.StripeError) -> str:
    """A Stripe error as advice (Stripe's own message is shown next to it)."""
    if isinstance(exc, stripe.AuthenticationError):
        return ("Stripe did not accept this secret key. Copy it again from Stripe (Developers → API keys); "
                "it may have been rolled, revoked, or belong to another account.")
    if isinstance(exc, stripe.PermissionError):
        return ("Stripe accepted the key, but it may not read customers. Give the restricted key access to "
                "Customers, Subscriptions, Invoices and the Customer portal.")
    if isinstance(exc, stripe.APIConnectionError):
        return "We could not reach Stripe. Try again in a minute; if it keeps failing, check status.stripe.com."
    if isinstance(exc, stripe.RateLimitError):
        return "Stripe asked us to slow down. Wait a minute and test again."
    return "Stripe answered with an error."


def _stripe_message(exc: stripe.StripeError) -> str:
    message = exc.user_message or str(exc) or exc.__class__.__name__
    return str(message).strip()[:300]


async def check_connection(ctx: RequestContext) -> ConnectionCheck:
    """Read one customer with the tenant's key through its own ``StripeClient``; name the account when allowed."""
    account = await load_account(ctx)
    if account is None:
        return ConnectionCheck(False, "Stripe is not connected yet. Connect it first.")
    if account["unreadable"]:
        return ConnectionCheck(False, UNREADABLE)
    client = client_for(account)
    try:
        customers = await anyio.to_thread.run_sync(lambda: client.v1.customers.list(params={"limit": 1}))
    except stripe.StripeError as exc:
        return ConnectionCheck(False, explain(exc), _stripe_message(exc))
    name = ""
    try:  # the account's name tells the admin it is the right account; restricted keys may not read it
        current = await anyio.to_thread.run_sync(lambda: client.v1.accounts.retrieve_current())
        profile = current.to_dict().get("business_profile") or {}
        name = str(profile.get("name") or current.to_dict().get("email") or current.id)
    except stripe.StripeError:
        name = ""
    mode = "live" if key_mode(account["secret_key"]) == "live" else "test"
    where = f" to {name}" if name else ""
    more = "" if not customers.data else " It already has customers."
    return ConnectionCheck(True, f"Connected{where} in {mode} mode: Stripe accepted the key and customers can be read."
                            f"{more}")


# -- webhook URL -------------------------------------------------------------------------------------------

def webhook_url(ctx: RequestContext) -> str:
    """The endpoint to paste into Stripe: the tenant's primary domain over HTTPS (``public_url`` if set)."""
    configured = str(ctx.tenant.settings.get("public_url") or "").rstrip("/")
    if configured:
        return configured + WEBHOOK_PATH
    return f"https://{ctx.tenant.primary_host or 'your-portal.example.com'}{WEBHOOK_PATH}"


# -- Customer Portal ---------------------------------------------------------------------------------------

@dataclass
class PortalSettings:
    """The tenant's Customer Portal choices (as stored in ``settings["billing"]["customer_portal"]``)."""

    payment_method_update: bool = True
    invoice_history: bool = True
    subscription_cancel: bool = False
    cancel_mode: str = "at_period_end"
    subscription_update: bool = False
    headline: str = ""
    privacy_policy_url: str = ""
    terms_of_service_url: str = ""
    return_url: str = ""
    configuration_id: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """What goes into the tenant's settings (errors left out)."""
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


def portal_settings(ctx: RequestContext) -> PortalSettings:
    """The saved choices, with a return URL on the primary domain by default."""
    raw = billing_config(ctx.tenant).portal_features
    known = {k: raw[k] for k in PortalSettings.__dataclass_fields__ if k in raw and k != "errors"}
    settings = PortalSettings(**known)
    if not settings.return_url:
        settings.return_url = default_return_url(ctx)
    return settings


def default_return_url(ctx: RequestContext) -> str:
    """Where Stripe's page sends customers back: the portal's home on its primary domain."""
    configured = str(ctx.tenant.settings.get("public_url") or "").rstrip("/")
    return (configured or f"https://{ctx.tenant.primary_host}") + "/"


def _url_error(value: str, *, own_hosts: tuple[str, ...] | None, production: bool) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "Enter a full address starting with https://."
    if parts.scheme != "https" and production:
        return "Use an https:// address."
    if own_hosts is not None and parts.hostname.lower() not in own_hosts:
        return "Use one of your portal's own domains: " + ", ".join(own_hosts) + "."
    return None


def parse_portal(ctx: RequestContext, form: Any) -> PortalSettings:
    """Read the Customer Portal form; ``errors`` says what to fix, field by field."""
    production = bool(ctx.runtime.settings.production)
    draft = PortalSettings()
    for name, _label, _hint in PORTAL_FEATURES:
        setattr(draft, name, form.get(name) in ("1", "on", "true"))
    draft.cancel_mode = str(form.get("cancel_mode") or "at_period_end")
    draft.headline = str(form.get("headline") or "").strip()
    for name in ("privacy_policy_url", "terms_of_service_url", "return_url"):
        setattr(draft, name, str(form.get(name) or "").strip())
    if draft.cancel_mode not in CANCEL_MODES:
        draft.errors["cancel_mode"] = "Choose when a cancellation takes effect."
    if not any(getattr(draft, name) for name, _label, _hint in PORTAL_FEATURES):
        draft.errors["features"] = "Choose at least one thing customers may do on Stripe's page."
    if len(draft.headline) > HEADLINE_MAX:
        draft.errors["headline"] = f"Keep the headline to {HEADLINE_MAX} characters (it has {len(draft.headline)})."
    if not draft.return_url:
        draft.errors["return_url"] = "Enter the address customers return to, on your portal's domain."
    elif problem := _url_error(draft.return_url, own_hosts=tuple(ctx.tenant.hosts), production=production):
        draft.errors["return_url"] = problem
    for name in ("privacy_policy_url", "terms_of_service_url"):
        value = getattr(draft, name)
        if value and (problem := _url_error(value, own_hosts=None, production=True)):
            draft.errors[name] = problem
    if draft.subscription_update and not [p for p in billing_config(ctx.tenant).plans
                                          if p.stripe_price_id and not p.retired]:
        draft.errors["subscription_update"] = ("None of your plans has a Stripe price id yet: add them on the Plans "
                                               "page, or leave plan switching to your portal.")
    return draft


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def _products(ctx: RequestContext, client: stripe.StripeClient) -> list[dict[str, Any]]:
    """The tenant's offered plans as Stripe products with their prices (what "switch plan" may move between)."""
    mode = (ctx.tenant.settings.get("billing") or {}).get("price_mode", "price")
    by_product: dict[str, list[str]] = {}
    for plan in billing_config(ctx.tenant).plans:
        if not plan.stripe_price_id or plan.retired:
            continue
        service = client.v1.plans if mode == "plan" else client.v1.prices
        price = (await _call(service.retrieve, plan.stripe_price_id)).to_dict()
        product = price["product"] if isinstance(price["product"], str) else price["product"]["id"]
        by_product.setdefault(product, []).append(plan.stripe_price_id)
    return [{"product": product, "prices": prices} for product, prices in by_product.items()]


def portal_params(ctx: RequestContext, draft: PortalSettings, products: list[dict[str, Any]], *,
                  updating: bool = False) -> dict[str, Any]:
    """The ``billing_portal.configurations`` parameters for the tenant's choices."""
    cancel: dict[str, Any] = {"enabled": draft.subscription_cancel}
    if draft.subscription_cancel:
        cancel.update(mode=draft.cancel_mode, cancellation_reason={"enabled": True, "options": CANCELLATION_REASONS})
    update: dict[str, Any] = {"enabled": draft.subscription_update}
    if draft.subscription_update:
        update.update(default_allowed_updates=["price"], proration_behavior="create_prorations", products=products)
    profile = {k: getattr(draft, k) for k in ("headline", "privacy_policy_url", "terms_of_service_url")
               if getattr(draft, k) or updating}  # an empty value clears it on an existing configuration
    return {
        "business_profile": profile,
        "default_return_url": draft.return_url,
        "features": {"payment_method_update": {"enabled": draft.payment_method_update},
                     "invoice_history": {"enabled": draft.invoice_history},
                     "subscription_cancel": cancel, "subscription_update": update},
        "metadata": {"portal_tenant": ctx.tenant.slug},
    }


async def configure_portal(ctx: RequestContext, draft: PortalSettings) -> PortalSettings:
    """Push the choices to Stripe (create or update the configuration), then save them locally with the id.

    Stripe first: when it refuses, nothing is written and its answer is the form's error.
    """
    if draft.errors:
        raise AdminError(draft.errors)
    account = await _connected(ctx)
    client = client_for(account)
    service = client.v1.billing_portal.configurations
    existing = account["portal_configuration"]  # the one sessions use: update it in place
    try:
        products = await _products(ctx, client) if draft.subscription_update else []
        try:
            configuration = None
            if existing:
                configuration = await _call(service.update, existing,
                                            params=portal_params(ctx, draft, products, updating=True))
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":  # deleted in Stripe, or made with another account's key
                raise
        if configuration is None:
            configuration = await _call(service.create, params=portal_params(ctx, draft, products))
    except stripe.StripeError as exc:
        raise AdminError({"": f"{explain(exc)} Stripe said: {_stripe_message(exc)}"}) from exc
    draft.configuration_id = str(configuration.id)
    after = draft.stored()
    async with atomic():
        settings, billing = await settings_section(ctx.tenant.id, "billing")
        before = dict(billing.get("customer_portal") or {})
        billing["customer_portal"] = after
        await bump_version(ctx.tenant.id, {Tenant.settings: {**settings, "billing": billing}})
        await StripeAccount.update({StripeAccount.portal_configuration: draft.configuration_id,
                                    StripeAccount.updated_at: utcnow()}).where(StripeAccount.id == account["id"])
        changed = [k for k in after if before.get(k) != after.get(k)]
        await emit(ctx, "billing.stripe.portal_configured", target=_target(ctx),
                   before={k: before.get(k) for k in changed}, after={k: after[k] for k in changed})
    ctx.runtime.directory.invalidate()
    return draft


# -- billing through Stripe --------------------------------------------------------------------------------

PROVIDERS = {"local": "your portal's ledger", "stripe": "Stripe"}


async def set_provider(ctx: RequestContext, provider: str) -> bool:
    """Switch the tenant's billing provider (``settings["billing"]["provider"]``); ``False`` when unchanged.

    Turning Stripe on first runs "Test connection" with the stored key, so a tenant never sends its
    customers to a Stripe account that refuses the key; turning it off is always allowed (also after a
    disconnect). Only organizations linked to a Stripe customer (and not on contract) follow: ``provider_for``.
    """
    if provider not in PROVIDERS:
        raise AdminError({"provider": "Choose Stripe or your portal's ledger."})
    if provider == "stripe":
        try:
            await _connected(ctx)
        except AdminError as exc:
            raise AdminError({"provider": exc.errors[""]}) from exc
        check = await check_connection(ctx)
        if not check.ok:
            detail = f" Stripe said: “{check.detail}”" if check.detail else ""
            raise AdminError({"provider": "The connection test failed, so billing stays on your portal's ledger. "
                                          f"{check.message}{detail}"})
    async with atomic():
        settings, billing = await settings_section(ctx.tenant.id, "billing")
        before = str(billing.get("provider") or "local")
        if before == provider:
            return False
        billing["provider"] = provider
        await bump_version(ctx.tenant.id, {Tenant.settings: {**settings, "billing": billing}})
        await emit(ctx, "billing.provider.changed", target=Target("tenant", str(ctx.tenant.id), ctx.tenant.name),
                   before={"provider": before}, after={"provider": provider})
    ctx.runtime.directory.invalidate()
    return True


# -- linking organizations to Stripe customers -------------------------------------------------------------

ORGS_PER_PAGE = 25
LINK_BATCH = 25
"""How many customers one "link all" click creates (one Stripe call each); the page offers the rest again."""


@dataclass(frozen=True)
class OrgLink:
    """One organization as the "Link organizations" table shows it."""

    id: Any
    slug: str
    name: str
    stripe_customer_id: str
    contract: bool
    billing_email: str
    plan: str

    @property
    def state(self) -> str:
        """``contract`` (stays on the ledger), ``linked`` or ``unlinked``."""
        if self.contract:
            return "contract"
        return "linked" if self.stripe_customer_id else "unlinked"


@dataclass(frozen=True)
class OrgLinks:
    """A page of the tenant's organizations with the counts over all of them."""

    rows: list[OrgLink]
    page: int
    pages: int
    total: int
    linked: int
    contract: int

    @property
    def unlinked(self) -> int:
        """Organizations that would stay on the ledger after switching to Stripe."""
        return self.total - self.linked - self.contract


async def organization_links(ctx: RequestContext, page: int = 1) -> OrgLinks:
    """The tenant's organizations by name with their Stripe link, contract state and plan."""
    tenant_id = ctx.tenant.id
    customers = {c["organization"]: c for c in await BillingCustomer.select(
        BillingCustomer.organization, BillingCustomer.stripe_customer_id, BillingCustomer.contract_terms,
        BillingCustomer.billing_email).where(BillingCustomer.tenant == tenant_id)}
    total = await Organization.count().where(Organization.tenant == tenant_id)
    contract = sum(1 for c in customers.values() if c["contract_terms"])
    linked = sum(1 for c in customers.values() if c["stripe_customer_id"] and not c["contract_terms"])
    pages = max(1, -(-total // ORGS_PER_PAGE))
    page = min(max(1, page), pages)
    orgs = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.tenant == tenant_id).order_by(Organization.name).order_by(Organization.id).limit(
        ORGS_PER_PAGE).offset((page - 1) * ORGS_PER_PAGE)
    plans = {}
    if orgs:
        config = billing_config(ctx.tenant)
        for sub in await Subscription.select(Subscription.organization, Subscription.plan_id).where(
                Subscription.tenant == tenant_id, Subscription.organization.is_in([o["id"] for o in orgs])):
            plan = config.plan(sub["plan_id"])
            plans[sub["organization"]] = plan.name if plan else sub["plan_id"]
    rows = []
    for org in orgs:
        customer = customers.get(org["id"]) or {}
        rows.append(OrgLink(org["id"], org["slug"], org["name"], customer.get("stripe_customer_id") or "",
                            bool(customer.get("contract_terms")), customer.get("billing_email") or "",
                            plans.get(org["id"], "")))
    return OrgLinks(rows, page, pages, total, linked, contract)


def idempotency_key(org_id: Any) -> str:
    """One key per organization: a retried or double click is answered by Stripe with the customer it
    already made (Stripe scopes keys to the account and keeps them 24 hours; after that the local link
    written on success is what prevents a second customer)."""
    return f"portal-customer-{org_id}"


def customer_params(ctx: RequestContext, org: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    """The Stripe customer of an organization: its billing details (what ``sync_details`` keeps up to date)."""
    address = {k: customer[column] for k, column in (("line1", "address_line1"), ("line2", "address_line2"),
                                                     ("postal_code", "postal_code"), ("city", "city"),
                                                     ("country", "country")) if customer[column]}
    metadata = {"portal_tenant": ctx.tenant.slug, "portal_organization": str(org["id"]),
                "portal_organization_slug": org["slug"]}
    metadata.update({k: customer[k] for k in ("tax_id", "po_number") if customer.get(k)})
    params: dict[str, Any] = {"name": customer["company_name"] or org["name"], "metadata": metadata}
    if customer["billing_email"]:
        params["email"] = customer["billing_email"]
    if address:
        params["address"] = address
    return params


@dataclass(frozen=True)
class LinkResult:
    """What one link did: the customer id and whether this call wrote the link."""

    name: str
    customer_id: str
    linked_now: bool


async def _organization(ctx: RequestContext, org_id: Any) -> dict[str, Any]:
    try:
        org_uuid = org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id))
    except ValueError:
        org_uuid = None
    row = None if org_uuid is None else await Organization.select(
        Organization.id, Organization.slug, Organization.name).where(
        Organization.tenant == ctx.tenant.id, Organization.id == org_uuid).first()
    if row is None:
        raise AdminError({"": "That organization is not one of your portal's (the page may be out of date)."})
    return row


async def link_organization(ctx: RequestContext, org_id: Any, account: dict[str, Any] | None = None) -> LinkResult:
    """Create the organization's customer in the tenant's Stripe account and link it, at most once.

    Already linked: nothing is called. Contract customers are refused (they stay on the ledger).
    The Stripe call carries the organization's idempotency key and the link is written only where
    none is stored, so two clicks, two tabs or a retry after a timeout end with one customer and
    one ``billing.customer.linked`` event.
    """
    account = account or await _connected(ctx)
    org = await _organization(ctx, org_id)
    async with atomic():  # one billing row per organization even when two requests race
        if not is_sqlite():
            await Organization.select(Organization.id).where(Organization.id == org["id"]).lock_rows()
        customer = await ensure_customer(ctx, org["id"], org["name"])
    if customer["contract_terms"]:
        raise AdminError({"": f"{org['name']} is billed on contract terms and stays on your portal's ledger."})
    if customer["stripe_customer_id"]:
        return LinkResult(org["name"], customer["stripe_customer_id"], False)
    client = client_for(account)
    try:
        created = await _call(client.v1.customers.create, params=customer_params(ctx, org, customer),
                              options={"idempotency_key": idempotency_key(org["id"])})
    except stripe.IdempotencyError as exc:
        raise AdminError({"": f"{org['name']}: its billing details changed while Stripe was creating its customer. "
                              "Check its customers in Stripe, then try again tomorrow or link it with "
                              "“portal billing link”."}) from exc
    except stripe.StripeError as exc:
        raise AdminError({"": f"{org['name']}: {explain(exc)} Stripe said: {_stripe_message(exc)}"}) from exc
    async with atomic():
        written = await BillingCustomer.update({BillingCustomer.stripe_customer_id: str(created.id),
                                                BillingCustomer.updated_at: utcnow()}).where(
            BillingCustomer.id == customer["id"], BillingCustomer.tenant == ctx.tenant.id,
            BillingCustomer.stripe_customer_id.is_null() | (BillingCustomer.stripe_customer_id == ""),
        ).returning(BillingCustomer.id)
        if written:
            await emit(ctx, "billing.customer.linked", organization_id=org["id"],
                       target=Target("billing_customer", str(customer["id"]), org["name"]),
                       before={"stripe_customer_id": None}, after={"stripe_customer_id": str(created.id)})
    if not written:  # a concurrent request linked it first: report what is stored
        stored = await customer_of(ctx.tenant.id, org["id"])
        return LinkResult(org["name"], (stored or {}).get("stripe_customer_id") or str(created.id), False)
    return LinkResult(org["name"], str(created.id), True)


@dataclass(frozen=True)
class BulkLink:
    """What "link all" did."""

    linked: int
    remaining: int


async def link_all(ctx: RequestContext) -> BulkLink:
    """Create Stripe customers for unlinked, non-contract organizations, ``LINK_BATCH`` per click.

    Stops at the first refusal (a revoked key would refuse every one): its message is the page's error.
    """
    account = await _connected(ctx)
    linked_or_contract = {c["organization"] for c in await BillingCustomer.select(BillingCustomer.organization).where(
        BillingCustomer.tenant == ctx.tenant.id,
        (BillingCustomer.contract_terms != "") | (BillingCustomer.stripe_customer_id.is_not_null()
                                                  & (BillingCustomer.stripe_customer_id != "")))}
    waiting = [o["id"] for o in await Organization.select(Organization.id).where(
        Organization.tenant == ctx.tenant.id).order_by(Organization.name) if o["id"] not in linked_or_contract]
    if not waiting:
        raise AdminError({"": "Every organization is already linked (or on contract terms)."})
    done = 0
    for org_id in waiting[:LINK_BATCH]:
        try:
            result = await link_organization(ctx, org_id, account)
        except AdminError as exc:
            if done:
                exc.errors[""] = f"{done} organization(s) linked, then: {exc.errors['']}"
            raise
        done += int(result.linked_now)
    return BulkLink(done, max(0, len(waiting) - LINK_BATCH))


def dashboard_base(connection: Connection | None) -> str:
    """Where the page links a customer id in Stripe's dashboard (none against a test server)."""
    if connection is None or connection.api_base or connection.unreadable:
        return ""
    return "https://dashboard.stripe.com/" + ("test/" if connection.mode == "test" else "")
