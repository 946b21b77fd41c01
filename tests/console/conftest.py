"""Helpers for the console tests: a tenant whose ``admin`` user is a tenant admin, and a signed-in client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from core.tables import User
from core.testing import EventRecorder, client_for, login


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


@pytest.fixture
def recorder() -> EventRecorder:
    """A fresh event recorder plugin; pass it to ``portal_app_factory``."""
    return EventRecorder()


class Dnsmasq:
    """Debian's dnsmasq on a free UDP port of 127.0.0.1, answering only the records a test gives it."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.port = _free_udp_port()
        self.process: Any = None

    @property
    def address(self) -> str:
        """What ``PORTAL_DNS_RESOLVER`` is set to."""
        return f"127.0.0.1:{self.port}"

    def serve(self, *, txt: dict[str, str] | None = None, cname: dict[str, str] | None = None,
              a: dict[str, str] | None = None) -> None:
        """(Re)start with exactly these records; everything else under .test is NXDOMAIN."""
        import subprocess
        import time

        self.stop()
        args = [self.binary, "--keep-in-foreground", "--no-daemon", f"--port={self.port}",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
                "--conf-file=/dev/null", "--pid-file=", "--user=root", "--local=/test/", "--cache-size=0"]
        args += [f"--txt-record={name},{value}" for name, value in (txt or {}).items()]
        args += [f"--cname={name},{target}" for name, target in (cname or {}).items()]
        args += [f"--host-record={name},{ip}" for name, ip in (a or {}).items()]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dnsmasq failed: {self.process.stderr.read().decode()}")
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start")

    def _answers(self) -> bool:
        import dns.message
        import dns.query

        try:
            dns.query.udp(dns.message.make_query("probe.test", "A"), "127.0.0.1", port=self.port, timeout=0.2)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        """Stop the server this fixture started."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dnsmasq() -> Any:
    """A local DNS server (Debian ``dnsmasq``); skipped with the reason when it is not installed."""
    import shutil

    if not shutil.which("dnsmasq") and not __import__("os").path.exists("/usr/sbin/dnsmasq"):
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq; make system-deps installs it)")
    server = Dnsmasq()
    yield server
    server.stop()
