"""Real peers for the SSO tests: npm ``oidc-provider``, a local DNS server, and an event recorder plugin.

The npm packages are installed from nothing into ``var/node/sso`` (git-ignored) the first
time a session needs them, so a clean CI machine gets them too; later runs reuse them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from joserfc.jwk import RSAKey

from core.settings import PROJECT_ROOT
from core.testing import EventRecorder, free_port

NODE_DIR = PROJECT_ROOT / "var" / "node" / "sso"
IDP_DIR = Path(__file__).parent / "idp"
PACKAGE_JSON = {
    "name": "portal-sso-test-idps", "private": True,
    "dependencies": {"oidc-provider": "^9", "saml-idp": "^1.2.1"},
    "overrides": {"samlp": "7.1.1"},
}


@pytest.fixture(scope="session")
def sso_node_modules() -> Path:
    """``var/node/sso/node_modules`` with oidc-provider and saml-idp, installed by npm when missing."""
    modules = NODE_DIR / "node_modules"
    if not ((modules / "oidc-provider").is_dir() and (modules / "saml-idp").is_dir()):
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: the SSO tests need Node.js 20+ and npm")
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        (NODE_DIR / "package.json").write_text(json.dumps(PACKAGE_JSON, indent=2))
        subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, cwd=NODE_DIR, timeout=600)
    return modules


# -- events ------------------------------------------------------------------------------------------------------


@pytest.fixture
def recorder() -> EventRecorder:
    """A fresh event recorder (slug ``sso-events``) for one test."""
    return EventRecorder("sso-events")


# -- DNS ---------------------------------------------------------------------------------------------------------

class TinyDns:
    """A UDP DNS server on loopback answering TXT queries from a dict (NXDOMAIN otherwise)."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.running = True
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - garbage on the wire is ignored like a real server would
                continue
            reply = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            values = self.records.get(name)
            if values and question.rdtype == dns.rdatatype.TXT:
                reply.answer.append(dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, [f'"{v}"' for v in values]))
            elif not values:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def stop(self) -> None:
        self.running = False
        self.sock.close()


@pytest.fixture(scope="session")
def tiny_dns() -> Iterator[TinyDns]:
    """The session's local DNS server; tests add TXT records to ``.records``."""
    server = TinyDns()
    yield server
    server.stop()


# -- OIDC --------------------------------------------------------------------------------------------------------

@dataclass
class OidcIdp:
    """The running oidc-provider: its issuer, its signing key (tests forge tokens with it) and controls."""

    issuer: str
    key: RSAKey
    process: subprocess.Popen[str]

    async def register_client(self, redirect_uri: str) -> tuple[str, str]:
        """Dynamic client registration; returns (client id, client secret)."""
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{self.issuer}/reg", json={
                "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"], "response_types": ["code"]})
        assert response.status_code == 201, response.text
        data = response.json()
        return data["client_id"], data["client_secret"]

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call one of the test controls of the IdP script."""
        async with httpx.AsyncClient() as client:
            if payload is None:
                response = await client.get(f"{self.issuer}{path}")
            else:
                response = await client.post(f"{self.issuer}{path}", json=payload)
        response.raise_for_status()
        return response.json()


def _start_node(script: Path, config: dict[str, Any], modules: Path) -> tuple[subprocess.Popen[str], str]:
    config_file = Path(tempfile.mkstemp(prefix="portal-idp-", suffix=".json")[1])
    config_file.write_text(json.dumps({**config, "modules": str(modules)}))
    process = subprocess.Popen(["node", str(script), str(config_file)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "NODE_ENV": "test"})
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("READY"):
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore
            return process, line.split()[1]
    raise RuntimeError("IdP did not start:\n" + "".join(lines))


@pytest.fixture(scope="session")
def oidc_idp(sso_node_modules: Path) -> Iterator[OidcIdp]:
    """npm oidc-provider on a free loopback port with a signing key the tests know."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1", "use": "sig", "alg": "RS256"})
    process, issuer = _start_node(IDP_DIR / "oidc_idp.mjs", {"port": free_port(),
                                                             "jwks": {"keys": [key.as_dict(private=True)]}},
                                  sso_node_modules)
    yield OidcIdp(issuer, key, process)
    process.terminate()
    process.wait(timeout=10)


# -- a browser that spans the portal (in-process) and the IdP (real HTTP) ---------------------------------------

@dataclass
class Browser:
    """Follows redirects across hosts: the tenant's host goes to the ASGI app, everything else to the network."""

    portal: httpx.AsyncClient
    idp: httpx.AsyncClient
    host: str

    async def follow(self, response: httpx.Response, limit: int = 20) -> httpx.Response:
        """Follow redirects like a browser until a page is reached."""
        for _ in range(limit):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            url = urljoin(str(response.request.url), response.headers["location"])
            response = await self.get(url)
        raise AssertionError("too many redirects")

    async def get(self, url: str) -> httpx.Response:
        """One GET on whichever side ``url`` points to."""
        parts = urlsplit(url)
        if parts.hostname == self.host:
            return await self.portal.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        return await self.idp.get(url)


@pytest.fixture
async def idp_client() -> AsyncIterator[httpx.AsyncClient]:
    """The browser's cookie jar on the IdP side."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as client:
        yield client
