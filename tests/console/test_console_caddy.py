"""The repository's Caddyfile in front of a real portal server: on-demand TLS from Caddy's internal CA issues a
certificate for a verified custom domain (asked through /_tls/ask) and none for an unverified one."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from core.db import utcnow
from core.settings import PROJECT_ROOT
from core.tables import TenantDomain
from core.testing import free_port

CADDY = shutil.which("caddy")
CURL = shutil.which("curl")

SERVER = """
import sys, uvicorn
from core.app import create_app
from core.settings import load_settings
app = create_app(load_settings(builtin_plugins=("core.builtin",), load_entry_points=False))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""


def _ports(count: int) -> list[int]:
    """Distinct free ports (two ``free_port()`` calls can hand back the same one)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _wait(check, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.skipif(CADDY is None, reason="Debian package caddy is not installed (make system-deps installs it)")
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_caddy_on_demand_tls_only_for_verified_domains(make_tenant, portal_database):
    verified = f"secure-{uuid.uuid4().hex[:8]}.shop.test"
    pending = f"pending-{uuid.uuid4().hex[:8]}.shop.test"
    tenant = await make_tenant(branding={"product_name": "Caddy Cloud"}, extra_hosts=[verified])
    await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant.id, hostname=pending, is_primary=False,
                                           verified=False, created_at=utcnow()))
    work = Path(tempfile.mkdtemp(prefix="portal-caddy-"))
    portal_port, http_port, https_port = _ports(3)
    logs = contextlib.ExitStack()
    env = {**os.environ, "PORTAL_TRUSTED_PROXIES": "127.0.0.1/32", "PORTAL_OUTBOX_WORKER": "false"}
    portal = subprocess.Popen([sys.executable, "-c", SERVER, str(portal_port)], cwd=PROJECT_ROOT, env=env,
                              stdout=logs.enter_context((work / "portal.log").open("wb")),
                              stderr=subprocess.STDOUT)
    caddy = None
    try:
        _wait(lambda: portal.poll() is None and _listening(portal_port), "the portal server")
        async with httpx.AsyncClient() as client:
            ask = f"http://127.0.0.1:{portal_port}/_tls/ask"
            assert (await client.get(ask, params={"domain": verified})).status_code == 200
            assert (await client.get(ask, params={"domain": pending})).status_code == 404
        caddy_env = {**os.environ, "HOME": str(work), "XDG_DATA_HOME": str(work / "data"),
                     "XDG_CONFIG_HOME": str(work / "config"), "PORTAL_UPSTREAM": f"127.0.0.1:{portal_port}",
                     "PORTAL_TLS": "internal", "CADDY_ADMIN": "off", "CADDY_HTTP_PORT": str(http_port),
                     "CADDY_HTTPS_PORT": str(https_port)}
        caddy = subprocess.Popen([CADDY, "run", "--config", str(PROJECT_ROOT / "Caddyfile"), "--adapter",
                                  "caddyfile"], cwd=work, env=caddy_env, stdout=subprocess.DEVNULL,
                                 stderr=logs.enter_context((work / "caddy.log").open("wb")))
        root_ca = work / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        _wait(lambda: caddy.poll() is None and _listening(https_port) and root_ca.exists(), "caddy")

        def curl(host: str, path: str = "/login") -> subprocess.CompletedProcess:
            return subprocess.run([CURL, "-sS", "--max-time", "30", "--cacert", str(root_ca), "--resolve",
                                   f"{host}:{https_port}:127.0.0.1", "-o", str(work / "body.html"), "-w",
                                   "%{http_code} %{ssl_verify_result}", f"https://{host}:{https_port}{path}"],
                                  capture_output=True, text=True)

        # The first handshake for a name waits for the ask and the issuance; on a loaded machine Caddy's
        # internal CA may still be settling, so a client retrying a failed first handshake is what we test.
        for _attempt in range(3):
            ok = curl(verified)
            if ok.returncode == 0:
                break
            time.sleep(1)
        assert ok.returncode == 0, (ok.stderr, (work / "caddy.log").read_text()[-3000:])
        assert ok.stdout == "200 0"  # HTTP 200, certificate verified against Caddy's CA for that name
        body = (work / "body.html").read_text()
        assert "Caddy Cloud" in body and "Sign in" in body

        refused = curl(pending)
        assert refused.returncode != 0  # no certificate: the TLS handshake fails
        assert "200" not in refused.stdout
        unknown = curl(f"nobody-{uuid.uuid4().hex[:6]}.example.test")
        assert unknown.returncode != 0
        asked = (work / "portal.log").read_text()  # uvicorn's access log: Caddy asked, and was told no
        assert f"/_tls/ask?domain={pending} HTTP/1.1\" 404" in asked
        assert f"/_tls/ask?domain={verified} HTTP/1.1\" 200" in asked
    finally:
        if caddy is not None:
            _stop(caddy)
        _stop(portal)
        logs.close()
        shutil.rmtree(work, ignore_errors=True)
