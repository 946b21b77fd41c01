"""Helpers for the console tests: a tenant whose ``admin`` user is a tenant admin, and a signed-in client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from core import hookimpl
from core.contracts import PluginInfo
from core.tables import User
from core.testing import client_for, login


async def make_tenant_admin(tenant: Any, role: str = "admin") -> None:
    """Flag the user holding ``role`` in the tenant's organization as tenant admin."""
    await User.update({User.is_tenant_admin: True}).where(User.tenant == tenant.id,
                                                          User.email == tenant.email(role))


@pytest.fixture
def admin_client() -> Callable[..., Any]:
    """``async with admin_client(app, tenant) as client``: signed in as the tenant's tenant admin."""

    @asynccontextmanager
    async def open_client(app: Any, tenant: Any, role: str = "admin", host: str | None = None
                          ) -> AsyncIterator[Any]:
        await make_tenant_admin(tenant, role)
        async with client_for(app, host or tenant.host) as client:
            response = await login(client, tenant.email(role))
            assert response.status_code == 302, response.text
            yield client

    return open_client


class EventRecorder:
    """A throwaway plugin that keeps every event it is handed (tenants must enable ``recorder``)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def portal_plugin(self) -> Any:
        return PluginInfo("recorder", "Recorder", "1.0", "Records events for tests.")

    @hookimpl
    def portal_event(self, event: Any) -> None:
        self.events.append(event)

    def of(self, type_: str) -> list[Any]:
        """Events of one type, oldest first."""
        return [e for e in self.events if e.type == type_]


@pytest.fixture
def recorder() -> EventRecorder:
    """A fresh event recorder plugin; pass it to ``portal_app_factory``."""
    return EventRecorder()
