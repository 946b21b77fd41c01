"""The request context every handler, guard, template and hook receives.

Built in layers: the tenancy middleware sets the tenant, the session middleware
the user, the organization guard the organization, role and permissions.
Background work (CLI, seeding, workers) uses ``system_context`` with the same shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar.di import NamedDependency

from core.runtime import PortalRuntime
from core.tenancy import TenantRecord


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user (a snapshot; handlers reload the row when they change it)."""

    id: uuid.UUID
    email: str
    name: str
    is_tenant_admin: bool = False

    @property
    def display(self) -> str:
        """Name when set, email otherwise."""
        return self.name or self.email


@dataclass(frozen=True)
class CurrentOrganization:
    """An organization as every hook receives it (``org.id``; ``org["id"]`` works too, like a row)."""

    id: uuid.UUID
    slug: str
    name: str

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass(frozen=True)
class Actor:
    """Who did something: a user, an API key or the system, and how they signed in."""

    type: str
    id: str | None
    display: str
    auth_method: str | None = None


SYSTEM_ACTOR = Actor("system", None, "System")


@dataclass(frozen=True)
class ApiPrincipal:
    """Who an API request acts as: returned by ``portal_authenticate_api``."""

    actor: Actor
    organization: CurrentOrganization
    permissions: frozenset[str]


class RequestContext:
    """Tenant, user, organization and permissions of one request.

    A plain class, not a dataclass: Litestar validates dataclass dependencies field by
    field, and this object is injected into every handler as it is.
    """

    def __init__(self, *, runtime: PortalRuntime, tenant: TenantRecord, request: Any = None,
                 user: CurrentUser | None = None, organization: CurrentOrganization | None = None,
                 role: str | None = None, permissions: frozenset[str] = frozenset(), ip: str = "",
                 user_agent: str = "", request_id: str | None = None, actor_override: Actor | None = None) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.request = request
        self.user = user
        self.session_id: uuid.UUID | None = None
        self.auth_method: str | None = None
        self.organization = organization
        self.role = role
        self.permissions = permissions
        self.ip = ip
        self.user_agent = user_agent
        self.request_id = request_id or uuid.uuid4().hex
        self.actor_override = actor_override
        self.cache: dict[str, Any] = {}

    def can(self, permission: str) -> bool:
        """The one permission check: route guards, navigation and templates all use it."""
        return permission in self.permissions

    @property
    def enabled_plugins(self) -> frozenset[str]:
        """Plugin slugs switched on for this tenant."""
        return self.runtime.plugins.enabled_for(self.tenant)

    @property
    def theme(self) -> Any:
        """The tenant's theme (falls back to ``default`` if its theme is missing)."""
        return self.runtime.themes.get(self.tenant.theme)

    @property
    def actor(self) -> Actor:
        """Who events of this request are attributed to."""
        if self.actor_override is not None:
            return self.actor_override
        if self.user is not None:
            return Actor("user", str(self.user.id), self.user.email, self.auth_method)
        return Actor("anonymous", None, "Anonymous")

    @property
    def secure(self) -> bool:
        """Whether cookies get the Secure flag (production)."""
        return self.runtime.settings.production

    def org_url(self, path: str = "") -> str:
        """A link inside the current organization."""
        assert self.organization is not None
        return f"/o/{self.organization.slug}/{path.lstrip('/')}"


def system_context(runtime: PortalRuntime, tenant: TenantRecord, *,
                   organization: CurrentOrganization | None = None, actor: Actor = SYSTEM_ACTOR) -> RequestContext:
    """A context for work with no request (CLI, seeding, workers) acting as the system."""
    perms = frozenset(p.name for p in runtime.tenant_permissions(tenant))
    return RequestContext(runtime=runtime, tenant=tenant, organization=organization, role="owner",
                          permissions=perms, actor_override=actor)


Ctx = NamedDependency[RequestContext]
"""How handlers ask for the context: ``async def page(ctx: Ctx) -> Response``."""
