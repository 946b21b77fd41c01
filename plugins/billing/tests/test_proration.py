"""The invoice of a mid-period plan change on the local ledger: settled on issue by the same rule as a renewal
invoice (charged to a valid card on file, open with the payment terms otherwise), a credit never charged."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from core.db import as_utc, utcnow
from plugins.billing.service import settlement
from plugins.billing.tables import BillingCustomer, Invoice, Subscription
from plugins.billing.tests.test_local import BILLING, post, signed_in

PLUGINS = ["billing", "recorder"]


@pytest.fixture
async def billing_app(portal_app_factory, event_recorder):
    """The billing app recording the events it emits."""
    return await portal_app_factory(event_recorder, extra={"billing_pdf_workers": "0"})


def customer(**overrides):
    return {"pm_brand": "visa", "pm_last4": "4242", "pm_exp_month": 8, "pm_exp_year": 2029, "contract_terms": "",
            **overrides}


def test_one_settlement_rule_for_ledger_invoices():
    at = datetime(2027, 3, 15, 9, 30, tzinfo=UTC)
    paid = settlement(customer(), at, 4900)
    assert (paid.status, paid.paid_at, paid.payment_note) == ("paid", at, "Visa •••• 4242")
    assert settlement(customer(pm_exp_month=3, pm_exp_year=2027), at, 4900).status == "paid"  # valid to month end
    for payer in (customer(pm_exp_month=2, pm_exp_year=2027), customer(pm_last4=""), None,
                  customer(contract_terms="Net 30, bank transfer")):
        assert (settlement(payer, at, 4900).status, settlement(payer, at, 4900).paid_at) == ("open", None)
        assert settlement(payer, at, 4900).payment_note == ""
    for amount in (0, -1200):  # nothing to collect: settled, never charged to the card (nor refunded)
        for payer in (customer(), customer(contract_terms="Net 30"), None):
            assert (settlement(payer, at, amount).status, settlement(payer, at, amount).payment_note) == ("paid", "")


async def latest_invoice(tenant):
    return await Invoice.select().where(Invoice.organization == tenant.org_id).order_by(
        Invoice.issued_at, ascending=False).first()


def invoice_row(page, number):
    """The row of invoice ``number`` in the billing page's invoice table."""
    match = re.search(rf"<td>{re.escape(number)}</td>.*?</tr>", page, re.S)
    assert match, number
    return match.group(0)


async def test_upgrade_is_charged_to_a_valid_card_on_file(billing_app, billing_tenant, event_recorder):
    tenant = await billing_tenant("rocket-labs", plugins=PLUGINS)  # Visa 4242, valid
    await Subscription.update({Subscription.plan_id: "team"}).where(Subscription.organization == tenant.org_id)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "billing") as client:
        response = await post(client, org + "/plans/business", token_from=org + "/plans/business")
        flash = (await client.get(response.headers["location"])).text
        invoice = await latest_invoice(tenant)
        assert (invoice["kind"], invoice["status"], invoice["payment_note"]) == ("proration", "paid", "Visa •••• 4242")
        assert 0 < invoice["subtotal"] < 14900 - 4900 and invoice["total"] == invoice["subtotal"] + invoice["tax"]
        assert invoice["amount_paid"] == invoice["total"]
        assert as_utc(invoice["paid_at"]) == as_utc(invoice["issued_at"])
        assert "now on Business" in flash and "was charged to Visa •••• 4242" in flash
        row = invoice_row((await client.get(org)).text, invoice["number"])
        assert "badge-success" in row and ">Paid<" in row
        assert "past-due-banner" not in (await client.get(org)).text
    [created] = [e for e in event_recorder.of("billing.invoice.created", tenant.id)
                 if e.target.id == str(invoice["id"])]
    assert created.after == {"status": "paid", "total": invoice["total"], "proration": True}


async def test_upgrade_with_an_expired_card_leaves_the_invoice_open(billing_app, billing_tenant, event_recorder):
    tenant = await billing_tenant("anvil-works", plugins=PLUGINS)  # Starter, card expired 03/2024
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        response = await post(client, org + "/plans/team", token_from=org + "/plans/team")
        flash = (await client.get(response.headers["location"])).text
        invoice = await latest_invoice(tenant)
        assert (invoice["kind"], invoice["status"], invoice["payment_note"]) == ("proration", "open", "")
        assert invoice["paid_at"] is None and invoice["amount_paid"] == 0 and invoice["total"] > 0
        assert as_utc(invoice["due_at"]) == as_utc(invoice["issued_at"]) + timedelta(days=14)
        assert f"Invoice {invoice['number']}" in flash and f"due on {as_utc(invoice['due_at']):%d %b %Y}" in flash
        row = invoice_row((await client.get(org)).text, invoice["number"])
        assert ">Open<" in row
    [created] = [e for e in event_recorder.of("billing.invoice.created", tenant.id)
                 if e.target.id == str(invoice["id"])]
    assert created.after["status"] == "open"


async def test_contract_customer_upgraded_by_the_ledger_gets_an_open_invoice(billing_app, billing_tenant):
    from core.context import CurrentOrganization, system_context
    from plugins.billing.plans import billing_config
    from plugins.billing.providers import LocalProvider

    tenant = await billing_tenant("rocket-labs", plugins=PLUGINS)
    await BillingCustomer.update({BillingCustomer.contract_terms: "Net 30, bank transfer"}).where(
        BillingCustomer.organization == tenant.org_id)  # card still valid: the contract decides
    await Subscription.update({Subscription.plan_id: "team"}).where(Subscription.organization == tenant.org_id)
    runtime = billing_app.state.portal
    record = runtime.directory.get(tenant.id)
    org = CurrentOrganization(tenant.org_id, tenant.org_slug, f"Org {tenant.slug}")
    await LocalProvider().change_plan(system_context(runtime, record, organization=org), org,
                                      billing_config(record).plan("business"))
    invoice = await latest_invoice(tenant)
    assert (invoice["kind"], invoice["status"], invoice["payment_note"]) == ("proration", "open", "")


async def test_downgrade_applied_at_once_credits_without_charging(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs", plugins=PLUGINS, downgrade_at_period_end=False)  # on Business
    org = BILLING.format(org=tenant.org_slug)
    count = await Invoice.count().where(Invoice.organization == tenant.org_id)
    async with signed_in(billing_app, tenant) as client:
        preview = await client.get(org + "/plans/team")
        assert 'data-testid="due-today">€0.00' in preview.text
        response = await post(client, org + "/plans/team", token_from=org + "/plans/team")
        flash = (await client.get(response.headers["location"])).text
        assert "now on Team" in flash and "charged" not in flash
        credit = await latest_invoice(tenant)
        assert credit["kind"] == "proration" and credit["total"] < 0
        assert (credit["status"], credit["amount_paid"], credit["payment_note"]) == ("paid", 0, "")
        assert await Invoice.count().where(Invoice.organization == tenant.org_id) == count + 1
        # nothing open, nothing overdue later, nothing to retry
        page = (await client.get(org)).text
        assert "past-due-banner" not in page and ">Paid<" in invoice_row(page, credit["number"])
        retry = await post(client, org + "/retry", token_from=org)
        assert "no overdue invoice" in (await client.get(retry.headers["location"])).text
        pdf = await client.get(f"{org}/invoices/{credit['id']}/pdf")
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True).stdout.decode()
        assert "Nothing to pay" in text and "Paid in full" not in text
    assert (await Subscription.select().where(Subscription.organization == tenant.org_id).first())["plan_id"] == "team"
    assert as_utc(credit["paid_at"]) <= utcnow()
