"""Reminders for renewal invoices left open, delivered through the outbox to a real SMTP server (aiosmtpd): one
mail per step per invoice, none once paid, none twice under concurrent runs, each tenant and organization alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from core.context import CurrentOrganization, system_context
from core.db import as_utc, utcnow
from core.tables import Membership, Notification, Organization, OutboxMessage, User
from core.testing import deliver_outbox
from plugins.billing.plans import DEFAULT_REMINDER_DAYS, reminder_days
from plugins.billing.reminders import remind_open_invoices
from plugins.billing.renewals import renew_due
from plugins.billing.service import create_invoice
from plugins.billing.tables import BillingCustomer, Invoice, Subscription
from plugins.billing.tests.test_local import BILLING, post, signed_in

PLUGINS = ["billing", "recorder"]


@pytest.fixture
async def billing_app(portal_app_factory, smtp_inbox, event_recorder):
    """The billing app mailing through aiosmtpd (not the dev outbox) and recording the events it emits."""
    return await portal_app_factory(event_recorder, mail_backend="smtp", smtp_port=smtp_inbox.port,
                                    extra={"billing_pdf_workers": "0"})


async def open_renewal(app, tenant):
    """Renew a contract organization (bank transfer: the invoice stays open) the way the job does; returns the
    new invoice."""
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    end = as_utc(sub["current_period_end"])
    assert (await renew_due(app.state.portal, end + timedelta(minutes=1), tenant.id)).invoiced == 1
    invoice = await Invoice.select().where(Invoice.organization == tenant.org_id).order_by(
        Invoice.issued_at, ascending=False).first()
    assert (invoice["status"], invoice["kind"], as_utc(invoice["issued_at"])) == ("open", "renewal", end)
    return invoice


def text_of(message):
    return message.get_body(("plain",)).get_content()


def test_reminder_days_setting_is_parsed_leniently():
    assert DEFAULT_REMINDER_DAYS == (3, 7)
    assert reminder_days([7, "3", 3, 0, -2, "x", 400, True, None]) == (3, 7)
    assert reminder_days(5) == (5,)
    assert reminder_days([]) == ()


async def test_one_reminder_per_step_with_amount_due_date_and_invoice_link(billing_app, billing_tenant, smtp_inbox,
                                                                         event_recorder):
    tenant = await billing_tenant("springfield-power", plugins=PLUGINS)
    runtime = billing_app.state.portal
    invoice = await open_renewal(billing_app, tenant)
    issued, due = as_utc(invoice["issued_at"]), as_utc(invoice["due_at"])
    owner, payer = tenant.email("owner"), tenant.email("billing")

    early = await remind_open_invoices(runtime, issued + timedelta(days=3, minutes=-1), tenant.id)
    assert early.invoices == 0
    first = await remind_open_invoices(runtime, issued + timedelta(days=3, minutes=1), tenant.id)
    assert (first.invoices, first.mails) == (1, 2)
    assert (await remind_open_invoices(runtime, issued + timedelta(days=3, hours=1), tenant.id)).invoices == 0
    await deliver_outbox(billing_app)
    for role in ("admin", "member", "viewer"):
        assert smtp_inbox.to(tenant.email(role)) == []
    [to_owner], [to_payer] = smtp_inbox.to(owner), smtp_inbox.to(payer)
    subject = f"Reminder: invoice {invoice['number']} for Org {tenant.slug} (€177.31) is due on {due:%d %b %Y}"
    assert to_owner["Subject"] == to_payer["Subject"] == subject
    link = f"http://{tenant.host}/o/{tenant.org_slug}/billing/invoices/{invoice['id']}/pdf"
    text, html = text_of(to_owner), to_owner.get_body(("html",)).get_content()
    assert "€177.31" in text and f"due on {due:%d %b %Y}" in text and link in text and link in html
    assert f"http://{tenant.host}/o/{tenant.org_slug}/billing" in text.splitlines()

    second = await remind_open_invoices(runtime, issued + timedelta(days=7, minutes=1), tenant.id)
    assert (second.invoices, second.mails) == (1, 2)
    later = await remind_open_invoices(runtime, issued + timedelta(days=40), tenant.id)
    assert later.invoices == 0  # both steps sent; overdue now, but there is no third step
    await deliver_outbox(billing_app)
    assert len(smtp_inbox.to(owner)) == len(smtp_inbox.to(payer)) == 2

    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert row["reminder_days"] == 7 and row["reminded_at"] is not None
    events = event_recorder.of("billing.invoice.reminder_sent", tenant.id)
    assert [(e.before, e.after, e.data["recipients"]) for e in events] == [
        ({"reminder_days": 0}, {"reminder_days": 3}, 2), ({"reminder_days": 3}, {"reminder_days": 7}, 2)]
    assert all(e.target.id == str(invoice["id"]) for e in events)
    owner_id = (await User.select(User.id).where(User.tenant == tenant.id, User.email == owner).first())["id"]
    assert await Notification.count().where(Notification.user == owner_id) == 2
    # the link in the mail opens the invoice for the person it was sent to
    async with signed_in(billing_app, tenant, "billing") as client:
        pdf = await client.get(link.removeprefix(f"http://{tenant.host}"))
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"


async def test_a_late_run_sends_only_the_latest_step_and_says_overdue(billing_app, billing_tenant, smtp_inbox):
    tenant = await billing_tenant("springfield-power", plugins=PLUGINS)
    runtime = billing_app.state.portal
    invoice = await open_renewal(billing_app, tenant)
    now = as_utc(invoice["issued_at"]) + timedelta(days=20)  # past both steps and the 14-day due date
    report = await remind_open_invoices(runtime, now, tenant.id)
    assert (report.invoices, report.mails) == (1, 2)
    assert (await remind_open_invoices(runtime, now + timedelta(days=1), tenant.id)).invoices == 0
    await deliver_outbox(billing_app)
    [message] = smtp_inbox.to(tenant.email("owner"))
    assert message["Subject"] == f"Overdue: invoice {invoice['number']} for Org {tenant.slug} (€177.31)"
    assert f"was due on {as_utc(invoice['due_at']):%d %b %Y} and is now overdue" in text_of(message)


async def test_paying_the_invoice_stops_its_reminders(billing_app, billing_tenant, smtp_inbox):
    tenant = await billing_tenant("anvil-works", plugins=PLUGINS, invoice_reminder_days=[3, 7, 14])
    runtime = billing_app.state.portal
    # the demo's overdue renewal invoice (issued 9 days ago, due after 7) and one more that is not due yet
    overdue = await Invoice.select().where(Invoice.organization == tenant.org_id, Invoice.status == "open").first()
    issued = as_utc(overdue["issued_at"])
    ctx = system_context(runtime, runtime.directory.get(tenant.id),
                         organization=CurrentOrganization(tenant.org_id, tenant.org_slug, f"Org {tenant.slug}"))
    unpaid = await create_invoice(ctx, tenant.org_id, [{"description": "Seats", "quantity": 1, "unit_amount": 1000,
                                                        "amount": 1000}], "EUR", issued_at=issued,
                                  due_at=utcnow() + timedelta(days=30), kind="renewal")
    now = utcnow()
    first = await remind_open_invoices(runtime, now, tenant.id)
    assert (first.invoices, first.mails) == (2, 4)
    await deliver_outbox(billing_app)
    assert len(smtp_inbox.to(tenant.email("owner"))) == 2
    # the payer updates the card and pays what is overdue
    await BillingCustomer.update({BillingCustomer.pm_exp_year: now.year + 2}).where(
        BillingCustomer.organization == tenant.org_id)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "billing") as client:
        response = await post(client, org + "/retry", token_from=org)
        assert "Paid" in (await client.get(response.headers["location"])).text
    assert (await Invoice.select(Invoice.status).where(Invoice.id == overdue["id"]).first())["status"] == "paid"
    # the 14-day step: the unpaid invoice is reminded of, the paid one is not
    third = await remind_open_invoices(runtime, issued + timedelta(days=14, minutes=1), tenant.id)
    assert (third.invoices, third.mails) == (1, 2)
    await deliver_outbox(billing_app)
    subjects = [m["Subject"] for m in smtp_inbox.to(tenant.email("owner"))]
    assert len(subjects) == 3 and unpaid["number"] in subjects[-1]
    assert sum(overdue["number"] in s for s in subjects) == 1
    assert (await Invoice.select().where(Invoice.id == overdue["id"]).first())["reminder_days"] == 7


async def test_concurrent_runs_send_each_reminder_once(billing_app, billing_tenant, smtp_inbox, event_recorder):
    tenant = await billing_tenant("springfield-power", plugins=PLUGINS)
    runtime = billing_app.state.portal
    invoice = await open_renewal(billing_app, tenant)
    now = as_utc(invoice["issued_at"]) + timedelta(days=3, minutes=1)
    reports = await asyncio.gather(*(remind_open_invoices(runtime, now, tenant.id) for _ in range(3)))
    assert sorted(r.invoices for r in reports) == [0, 0, 1]
    queued = await OutboxMessage.count().where(
        OutboxMessage.dedupe_key.like(f"billing:invoice_reminder:{invoice['id']}:%"))
    assert queued == 2
    assert len(event_recorder.of("billing.invoice.reminder_sent", tenant.id)) == 1
    await deliver_outbox(billing_app)
    assert len(smtp_inbox.to(tenant.email("owner"))) == len(smtp_inbox.to(tenant.email("billing"))) == 1


async def add_organization(tenant, runtime):
    """A second organization in the tenant with its own owner and an open renewal invoice."""
    now = utcnow()
    org = Organization(id=uuid.uuid4(), tenant=tenant.id, slug=f"second-{tenant.slug}", name="Second Org",
                       created_at=now)
    user = User(id=uuid.uuid4(), tenant=tenant.id, email=f"boss@second-{tenant.slug}.example", name="Boss",
                created_at=now)
    await Organization.insert(org)
    await User.insert(user)
    await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant.id, organization=org.id, user=user.id,
                                       role="owner", created_at=now))
    ctx = system_context(runtime, runtime.directory.get(tenant.id),
                         organization=CurrentOrganization(org.id, org.slug, org.name))
    return org, user, ctx


async def test_each_tenant_and_organization_hears_only_of_its_own_invoices(billing_app, billing_tenant, smtp_inbox):
    first = await billing_tenant("springfield-power", plugins=PLUGINS)
    second = await billing_tenant("springfield-power", plugins=PLUGINS, invoice_reminder_days=[10])
    silent = await billing_tenant("springfield-power", plugins=PLUGINS, invoice_reminder_days=[])
    runtime = billing_app.state.portal
    mine = await open_renewal(billing_app, first)
    theirs = await open_renewal(billing_app, second)
    await open_renewal(billing_app, silent)
    issued = as_utc(mine["issued_at"])
    other_org, other_owner, ctx = await add_organization(first, runtime)
    neighbour = await create_invoice(ctx, other_org.id, [{"description": "Plan", "quantity": 1, "unit_amount": 4900,
                                                          "amount": 4900}], "EUR", issued_at=issued, kind="renewal")

    day7 = issued + timedelta(days=7, minutes=1)
    report = await remind_open_invoices(runtime, day7, first.id)
    assert (report.invoices, report.mails) == (2, 3)  # two contacts of the first organization, one of the other
    assert (await remind_open_invoices(runtime, day7, second.id)).invoices == 0  # its step is 10 days
    assert (await remind_open_invoices(runtime, issued + timedelta(days=60), silent.id)).invoices == 0
    assert (await Invoice.select().where(Invoice.id == theirs["id"]).first())["reminder_days"] == 0
    await deliver_outbox(billing_app)
    [to_owner] = smtp_inbox.to(first.email("owner"))
    assert mine["number"] in to_owner["Subject"] and neighbour["number"] not in to_owner["Subject"]
    [to_other] = smtp_inbox.to(other_owner.email)
    assert neighbour["number"] in to_other["Subject"] and "Second Org" in to_other["Subject"]
    assert f"http://{first.host}/o/{other_org.slug}/billing/invoices/{neighbour['id']}/pdf" in text_of(to_other)
    assert smtp_inbox.to(second.email("owner")) == [] and smtp_inbox.to(silent.email("owner")) == []

    later = await remind_open_invoices(runtime, as_utc(theirs["issued_at"]) + timedelta(days=10, minutes=1),
                                       second.id)
    assert (later.invoices, later.mails) == (1, 2)
    await deliver_outbox(billing_app)
    [to_second] = smtp_inbox.to(second.email("owner"))
    assert theirs["number"] in to_second["Subject"]
    assert f"http://{second.host}/o/{second.org_slug}/billing/invoices/{theirs['id']}/pdf" in text_of(to_second)
    assert len(smtp_inbox.to(first.email("owner"))) == 1


async def test_an_upgrade_left_open_is_reminded_of_once_per_step(billing_app, billing_tenant, smtp_inbox,
                                                                 event_recorder):
    tenant = await billing_tenant("anvil-works", plugins=PLUGINS)  # Starter, the card on file expired
    runtime = billing_app.state.portal
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        await post(client, org + "/plans/team", token_from=org + "/plans/team")
    upgrade = await Invoice.select().where(Invoice.organization == tenant.org_id, Invoice.kind == "proration").first()
    assert upgrade["status"] == "open"
    issued = as_utc(upgrade["issued_at"])

    def reminded():
        return [(e.before, e.after) for e in event_recorder.of("billing.invoice.reminder_sent", tenant.id)
                if e.target.id == str(upgrade["id"])]

    await remind_open_invoices(runtime, issued + timedelta(hours=2), tenant.id)  # the demo's overdue renewal only
    assert reminded() == []
    early = await remind_open_invoices(runtime, issued + timedelta(days=3, minutes=-1), tenant.id)
    assert early.invoices == 0
    first = await remind_open_invoices(runtime, issued + timedelta(days=3, minutes=1), tenant.id)
    assert (first.invoices, first.mails) == (1, 2)
    assert (await remind_open_invoices(runtime, issued + timedelta(days=3, hours=1), tenant.id)).invoices == 0
    assert reminded() == [({"reminder_days": 0}, {"reminder_days": 3})]
    await deliver_outbox(billing_app)
    for role in ("owner", "billing"):
        [message] = [m for m in smtp_inbox.to(tenant.email(role)) if upgrade["number"] in m["Subject"]]
        amount = f"€{upgrade['total'] / 100:.2f}"
        assert message["Subject"] == (f"Reminder: invoice {upgrade['number']} for Org {tenant.slug} ({amount}) "
                                      f"is due on {as_utc(upgrade['due_at']):%d %b %Y}")
    assert (await Invoice.select().where(Invoice.id == upgrade["id"]).first())["reminder_days"] == 3
