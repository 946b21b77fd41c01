"""Billing tables: the local copy every billing page reads.

``BillingCustomer`` and ``Subscription`` are one row per organization; ``Invoice`` rows
are the ledger (LocalProvider) or the mirror of Stripe invoices (StripeProvider).
``source_created`` holds the ``created`` time of the newest Stripe event applied to a
row (on the customer: its card; ``details_source_created``: its billing details), so an
older event arriving late never rolls it back. A pause runs from ``pause_starts_at`` (the
end of the period already paid) to ``pause_resumes_at``; a pause with ``pause_starts_at`` and no
``pause_resumes_at`` runs until someone resumes it (Stripe's ``pause_collection`` without
``resumes_at``). An invoice's ``kind`` says what wrote it (``renewal`` for the renewal job's period
invoices, ``proration`` for a local plan change's invoice, empty for the rest); open ``renewal`` and
``proration`` invoices are reminded of, and ``reminder_days`` is the last reminder step sent for it (0: none),
the claim that keeps a reminder from going out twice. ``StripeAccount`` keeps a tenant's Stripe keys
encrypted; ``StripeEvent`` makes each webhook event apply once.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from core.tables import Organization, Tenant


class BillingCustomer(Table, tablename="billing_customer"):
    """Who pays for an organization: billing details, payment method and, for contracts, the terms."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, unique=True)
    stripe_customer_id = Varchar(length=100, null=True, default=None, index=True)
    company_name = Varchar(length=200, default="")
    billing_email = Varchar(length=320, default="")
    address_line1 = Varchar(length=200, default="")
    address_line2 = Varchar(length=200, default="")
    postal_code = Varchar(length=20, default="")
    city = Varchar(length=100, default="")
    country = Varchar(length=2, default="")
    tax_id = Varchar(length=40, default="")
    po_number = Varchar(length=60, default="")
    pm_brand = Varchar(length=30, default="")
    pm_last4 = Varchar(length=4, default="")
    pm_exp_month = Integer(default=0)
    pm_exp_year = Integer(default=0)
    pm_id = Varchar(length=100, default="")
    contract_terms = Text(default="")
    source_created = BigInt(default=0)
    details_source_created = BigInt(default=0)
    updated_at = Timestamptz()


class Subscription(Table, tablename="billing_subscription"):
    """An organization's plan and where it is in its billing period."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, unique=True)
    plan_id = Varchar(length=63)
    status = Varchar(length=20, default="active")
    cancel_at_period_end = Boolean(default=False)
    cancel_reason = Varchar(length=40, default="")
    cancel_feedback = Text(default="")
    pending_plan_id = Varchar(length=63, null=True, default=None)
    current_period_start = Timestamptz()
    current_period_end = Timestamptz()
    canceled_at = Timestamptz(null=True, default=None)
    pause_starts_at = Timestamptz(null=True, default=None)
    pause_resumes_at = Timestamptz(null=True, default=None)
    stripe_subscription_id = Varchar(length=100, null=True, default=None, index=True)
    source_created = BigInt(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Invoice(Table, tablename="billing_invoice"):
    """An invoice: amounts in minor units of ``currency``; ``lines`` is a list of {description, quantity,
    unit_amount, amount, period_start, period_end}."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, index=True)
    number = Varchar(length=60)
    status = Varchar(length=20, default="open")
    currency = Varchar(length=3)
    subtotal = BigInt(default=0)
    tax = BigInt(default=0)
    tax_rate = Varchar(length=10, default="0")
    total = BigInt(default=0)
    amount_paid = BigInt(default=0)
    lines = JSON(default=[])
    period_start = Timestamptz(null=True, default=None)
    period_end = Timestamptz(null=True, default=None)
    issued_at = Timestamptz()
    due_at = Timestamptz(null=True, default=None)
    paid_at = Timestamptz(null=True, default=None)
    hosted_url = Varchar(length=500, default="")
    payment_note = Varchar(length=200, default="")
    stripe_invoice_id = Varchar(length=100, null=True, default=None, index=True)
    source_created = BigInt(default=0)
    kind = Varchar(length=20, default="")
    reminder_days = Integer(default=0)
    reminded_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class StripeAccount(Table, tablename="billing_stripe_account"):
    """A tenant's Stripe connection: secret key and webhook secrets encrypted with the platform key."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, unique=True)
    secret_key = Text()
    webhook_secrets = Text(default="")
    api_base = Varchar(length=300, default="")
    portal_configuration = Varchar(length=100, default="")
    updated_at = Timestamptz()


class StripeEvent(Table, tablename="billing_stripe_event"):
    """A received webhook event: stored once per (tenant, event id) for idempotency and replay."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    event_id = Varchar(length=100)
    type = Varchar(length=100)
    created = BigInt(default=0)
    payload = JSON(default={})
    outcome = Varchar(length=30, default="processed")
    received_at = Timestamptz()


BILLING_TABLES: list[type[Table]] = [BillingCustomer, Subscription, Invoice, StripeAccount, StripeEvent]
