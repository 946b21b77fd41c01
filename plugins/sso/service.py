"""SSO logic with no HTTP in it: connections, domains, routing, pending sign-ins, provisioning, events.

Security decisions written down here:
- A connection only signs people in whose email domain the organization has *verified*:
  an IdP of one customer can never assert an address of another customer's domain.
- Owners of the organization keep password sign-in when SSO is required (break-glass),
  so an IdP outage never locks a company out.
- Roles come from the group mapping (highest mapped role wins) or the default role;
  ``owner`` is never handed out by SSO, and SSO never changes an owner's role.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.context import Actor, CurrentUser, RequestContext
from core.contracts import ROLES
from core.db import as_utc, atomic, load_json, utcnow
from core.events import Target, changed_fields, emit
from core.identity import normalize_email
from core.tables import Membership, Organization, User
from plugins.sso.errors import SsoError
from plugins.sso.tables import SsoConnection, SsoDomain, SsoPending, SsoReplay

PENDING_TTL = timedelta(minutes=10)
ASSIGNABLE_ROLES = tuple(role for role in ROLES if role != "owner")
SECRET_FIELDS = {"oidc_client_secret", "saml_sp_key"}


def browser_hash(cookie: str) -> str:
    """What we store of the browser-binding cookie."""
    return hashlib.sha256(cookie.encode()).hexdigest()


# -- connections -------------------------------------------------------------------------------------------------

async def connection_for_org(tenant_id: uuid.UUID, org_id: uuid.UUID) -> dict[str, Any] | None:
    """The organization's connection row, if it has one."""
    return await SsoConnection.select().where(SsoConnection.tenant == tenant_id,
                                              SsoConnection.organization == org_id).first()


async def connection_by_id(tenant_id: uuid.UUID, connection_id: str) -> dict[str, Any] | None:
    """A connection of this tenant by id (an id of another tenant is simply not found)."""
    try:
        key = uuid.UUID(connection_id)
    except ValueError:
        return None
    return await SsoConnection.select().where(SsoConnection.tenant == tenant_id, SsoConnection.id == key).first()


def public_view(row: dict[str, Any]) -> dict[str, Any]:
    """A connection for events and pages: secrets replaced by whether they are set."""
    view = {k: v for k, v in row.items()
            if k not in SECRET_FIELDS and k not in {"created_at", "updated_at", "saml_metadata", "saml_sp_cert"}}
    for name in ("saml_metadata", "saml_sp_cert"):  # large documents: a fingerprint says whether they changed
        view[f"{name}_sha256"] = hashlib.sha256(row[name].encode()).hexdigest()[:16] if row.get(name) else None
    for name in SECRET_FIELDS:
        view[f"{name}_set"] = bool(row.get(name))
    view["group_roles"] = load_json(row.get("group_roles")) or {}
    for key in ("id", "tenant", "organization"):
        view[key] = str(view[key]) if view.get(key) is not None else None
    view["last_test_at"] = view["last_test_at"].isoformat() if view.get("last_test_at") else None
    return view


def parse_group_roles(raw: str) -> dict[str, str]:
    """``group = role`` lines into a mapping; refuses unknown roles and ``owner``."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        group, sep, role = line.rpartition("=")
        group, role = group.strip(), role.strip().lower()
        if not sep or not group:
            raise SsoError("bad_mapping", f"Line {number}: write one mapping per line as: group name = role.")
        if role not in ASSIGNABLE_ROLES:
            raise SsoError("bad_mapping", f"Line {number}: {role!r} is not a role SSO can grant "
                                          f"({', '.join(ASSIGNABLE_ROLES)}).")
        mapping[group[:200]] = role
    return mapping


async def save_connection(ctx: RequestContext, org_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Create or update the organization's connection and emit ``sso.connection.created/updated``."""
    now = utcnow()
    async with atomic():
        current = await connection_for_org(ctx.tenant.id, org_id)
        if current is None:
            row = SsoConnection(id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org_id, created_at=now,
                                updated_at=now, **changes)
            await SsoConnection.insert(row)
            after = await connection_for_org(ctx.tenant.id, org_id)
            assert after is not None
            await emit(ctx, "sso.connection.created", organization_id=org_id,
                       target=Target("sso_connection", str(after["id"]), after["protocol"].upper()),
                       after=public_view(after))
            return after
        await SsoConnection.update({**{getattr(SsoConnection, k): v for k, v in changes.items()},
                                    SsoConnection.updated_at: now}).where(SsoConnection.id == current["id"])
        after = await connection_for_org(ctx.tenant.id, org_id)
        assert after is not None
        before_view, after_view = changed_fields(public_view(current), public_view(after))
        if after_view:
            await emit(ctx, "sso.connection.updated", organization_id=org_id,
                       target=Target("sso_connection", str(after["id"]), after["protocol"].upper()),
                       before=before_view, after=after_view)
        return after


async def record_test_result(ctx: RequestContext, connection: dict[str, Any], ok: bool, message: str) -> None:
    """Remember the latest "test connection" result and record it as an event."""
    async with atomic():
        await SsoConnection.update({SsoConnection.last_test_at: utcnow(), SsoConnection.last_test_ok: ok,
                                    SsoConnection.last_test_message: message[:2000]}).where(
            SsoConnection.id == connection["id"])
        await emit(ctx, "sso.connection.tested", organization_id=connection["organization"],
                   target=Target("sso_connection", str(connection["id"]), connection["protocol"].upper()),
                   outcome="success" if ok else "failure", data={"message": message[:500]})


# -- domains ----------------------------------------------------------------------------------------------------

async def org_domains(tenant_id: uuid.UUID, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """The organization's claimed domains, verified first."""
    rows = await SsoDomain.select().where(SsoDomain.tenant == tenant_id, SsoDomain.organization == org_id)
    return sorted(rows, key=lambda r: (r["verified_at"] is None, r["domain"]))


async def add_domain(ctx: RequestContext, org_id: uuid.UUID, domain: str) -> dict[str, Any]:
    """Claim a domain (unverified) with a fresh DNS token; refused when another organization verified it."""
    if await SsoDomain.exists().where(SsoDomain.tenant == ctx.tenant.id, SsoDomain.domain == domain,
                                      SsoDomain.verified_at.is_not_null(), SsoDomain.organization != org_id):
        raise SsoError("domain_taken", f"{domain} is already verified by another organization on this portal.")
    if await SsoDomain.exists().where(SsoDomain.organization == org_id, SsoDomain.domain == domain):
        raise SsoError("domain_exists", f"{domain} is already on the list.")
    row = SsoDomain(id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org_id, domain=domain,
                    token=secrets.token_urlsafe(24), created_at=utcnow())
    async with atomic():
        await SsoDomain.insert(row)
        await emit(ctx, "sso.domain.added", organization_id=org_id, target=Target("sso_domain", str(row.id), domain))
    return {"id": row.id, "domain": domain, "token": row.token}


async def domain_of_org(tenant_id: uuid.UUID, org_id: uuid.UUID, domain_id: str) -> dict[str, Any] | None:
    """One of the organization's domains by id."""
    try:
        key = uuid.UUID(domain_id)
    except ValueError:
        return None
    return await SsoDomain.select().where(SsoDomain.tenant == tenant_id, SsoDomain.organization == org_id,
                                          SsoDomain.id == key).first()


async def mark_domain_checked(ctx: RequestContext, row: dict[str, Any], error: SsoError | None) -> None:
    """Store a DNS check's outcome; on success verify the domain and emit ``sso.domain.verified``."""
    now = utcnow()
    target = Target("sso_domain", str(row["id"]), row["domain"])
    async with atomic():
        if error is not None:
            await SsoDomain.update({SsoDomain.last_check_at: now, SsoDomain.last_check_message: error.message}
                                   ).where(SsoDomain.id == row["id"])
            await emit(ctx, "sso.domain.verification_failed", organization_id=row["organization"], target=target,
                       outcome="failure", data={"reason": error.reason, "message": error.message})
            return
        if await SsoDomain.exists().where(SsoDomain.tenant == ctx.tenant.id, SsoDomain.domain == row["domain"],
                                          SsoDomain.verified_at.is_not_null(), SsoDomain.id != row["id"]):
            raise SsoError("domain_taken", f"{row['domain']} is already verified by another organization here.")
        await SsoDomain.update({SsoDomain.last_check_at: now, SsoDomain.verified_at: now,
                                SsoDomain.last_check_message: ""}).where(SsoDomain.id == row["id"])
        await emit(ctx, "sso.domain.verified", organization_id=row["organization"], target=target,
                   after={"verified": True})


async def remove_domain(ctx: RequestContext, row: dict[str, Any]) -> None:
    """Drop a claimed domain (its users then sign in with passwords again)."""
    async with atomic():
        await SsoDomain.delete().where(SsoDomain.id == row["id"])
        await emit(ctx, "sso.domain.removed", organization_id=row["organization"],
                   target=Target("sso_domain", str(row["id"]), row["domain"]))


def email_domain(email: str) -> str:
    """The part after the last @ (lower case)."""
    return normalize_email(email).rpartition("@")[2]


async def verified_domain(tenant_id: uuid.UUID, domain: str) -> dict[str, Any] | None:
    """The verified claim of a domain on this tenant (at most one exists)."""
    return await SsoDomain.select().where(SsoDomain.tenant == tenant_id, SsoDomain.domain == domain,
                                          SsoDomain.verified_at.is_not_null()).first()


async def route_email(tenant_id: uuid.UUID, email: str) -> dict[str, Any] | None:
    """The enabled connection of the organization that verified the email's domain, if any."""
    claim = await verified_domain(tenant_id, email_domain(email))
    if claim is None:
        return None
    connection = await connection_for_org(tenant_id, claim["organization"])
    return connection if connection and connection["enabled"] else None


async def domain_allowed(connection: dict[str, Any], email: str) -> bool:
    """Whether the email's domain is verified by the connection's own organization."""
    claim = await verified_domain(connection["tenant"], email_domain(email))
    return claim is not None and claim["organization"] == connection["organization"]


async def password_refusal(ctx: RequestContext, email: str) -> str | None:
    """The message that refuses password sign-in for a domain whose organization requires SSO."""
    if "@" not in email:
        return None
    claim = await verified_domain(ctx.tenant.id, email_domain(email))
    if claim is None:
        return None
    connection = await connection_for_org(ctx.tenant.id, claim["organization"])
    if connection is None or not connection["enabled"] or connection["policy"] != "required":
        return None
    is_owner = await Membership.exists().where(
        Membership.tenant == ctx.tenant.id, Membership.organization == claim["organization"],
        Membership.role == "owner", Membership.user.email == normalize_email(email))
    if is_owner:
        return None
    org = await Organization.select(Organization.name).where(Organization.id == claim["organization"]).first()
    return (f"{org['name'] if org else 'Your organization'} requires single sign-on for "
            f"@{claim['domain']} addresses. Use “Continue with SSO” below (/sso/start).")


# -- pending sign-ins -------------------------------------------------------------------------------------------

@dataclass
class NewPending:
    """What the start of a sign-in hands to the route: the cookie to set and the values sent to the IdP."""

    cookie: str
    state: str
    nonce: str
    code_verifier: str
    request_id: str


async def create_pending(ctx: RequestContext, connection: dict[str, Any], *, email_hint: str = "",
                         request_id: str = "", test_by: uuid.UUID | None = None,
                         cookie: str | None = None) -> NewPending:
    """Store a sign-in in progress keyed by state/request id and bound to a browser cookie."""
    now = utcnow()
    pending = NewPending(cookie=cookie or secrets.token_urlsafe(32), state=secrets.token_urlsafe(32),
                         nonce=secrets.token_urlsafe(32), code_verifier=secrets.token_urlsafe(64),
                         request_id=request_id)
    await SsoPending.delete().where(SsoPending.expires_at < now - timedelta(hours=1))
    await SsoPending.insert(SsoPending(
        id=uuid.uuid4(), tenant=ctx.tenant.id, connection=connection["id"], browser_hash=browser_hash(pending.cookie),
        state=pending.state if not request_id else "", nonce=pending.nonce, code_verifier=pending.code_verifier,
        request_id=request_id, email_hint=email_hint[:320], test_by=test_by, created_at=now,
        expires_at=now + PENDING_TTL,
    ))
    return pending


async def consume_pending(ctx: RequestContext, connection: dict[str, Any], cookie: str | None, *,
                          state: str = "", request_id: str = "") -> dict[str, Any]:
    """Take the matching sign-in in progress exactly once; raises ``SsoError`` when there is none."""
    if not state and not request_id:
        raise SsoError("missing_state", "The sign-in response carries no state: start again from the sign-in page.")
    query = SsoPending.select().where(SsoPending.tenant == ctx.tenant.id, SsoPending.connection == connection["id"])
    query = query.where(SsoPending.state == state) if state else query.where(SsoPending.request_id == request_id)
    row = await query.first()
    if row is None:
        raise SsoError("unknown_state", "This sign-in response does not belong to a sign-in started here "
                                        "(unknown state or InResponseTo). Start again from the sign-in page.")
    if row["used_at"] is not None:
        raise SsoError("replayed_state", "This sign-in response was already used (replay). Start again.")
    claimed = await SsoPending.update({SsoPending.used_at: utcnow()}).where(
        SsoPending.id == row["id"], SsoPending.used_at.is_null()).returning(SsoPending.id)
    if not claimed:
        raise SsoError("replayed_state", "This sign-in response was already used (replay). Start again.")
    if not cookie or not secrets.compare_digest(row["browser_hash"], browser_hash(cookie)):
        raise SsoError("browser_mismatch", "This sign-in was started in another browser (or cookies are blocked). "
                                           "Start again from the sign-in page in this browser.")
    if as_utc(row["expires_at"]) <= utcnow():
        raise SsoError("state_expired", "The sign-in took too long. Start again from the sign-in page.")
    return row


async def remember_assertion(connection: dict[str, Any], assertion_id: str, expires_at: Any) -> None:
    """Record an accepted SAML assertion id; a second use of the same id raises ``SsoError``."""
    now = utcnow()
    await SsoReplay.delete().where(SsoReplay.expires_at < now)
    if await SsoReplay.exists().where(SsoReplay.connection == connection["id"],
                                      SsoReplay.assertion_id == assertion_id[:200]):
        raise SsoError("replayed_assertion", "This SAML assertion was already used to sign in (replay).")
    await SsoReplay.insert(SsoReplay(id=uuid.uuid4(), connection=connection["id"], assertion_id=assertion_id[:200],
                                     expires_at=expires_at))


# -- outcome ----------------------------------------------------------------------------------------------------

def mapped_role(connection: dict[str, Any], groups: list[str]) -> str:
    """The highest role any of the user's groups maps to, else the connection's default role."""
    mapping = load_json(connection.get("group_roles")) or {}
    roles = {mapping[g] for g in groups if g in mapping and mapping[g] in ASSIGNABLE_ROLES}
    for role in ROLES:
        if role in roles:
            return role
    default = connection.get("default_role") or "member"
    return default if default in ASSIGNABLE_ROLES else "member"


@dataclass
class Identity:
    """Who the IdP says signed in, after every check passed."""

    email: str
    name: str
    subject: str
    groups: list[str]


async def provision(ctx: RequestContext, connection: dict[str, Any], identity: Identity) -> tuple[uuid.UUID, str]:
    """Find or create (JIT) the user and their membership; returns (user id, organization slug).

    Runs inside the caller's transaction together with the session and the sign-in event.
    """
    email = normalize_email(identity.email)
    org_id = connection["organization"]
    org = await Organization.select(Organization.slug, Organization.name).where(Organization.id == org_id).first()
    assert org is not None
    now = utcnow()
    role = mapped_role(connection, identity.groups)
    user = await User.select().where(User.tenant == ctx.tenant.id, User.email == email).first()
    actor = Actor("user", None, email, "sso")
    if user is None:
        user_id = uuid.uuid4()
        await User.insert(User(id=user_id, tenant=ctx.tenant.id, email=email, name=identity.name[:200],
                               password_hash=None, created_at=now))
        await emit(ctx, "sso.user.provisioned", organization_id=org_id, actor=actor,
                   target=Target("user", str(user_id), email), after={"email": email, "name": identity.name[:200]})
    else:
        user_id = user["id"]
        if identity.name and not user["name"]:
            await User.update({User.name: identity.name[:200]}).where(User.id == user_id)
    membership = await Membership.select().where(Membership.organization == org_id, Membership.user == user_id).first()
    if membership is None:
        await Membership.insert(Membership(id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org_id, user=user_id,
                                           role=role, created_at=now))
        await emit(ctx, "sso.member.added", organization_id=org_id, actor=actor,
                   target=Target("membership", str(user_id), email), after={"role": role})
    elif membership["role"] != "owner" and membership["role"] != role and identity.groups and \
            any(g in (load_json(connection.get("group_roles")) or {}) for g in identity.groups):
        await Membership.update({Membership.role: role}).where(Membership.id == membership["id"])
        await emit(ctx, "sso.member.role_changed", organization_id=org_id, actor=actor,
                   target=Target("membership", str(user_id), email),
                   before={"role": membership["role"]}, after={"role": role})
    await User.update({User.last_login_at: now}).where(User.id == user_id)
    ctx.user = CurrentUser(user_id, email, identity.name or (user["name"] if user else ""),
                           bool(user["is_tenant_admin"]) if user else False)
    return user_id, org["slug"]


async def record_failure(ctx: RequestContext, connection: dict[str, Any] | None, error: SsoError, *,
                         email: str = "", protocol: str = "") -> None:
    """One ``sso.login.failed`` event per refused sign-in, with the reason code and the admin message."""
    async with atomic():
        await emit(ctx, "sso.login.failed", outcome="failure",
                   organization_id=connection["organization"] if connection else None,
                   target=Target("sso_connection", str(connection["id"]) if connection else None,
                                 email or (connection["protocol"].upper() if connection else "SSO")),
                   data={"reason": error.reason, "message": error.message,
                         "protocol": protocol or (connection["protocol"] if connection else "")})


async def seed_demo(ctx: RequestContext, org: Any) -> None:
    """Claim ``<org-slug>.example`` for a demo organization unless it already claims a domain."""
    if await SsoDomain.exists().where(SsoDomain.organization == org.id):
        return
    await add_domain(ctx, org.id, f"{org.slug}.example")
