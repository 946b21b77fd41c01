"""Tenant manifests: idempotent apply with a change report; malformed files name file, key and reason."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

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
