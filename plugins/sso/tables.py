"""Tables of the SSO plugin: connections, verified domains, pending sign-ins and the replay cache.

One connection per organization (OIDC or SAML; the fields of the other protocol are kept
so switching back does not lose them). Secrets (OIDC client secret, SAML SP private key)
are stored encrypted with the platform key. A domain may be claimed by several
organizations but verified by one per tenant (a partial unique index in the migration).
"""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Boolean, ForeignKey, OnDelete, Text, Timestamptz, Varchar
from piccolo.table import Table

from core.tables import Organization, Tenant


class SsoConnection(Table, tablename="sso_connection"):
    """An organization's identity provider and its sign-in policy."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, unique=True)
    protocol = Varchar(length=10, default="oidc")
    enabled = Boolean(default=False)
    policy = Varchar(length=20, default="optional")
    default_role = Varchar(length=20, default="member")
    groups_attribute = Varchar(length=200, default="groups")
    group_roles = JSON(default={})
    # OIDC
    oidc_issuer = Varchar(length=500, default="")
    oidc_client_id = Varchar(length=300, default="")
    oidc_client_secret = Text(default="")
    oidc_scopes = Varchar(length=300, default="openid email profile")
    oidc_algorithms = Varchar(length=200, default="RS256,ES256,PS256")
    oidc_email_claim = Varchar(length=100, default="email")
    oidc_name_claim = Varchar(length=100, default="name")
    # SAML
    saml_metadata = Text(default="")
    saml_metadata_url = Varchar(length=500, default="")
    saml_idp_entity_id = Varchar(length=500, default="")
    saml_sp_key = Text(default="")
    saml_sp_cert = Text(default="")
    saml_email_attribute = Varchar(length=200, default="email")
    saml_name_attribute = Varchar(length=200, default="name")
    saml_idp_initiated = Boolean(default=False)
    # "test connection" results
    last_test_at = Timestamptz(null=True, default=None)
    last_test_ok = Boolean(null=True, default=None)
    last_test_message = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class SsoDomain(Table, tablename="sso_domain"):
    """An email domain an organization claims; SSO routing uses it once DNS proves ownership."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, index=True)
    domain = Varchar(length=253)
    token = Varchar(length=100)
    verified_at = Timestamptz(null=True, default=None)
    last_check_at = Timestamptz(null=True, default=None)
    last_check_message = Text(default="")
    created_at = Timestamptz()


class SsoPending(Table, tablename="sso_pending"):
    """A sign-in that left for the IdP and has not come back: bound to a browser cookie, used once."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    connection = ForeignKey(references=SsoConnection, on_delete=OnDelete.cascade, index=True)
    browser_hash = Varchar(length=64, index=True)
    state = Varchar(length=100, default="", index=True)
    nonce = Varchar(length=100, default="")
    code_verifier = Varchar(length=200, default="")
    request_id = Varchar(length=100, default="", index=True)
    email_hint = Varchar(length=320, default="")
    test_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class SsoReplay(Table, tablename="sso_replay"):
    """Assertion ids already accepted, kept until they expire: a replayed assertion is refused."""

    id = UUID(primary_key=True)
    connection = ForeignKey(references=SsoConnection, on_delete=OnDelete.cascade)
    assertion_id = Varchar(length=200)
    expires_at = Timestamptz()


SSO_TABLES: list[type[Table]] = [SsoConnection, SsoDomain, SsoPending, SsoReplay]
