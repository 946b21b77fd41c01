"""The outbox and mail: nothing leaves for a rolled-back change, SMTP delivery, retries, dedupe, dev outbox."""

from __future__ import annotations

import asyncio

import pytest

from core.context import system_context
from core.db import atomic
from core.mail import send_mail
from core.outbox import MAX_ATTEMPTS, OutboxWorker, enqueue
from core.tables import DevMail, OutboxMessage
from core.testing import client_for, deliver_outbox, login


async def _ctx(app, tenant):
    return system_context(app.state.portal, app.state.portal.directory.lookup(tenant.host))


async def test_branded_mail_is_delivered_over_smtp_with_tenant_links(portal_app_factory, make_tenant, smtp_inbox):
    inbox = smtp_inbox
    app = await portal_app_factory(mail_backend="smtp", smtp_port=inbox.port)
    tenant = await make_tenant(branding={"product_name": "Mailer Cloud", "sender_email": "hello@mailer.example",
                                         "primary_color": "#aa3300"})
    ctx = await _ctx(app, tenant)
    async with atomic():
        await send_mail(ctx, "someone@example.com", "notice", "Your portal says hi", heading="Hi",
                        message="A generic notice.", action_path="/account", action_label="Open your account")
    worker = OutboxWorker(app.state.portal.outbox_handlers, app)
    assert await worker.run_once() == 1
    [message] = inbox.messages
    assert message["To"] == "someone@example.com"
    assert message["From"] == "Mailer Cloud <hello@mailer.example>"
    assert message["Subject"] == "Your portal says hi"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"http://{tenant.host}/account" in text
    assert "Mailer Cloud" in html and "#aa3300" in html
    assert await worker.run_once() == 0  # sent once, never twice


async def test_rolled_back_change_sends_nothing(portal_app, make_tenant):
    tenant = await make_tenant()
    ctx = await _ctx(portal_app, tenant)
    with pytest.raises(RuntimeError):
        async with atomic():
            await send_mail(ctx, "nobody@example.com", "notice", "never sent", heading="x", message="y",
                            dedupe_key=f"rb-{tenant.slug}")
            raise RuntimeError("the change failed")
    assert not await OutboxMessage.exists().where(OutboxMessage.dedupe_key == f"rb-{tenant.slug}")


async def test_failures_are_retried_with_backoff_then_given_up(portal_app, make_tenant):
    tenant = await make_tenant()
    attempts = []

    async def flaky(payload, **_):
        attempts.append(payload)
        raise ConnectionError("smtp down")

    worker = OutboxWorker({"test.flaky": flaky}, portal_app)
    await enqueue("test.flaky", {"n": 1}, tenant_id=tenant.id, dedupe_key=f"flaky-{tenant.slug}")
    assert await worker.run_once() == 1
    row = await OutboxMessage.select().where(OutboxMessage.dedupe_key == f"flaky-{tenant.slug}").first()
    assert row["status"] == "pending" and row["attempts"] == 1 and "smtp down" in row["last_error"]
    assert await worker.run_once() == 0  # not due yet: back-off
    await OutboxMessage.update({OutboxMessage.attempts: MAX_ATTEMPTS - 1,
                                OutboxMessage.next_attempt_at: row["created_at"]}).where(OutboxMessage.id == row["id"])
    assert await worker.run_once() == 1
    row = await OutboxMessage.select().where(OutboxMessage.id == row["id"]).first()
    assert row["status"] == "failed"


async def test_dedupe_key_enqueues_once(portal_database):
    assert await enqueue("test.once", {}, dedupe_key="only-once-key") is True
    assert await enqueue("test.once", {}, dedupe_key="only-once-key") is False
    assert await OutboxMessage.count().where(OutboxMessage.dedupe_key == "only-once-key") == 1


async def test_two_workers_never_deliver_the_same_message_twice(portal_app, make_tenant):
    tenant = await make_tenant()
    delivered = []

    async def slow(payload, **_):
        await asyncio.sleep(0.01)
        delivered.append(payload["n"])

    for n in range(10):
        await enqueue("test.slow", {"n": n}, tenant_id=tenant.id)
    workers = [OutboxWorker({"test.slow": slow}, portal_app) for _ in range(2)]
    await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(delivered) == list(range(10))


async def test_dev_outbox_page_shows_sent_mail(portal_app, make_tenant):
    tenant = await make_tenant(branding={"product_name": "Dev Mail Co"})
    ctx = await _ctx(portal_app, tenant)
    async with atomic():
        await send_mail(ctx, tenant.email("owner"), "notice", "Look at me in the dev outbox", heading="Dev",
                        message="Shown in the dev outbox.")
    await deliver_outbox(portal_app)
    assert await DevMail.exists().where(DevMail.subject == "Look at me in the dev outbox")
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = await client.get("/_dev/mail")
    assert page.status_code == 200 and "Look at me in the dev outbox" in page.text


async def test_notifications_bell_counts_unread(portal_app, make_tenant):
    from core.notifications import notify
    from core.tables import User

    tenant = await make_tenant()
    owner = await User.select(User.id).where(User.email == tenant.email("owner")).first()
    await notify(tenant.id, owner["id"], "Invoice paid", body="Thanks!", link="/account")
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        account = await client.get("/account")
        assert 'data-testid="unread-count">1<' in account.text
        listing = await client.get("/notifications")
        assert "Invoice paid" in listing.text
        from core.testing import form_post

        await form_post(client, "/notifications/read", {}, token_from="/notifications")
        assert "unread-count" not in (await client.get("/account")).text
