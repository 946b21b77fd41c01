"""API key authentication cost: an authenticated trivial route vs the same route without authentication.

    .venv/bin/python bench/apikeys_bench.py [--duration 8] [--rounds 3] [--connections 32]

Seeds a temporary SQLite database (real migrations, one tenant from a manifest, one API key made
by the plugin's service), serves ``bench.apikeys_app`` with granian (one worker) on a free
loopback port and runs Debian ``wrk`` against, in alternating rounds of the same run:

- ``GET /bench/ping``            public route, no authentication (the baseline);
- ``GET /api/v1/bench/ping``     the same handler behind ``Authorization: Bearer <key>``;
- ``GET /api/v1/api-keys/me``    the plugin's own "who am I" route.

Prints the median requests/second of each and the ratio to the baseline (target ≥ 0.75). The
key's rate limit is raised for the run so the per-key token bucket is exercised but never
refuses. Nothing is asserted: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "bench.localhost"


async def seed() -> str:
    """Migrate, create the tenant and an API key; return the key's plaintext."""
    import msgspec

    from core.context import CurrentOrganization, system_context
    from core.db import connect, disconnect, use_database
    from core.manifests import TenantManifest, apply_manifest
    from core.migrate import migrate_all
    from core.security import Passwords
    from core.settings import load_settings
    from core.tables import Organization
    from plugins.apikeys import service

    sys.path.insert(0, str(ROOT))
    from bench.apikeys_app import asgi_app

    settings = load_settings()
    use_database(settings.database_url)
    await connect()
    try:
        await migrate_all()
        manifest = msgspec.convert({
            "slug": "bench", "name": "Bench", "domains": [HOST], "plugins": ["api-keys", "bench"],
            "settings": {"api-keys": {"rate_limit_per_minute": 1_000_000_000}},
            "users": [{"email": "owner@bench.example", "name": "Owner", "password": "bench-password-1"}],
            "organizations": [{"slug": "bench-org", "name": "Bench Org",
                               "members": [{"email": "owner@bench.example", "role": "owner"}]}],
        }, TenantManifest)
        await apply_manifest(manifest, ROOT, Passwords("test"))
        app = asgi_app()
        runtime = app.state.portal
        await runtime.directory.refresh()
        tenant = await runtime.directory.by_slug("bench")
        org = await Organization.select().first().where(Organization.slug == "bench-org")
        ctx = system_context(runtime, tenant, organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
        draft = service.KeyDraft(name="Bench key", scopes=["api_keys.read"], environment="live")
        _row, plaintext = await service.create_key(ctx, draft)
        return plaintext
    finally:
        await disconnect()


def wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> float:
    """Requests/second from one wrk run; refuses to report a run with errors or non-2xx answers."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors for {url}:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def main() -> None:
    """Seed, serve, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per route")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="apikeys-bench-"))
    env = {**os.environ, "PORTAL_ENV": "development", "PORTAL_VAR_DIR": str(workdir),
           "PORTAL_DATABASE_URL": f"sqlite:///{workdir / 'portal.db'}", "PORTAL_SECRET_KEY": "bench-" + "k" * 40,
           "PORTAL_OUTBOX_WORKER": "false", "PORTAL_PASSWORD_HASH_PROFILE": "test", "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from bench.serving import free_port, start_granian, stop

    key = asyncio.run(seed())
    port = free_port()
    server = start_granian("bench.apikeys_app:asgi_app", port, env)
    try:
        base = f"http://127.0.0.1:{port}"
        routes = {
            "public /bench/ping (no auth)": (f"{base}/bench/ping", {"Host": HOST}),
            "api /api/v1/bench/ping (API key)": (f"{base}/api/v1/bench/ping",
                                                 {"Host": HOST, "Authorization": f"Bearer {key}"}),
            "api /api/v1/api-keys/me (API key)": (f"{base}/api/v1/api-keys/me",
                                                  {"Host": HOST, "Authorization": f"Bearer {key}"}),
        }
        for url, headers in routes.values():  # warm-up: caches, JIT-less Python paths, connections
            wrk(url, headers, 2, args.connections)
        results: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(args.rounds):
            for name, (url, headers) in routes.items():
                results[name].append(wrk(url, headers, args.duration, args.connections))
        baseline = statistics.median(results["public /bench/ping (no auth)"])
        print(f"granian 1 worker, wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds,"
              f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"{'route':<38} {'median req/s':>13} {'ratio':>7}")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"{name:<38} {median:>13,.0f} {median / baseline:>7.2f}")
        ratio = statistics.median(results["api /api/v1/bench/ping (API key)"]) / baseline
        print(f"authenticated / unauthenticated (same route): {ratio:.2f}x (target >= 0.75x)"
              f" -> {'OK' if ratio >= 0.75 else 'BELOW TARGET'}")
    finally:
        stop(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
