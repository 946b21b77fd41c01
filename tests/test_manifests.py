"""Tenant manifests: idempotent apply with a change report; malformed files name file, key and reason."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from core.db import atomic, load_json
from core.manifests import ManifestError, apply_manifest, parse_manifest
from core.security import Passwords
from core.tables import Membership, Organization, Tenant, TenantDomain, User

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, body: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


MINIMAL = """
    slug = "{slug}"
    name = "Minimal"
    domains = ["{slug}.example.test", "www.{slug}.example.test"]
    [branding]
    primary_color = "#123456"
    [[users]]
    email = "Boss@{slug}.example"
    name = "Boss"
    password = "long-enough-password"
    [[organizations]]
    slug = "first"
    name = "First"
    members = [{{ email = "boss@{slug}.example", role = "owner" }}]
"""


async def test_apply_twice_changes_nothing_the_second_time(portal_database, tmp_path):
    path = write(tmp_path, MINIMAL.format(slug="idem"))
    passwords = Passwords("test")
    first = await apply_manifest(parse_manifest(path), tmp_path, passwords)
    assert "created tenant idem" in first.changes and "added domain idem.example.test" in first.changes
    second = await apply_manifest(parse_manifest(path), tmp_path, passwords)
    assert second.changes == []
    tenant = await Tenant.select().where(Tenant.slug == "idem").first()
    primary = await TenantDomain.select().where(TenantDomain.tenant == tenant["id"], TenantDomain.is_primary.eq(True))
    assert [d["hostname"] for d in primary] == ["idem.example.test"]
    assert await User.exists().where(User.email == "boss@idem.example")


async def test_changes_are_reported(portal_database, tmp_path):
    passwords = Passwords("test")
    await apply_manifest(parse_manifest(write(tmp_path, MINIMAL.format(slug="chg"))), tmp_path, passwords)
    changed = MINIMAL.format(slug="chg").replace('"#123456"', '"#654321"').replace(
        ', "www.chg.example.test"', "").replace('role = "owner"', 'role = "owner" }, '
                                               '{ email = "boss@chg.example", role = "owner"')
    report = await apply_manifest(parse_manifest(write(tmp_path, changed)), tmp_path, passwords)
    assert "updated tenant chg: branding" in report.changes
    assert "removed domain www.chg.example.test" in report.changes


async def test_reapplying_keeps_what_the_console_changed(portal_database, tmp_path):
    """The operator's files seed a tenant; re-applying them never undoes a reseller's console work."""
    import uuid

    from core.db import utcnow

    passwords = Passwords("test")
    body = MINIMAL.format(slug="kept") + '\n    [settings.billing]\n    provider = "local"\n' \
        '    [settings.usage]\n    timezone = "UTC"\n'
    path = write(tmp_path, body)
    await apply_manifest(parse_manifest(path), tmp_path, passwords)
    tenant = await Tenant.select().where(Tenant.slug == "kept").first()
    # what the console records when a tenant admin changes colours, billing and domains
    await Tenant.update({
        Tenant.branding: {"primary_color": "#0f766e"},
        Tenant.settings: {"billing": {"provider": "stripe"}, "usage": {"timezone": "UTC"}},
        Tenant.console_owned: ["branding", "settings.billing", "domains.primary"],
    }).where(Tenant.id == tenant["id"])
    await TenantDomain.update({TenantDomain.is_primary: False}).where(TenantDomain.tenant == tenant["id"])
    await TenantDomain.update({TenantDomain.is_primary: True}).where(TenantDomain.hostname == "www.kept.example.test")
    await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant["id"], hostname="portal.kept-brand.test",
                                           is_primary=False, verified=True, source="console", created_at=utcnow()))

    changed_usage = body.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"')
    report = await apply_manifest(parse_manifest(write(tmp_path, changed_usage)), tmp_path, passwords)
    assert report.changes == ["updated tenant kept: settings"]
    assert report.kept == ["branding", "settings.billing", "domain portal.kept-brand.test"]
    row = await Tenant.select().where(Tenant.id == tenant["id"]).first()
    settings = load_json(row["settings"])
    assert settings == {"billing": {"provider": "stripe"}, "usage": {"timezone": "Europe/Berlin"}}
    assert load_json(row["branding"]) == {"primary_color": "#0f766e"}
    domains = {d["hostname"]: d["is_primary"] for d in await TenantDomain.select().where(
        TenantDomain.tenant == tenant["id"])}
    assert domains == {"kept.example.test": False, "www.kept.example.test": True, "portal.kept-brand.test": False}

    reset = await apply_manifest(parse_manifest(path), tmp_path, passwords, reset_console=True)
    assert "removed domain portal.kept-brand.test" in reset.changes and reset.kept == []
    row = await Tenant.select().where(Tenant.id == tenant["id"]).first()
    assert load_json(row["settings"])["billing"] == {"provider": "local"}
    assert load_json(row["branding"]) == {"primary_color": "#123456"} and load_json(row["console_owned"]) == []
    primary = await TenantDomain.select(TenantDomain.hostname).where(
        TenantDomain.tenant == tenant["id"], TenantDomain.is_primary.eq(True))
    assert primary == [{"hostname": "kept.example.test"}]
    assert (await apply_manifest(parse_manifest(path), tmp_path, passwords)).changes == []


@pytest.mark.parametrize(("body", "reason"), [
    ('slug = "x"\nname = "X"\ndomains = ["x.test"]\ncolour = "red"', "`colour`"),
    ('slug = "Bad Slug"\nname = "X"\ndomains = ["x.test"]', "`slug`: use lower-case"),
    ('slug = "x"\nname = "X"\ndomains = ["not a host"]', "`domains[0]`"),
    ('slug = "x"\nname = "X"\ndomains = ["x.test"]\n[branding]\nprimary_color = "red"', "`branding.primary_color`"),
    ('slug = "x"\nname = "X"\ndomains = ["x.test"]\ntheme = "nope"', "`theme`: no theme 'nope'"),
    ('slug = "x"\nname = "X"\ndomains = ["x.test"]\n[[users]]\nemail = "a@x"\n[[organizations]]\nslug = "o"\n'
     'name = "O"\nmembers = [{ email = "a@x", role = "emperor" }]', "`organizations[0].members[0].role`"),
    ('slug = "x"\nname = "X"\ndomains = ["x.test"]\n[[organizations]]\nslug = "o"\nname = "O"\n'
     'members = [{ email = "ghost@x", role = "owner" }]', "ghost@x is not listed under [[users]]"),
    ('slug = "x"\nname = 5\ndomains = ["x.test"]', "$.name"),
    ("slug = ", "not valid TOML"),
])
def test_malformed_manifest_names_file_key_and_reason(tmp_path, body, reason):
    path = write(tmp_path, body, "broken.toml")
    with pytest.raises(ManifestError) as error:
        parse_manifest(path, {"default", "harbor"})
    assert str(path) in str(error.value) and reason in str(error.value)


async def test_failed_apply_leaves_nothing_half_written(portal_database, tmp_path):
    passwords = Passwords("test")
    await apply_manifest(parse_manifest(write(tmp_path, MINIMAL.format(slug="owner1"), "a.toml")), tmp_path, passwords)
    thief = MINIMAL.format(slug="thief").replace(
        '"thief.example.test", ', '"thief.example.test", "owner1.example.test", ')
    with pytest.raises(ManifestError, match="owner1.example.test already belongs to another tenant"):
        await apply_manifest(parse_manifest(write(tmp_path, thief, "b.toml")), tmp_path, passwords)
    assert not await Tenant.exists().where(Tenant.slug == "thief")
    assert not await User.exists().where(User.email == "boss@thief.example")


async def test_demo_manifests_apply_and_seed(portal_database, portal_settings, tmp_path):
    from core.seeding import apply_path

    demo = tmp_path / "tenants"
    shutil.copytree(REPO / "tenants", demo)
    reports = await apply_path(portal_settings, demo, seed_demo=True)
    assert {r.tenant for r in reports} == {"acme", "globex"}
    again = await apply_path(portal_settings, demo, seed_demo=True)
    assert all(r.changes == [] for r in again)
    acme = await Tenant.select().where(Tenant.slug == "acme").first()
    assert acme["logo_type"] == "image/svg+xml"
    roles = {r["role"] for r in await Membership.select(Membership.role).where(Membership.tenant == acme["id"])}
    assert roles == {"owner", "admin", "billing", "member", "viewer"}
    assert await Organization.count().where(Organization.tenant == acme["id"]) >= 2


async def test_the_console_owns_the_settings_keys_it_changed_not_their_section(portal_database, tmp_path):
    """A plan edited in the console stays; the manifest still sets the rest of ``[settings.billing]``."""
    from core.console.service import bump_version

    passwords = Passwords("test")
    body = MINIMAL.format(slug="keys") + '\n    [settings.billing]\n    provider = "local"\n' \
        '    invoice_reminder_days = [3, 7]\n    plans = [{ id = "team", name = "Team", price = 49 }]\n'
    path = write(tmp_path, body)
    await apply_manifest(parse_manifest(path), tmp_path, passwords)
    tenant = await Tenant.select().where(Tenant.slug == "keys").first()
    edited = {**load_json(tenant["settings"])["billing"], "plans": [{"id": "team", "name": "Team", "price": 59}]}
    async with atomic():  # what the console's plan editor writes
        await bump_version(tenant["id"], {Tenant.settings: {"billing": edited}})
    row = await Tenant.select(Tenant.console_owned).where(Tenant.id == tenant["id"]).first()
    assert load_json(row["console_owned"]) == ["settings.billing.plans"]

    later = body.replace("invoice_reminder_days = [3, 7]", "invoice_reminder_days = [5]").replace(
        "price = 49", "price = 39")
    report = await apply_manifest(parse_manifest(write(tmp_path, later)), tmp_path, passwords)
    assert report.changes == ["updated tenant keys: settings"] and report.kept == ["settings.billing.plans"]
    billing = load_json((await Tenant.select().where(Tenant.id == tenant["id"]).first())["settings"])["billing"]
    assert billing == {"provider": "local", "invoice_reminder_days": [5],
                       "plans": [{"id": "team", "name": "Team", "price": 59}]}

    again = await apply_manifest(parse_manifest(write(tmp_path, later)), tmp_path, passwords)
    assert again.changes == [] and again.kept == ["settings.billing.plans"]


def test_a_console_key_in_a_section_the_manifest_no_longer_has_as_a_table_keeps_the_consoles_section():
    """The console claimed ``settings.billing.plans``; a manifest that made ``billing`` a plain value must not
    put the plans where the section was, nor lose them."""
    from core.manifests import _keep_console_settings

    current = {"billing": {"plans": ["team"], "provider": "local"}, "usage": {"timezone": "UTC"}}
    wanted = {"billing": "off", "usage": {"timezone": "Europe/Berlin"}}
    merged = _keep_console_settings(wanted, current, {"settings.billing.plans"})
    assert merged == {"billing": {"plans": ["team"], "provider": "local"}, "usage": {"timezone": "Europe/Berlin"}}
    assert _keep_console_settings({"usage": {}}, current, {"settings.billing.plans"}) == {
        "usage": {}, "billing": {"plans": ["team"]}}
