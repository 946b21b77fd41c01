"""Every hook a Portal plugin can implement (pluggy project ``portal``).

This module is the contract. Each hook says when the core calls it, what it
returns and shows an example; ``portal hooks docs`` prints this as the hooks page and a
test fails when a hook here has no docstring or no test.

Hook implementations may be sync or async (the core awaits what is awaitable),
except the *build-time* hooks (``portal_plugin``, ``portal_permissions``,
``portal_routes``, ``portal_template_dirs``, ``portal_static_dirs``,
``portal_piccolo_apps``, ``portal_cli``, ``portal_outbox_handlers``), which run while the app is
built and must return plain values. Request-time hooks only reach plugins that
are enabled for the tenant of the request. A request-time hook that raises is
logged and skipped; the page still renders. ``portal_event`` is the exception:
it runs inside the caller's transaction, so a failure there fails the change.
"""

from __future__ import annotations

from typing import Any

import pluggy

from core import PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def portal_plugin() -> Any:
    """Describe the plugin; called once when it is registered.

    Returns a ``core.contracts.PluginInfo``. Its ``slug`` names the plugin in tenant
    manifests and in its URLs; ``requires_portal`` is checked against the core's version.

    Example::

        @hookimpl
        def portal_plugin():
            return PluginInfo("status", "Status", "1.0.0", "Service status page")
    """


@hookspec
def portal_permissions() -> Any:
    """Contribute permissions; called when the app is built.

    Returns a list of ``core.contracts.Permission``. On a tenant where the plugin is
    disabled its permissions do not exist, so ``ctx.can(...)`` is false there.

    Example::

        @hookimpl
        def portal_permissions():
            return [Permission("status.read", "See service status", {"owner", "admin", "member"})]
    """


@hookspec
def portal_routes() -> Any:
    """Contribute Litestar handlers; called when the app is built.

    Returns ``core.contracts.PluginRoutes(pages=[...], api=[...], public=[...])`` (a plain
    list means pages). Pages mount at ``/o/{org}/{slug}`` behind the login and
    membership guard, API handlers at ``/api/v1/{slug}``. All of them answer 404 on a
    tenant where the plugin is disabled.

    Example::

        @get("/")
        async def status_page(ctx: RequestContext) -> Response:
            return render(ctx, "status/index.html")

        @hookimpl
        def portal_routes():
            return PluginRoutes(pages=[status_page])
    """


@hookspec
def portal_nav_items(ctx: Any) -> Any:
    """Contribute navigation links for the current organization; called on every page render.

    Returns a list of ``core.contracts.NavItem``; an item with a permission is shown only
    where ``ctx.can(permission)``, the same check the route guard makes.

    Example::

        @hookimpl
        def portal_nav_items(ctx):
            return [NavItem("Status", "/o/{org}/status/", "status.read", order=50)]
    """


@hookspec
def portal_template_dirs() -> Any:
    """Add folders to the Jinja2 loader chain (after the theme, before the core); build time.

    Returns a list of paths. Keep templates under a folder named after the plugin
    (``templates/status/index.html``) so themes can override them one by one.

    Example::

        @hookimpl
        def portal_template_dirs():
            return [Path(__file__).parent / "templates"]
    """


@hookspec
def portal_static_dirs() -> Any:
    """Add static folders; build time. Each is served at ``/static/plugins/{slug}/``.

    Returns a list of paths.

    Example::

        @hookimpl
        def portal_static_dirs():
            return [Path(__file__).parent / "static"]
    """


@hookspec
def portal_piccolo_apps() -> Any:
    """Contribute the plugin's Piccolo apps (tables + migrations); build time and ``portal migrate``.

    Returns a list of module paths of ``piccolo_app`` modules (each defining
    ``APP_CONFIG``), as Piccolo's ``AppRegistry`` expects; declare a migration dependency
    on ``core.piccolo_app`` and never alter core tables.

    Example::

        @hookimpl
        def portal_piccolo_apps():
            return ["plugins.status.piccolo_app"]
    """


@hookspec
def portal_dashboard_cards(ctx: Any) -> Any:
    """Contribute cards to the organization overview (``/o/{org}/``); called on each view.

    Returns a list of ``core.contracts.DashboardCard`` (a value with a link, or a
    template of the plugin rendered with ``context``).

    Example::

        @hookimpl
        async def portal_dashboard_cards(ctx):
            return [DashboardCard("Open incidents", value="0", link=f"/o/{ctx.organization.slug}/status/")]
    """


@hookspec
def portal_usage_metrics(ctx: Any, org: Any) -> Any:
    """Report what the plugin meters for an organization in the current period.

    Called by the usage and billing sections (seats, active keys, ...). Returns a list
    of ``core.contracts.UsageMetric``. ``org`` is a ``core.context.CurrentOrganization``.

    Example::

        @hookimpl
        async def portal_usage_metrics(ctx, org):
            return [UsageMetric("seats", "Seats", used=await count_members(org.id), limit=10)]
    """


@hookspec
def portal_event(event: Any) -> Any:
    """Receive every domain event (``core.events.emit``); called inside the caller's transaction.

    ``event`` is a ``core.events.Event``. Write audit rows, enqueue outbox messages,
    create notifications; raising here rolls the change back.

    Example::

        @hookimpl
        async def portal_event(event):
            if event.type == "team.member.removed":
                await enqueue("slack.post", {"text": f"{event.target.display} left"}, tenant_id=event.tenant_id)
    """


@hookspec
def portal_cli(group: Any) -> Any:
    """Add commands to the ``portal`` command line; called when the CLI starts.

    ``group`` is the root ``click.Group``; add a command or a sub-group to it.

    Example::

        @hookimpl
        def portal_cli(group):
            @group.command("status-check")
            def status_check():
                click.echo("all systems go")
    """


@hookspec
def portal_seed_demo(ctx: Any, org: Any) -> Any:
    """Fill a demo organization with the plugin's demo content (``make run``).

    Called once per demo organization when ``portal tenants apply --seed-demo`` runs;
    must be idempotent (running it twice adds nothing). ``ctx`` is a system context
    of the tenant, ``org`` a ``core.context.CurrentOrganization`` (``org.id``, ``.slug``, ``.name``).

    Example::

        @hookimpl
        async def portal_seed_demo(ctx, org):
            if not await Incident.exists().where(Incident.organization == org.id):
                await Incident.insert(Incident(organization=org.id, title="Degraded API latency"))
    """


@hookspec
def portal_startup(app: Any) -> Any:
    """Run when the app starts serving (after the database is connected).

    Example::

        @hookimpl
        async def portal_startup(app):
            app.state.status_cache = {}
    """


@hookspec
def portal_shutdown(app: Any) -> Any:
    """Run when the app stops; release what ``portal_startup`` acquired.

    Example::

        @hookimpl
        async def portal_shutdown(app):
            app.state.status_cache.clear()
    """


@hookspec
def portal_outbox_handlers() -> Any:
    """Handle outbox message kinds; build time.

    Returns ``{kind: async handler(payload, *, tenant_id, app)}``. The worker calls the
    handler after the transaction that enqueued the message committed, retries with
    back-off when it raises, and never runs one message twice at the same time.

    Example::

        @hookimpl
        def portal_outbox_handlers():
            return {"status.page_sms": send_sms}
    """


@hookspec(firstresult=True)
def portal_authenticate_api(ctx: Any, authorization: str) -> Any:
    """Authenticate a ``/api/v1/...`` request from its ``Authorization`` header.

    Called by the core's API guard for every API request that is not yet
    authenticated. Return a ``core.context.ApiPrincipal`` (actor, organization,
    permissions) to authenticate it, ``None`` if the header is not yours, or raise a
    Litestar ``HTTPException`` (401, 429) to reject it. The first result wins. The
    API keys plugin implements this; an SSO or OAuth plugin could too.

    Example::

        @hookimpl
        async def portal_authenticate_api(ctx, authorization):
            key = await find_key(ctx.tenant.id, authorization.removeprefix("Bearer "))
            if key is None:
                raise NotAuthorizedException("This API key is not valid.")
            return ApiPrincipal(Actor("api_key", key.id, key.name), key.organization, key.scopes)
    """


@hookspec
def portal_admin_nav_items(ctx: Any) -> Any:
    """Contribute links to the reseller console's navigation (``/admin``, tenant admins only).

    Returns a list of ``core.contracts.NavItem`` pointing at the plugin's own admin pages
    (public routes under ``/admin/<slug>`` that check ``ctx.user.is_tenant_admin``).

    Example::

        @hookimpl
        def portal_admin_nav_items(ctx):
            return [NavItem("Audit log", "/admin/audit", order=60)]
    """


@hookspec(firstresult=True)
def portal_plan_limits(ctx: Any, org: Any) -> Any:
    """The limits of an organization's current plan, e.g. ``{"seats": 10, "api_calls": 100000}``.

    -1 means unlimited; a missing key means the plan sets no limit. Implemented by
    the billing plugin, read by team (seats), usage and API keys; the first result wins.
    ``org`` is a ``core.context.CurrentOrganization`` (``org.id``, ``.slug``, ``.name``).

    Example::

        @hookimpl
        async def portal_plan_limits(ctx, org):
            return {"seats": 5, "api_calls": 10000}
    """


@hookspec
def portal_login_options(ctx: Any) -> Any:
    """Extra ways to sign in, shown under the login form (e.g. "Continue with SSO").

    Returns a list of ``core.contracts.LoginOption(label, href)``; called on every login
    page view of a tenant where the plugin is enabled.

    Example::

        @hookimpl
        def portal_login_options(ctx):
            return [LoginOption("Continue with SSO", "/sso/start")]
    """


@hookspec(firstresult=True)
def portal_password_login_policy(ctx: Any, email: str) -> Any:
    """Refuse password sign-in for an email (e.g. its domain requires SSO).

    Called before the password is checked. Return a message for the person (with
    where to go instead), or ``None`` to allow password sign-in. The first message wins.

    Example::

        @hookimpl
        async def portal_password_login_policy(ctx, email):
            if email.endswith("@bigcorp.example"):
                return "BigCorp requires single sign-on: use Continue with SSO."
    """


@hookspec(firstresult=True)
def portal_billing_summaries(ctx: Any, orgs: Any) -> Any:
    """What organizations pay now: ``{org id: core.contracts.BillingSummary}`` (unknown ones left out).

    Implemented by the billing plugin from its local copy (never a provider call), read by
    the usage dashboard (projected bill, one organization) and the reseller console
    (customers' plan and revenue totals, every organization of a tenant), so neither
    imports billing. ``orgs`` is a list of ``core.context.CurrentOrganization``; answer a
    whole list with a query or two, never one per organization.

    Example::

        @hookimpl
        async def portal_billing_summaries(ctx, orgs):
            pro = BillingSummary("pro", "Pro", "active", "EUR", Decimal("49"), "month", Decimal("49"))
            return {org.id: pro for org in orgs}
    """


@hookspec
def portal_plan_change_allowed(ctx: Any, org: Any, current_plan: Any, new_plan: Any) -> Any:
    """Refuse a plan change: return a message for the person, or None to allow it.

    Called by the billing plugin for every plan it would offer on the change-plan page
    and again when the change is confirmed. ``current_plan`` (or None) and ``new_plan``
    are ``core.contracts.PlanOffer``. Any message refuses; the page shows it beside the plan.

    Example::

        @hookimpl
        async def portal_plan_change_allowed(ctx, org, current_plan, new_plan):
            if new_plan.limits.get("seats", -1) != -1 and await member_count(org) > new_plan.limits["seats"]:
                return "You have more members than this plan allows."
    """


@hookspec(firstresult=True)
def portal_report_metered_usage(ctx: Any, org: Any, events: Any) -> Any:
    """Report metered usage (a list of ``core.contracts.MeterEvent``) to the payment provider.

    Called by the usage plugin from its outbox handler, so a failure is retried and a retry
    repeats the same ``identifier``s (the provider must treat them as one). Return the
    number of events sent, or None when this organization is not billed by metered usage.
    Raise to have the outbox retry later: the caller uses ``plugins.call(..., strict=True)``
    so the error is not swallowed.

    Example::

        @hookimpl
        async def portal_report_metered_usage(ctx, org, events):
            for event in events:
                await stripe.meter_events.create(identifier=event.identifier, ...)
            return len(events)
    """


HOOK_NAMES: tuple[str, ...] = tuple(name for name in dict(globals()) if name.startswith("portal_"))
BUILD_TIME_HOOKS = frozenset({
    "portal_plugin", "portal_permissions", "portal_routes", "portal_template_dirs", "portal_static_dirs",
    "portal_piccolo_apps", "portal_cli", "portal_outbox_handlers",
})
