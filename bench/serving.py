"""What the HTTP benchmarks share: a free port, granian serving an app factory, and waiting for it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_granian(factory: str, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen[bytes]:
    """Serve ``factory`` (``module:function``) as production would (granian), and wait until it answers.

    Benchmarks measure the served app, not the test client: the numbers then include
    the HTTP server, as a reseller's deployment does.
    """
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--no-log", factory],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(port)
    except BaseException:
        stop(server)
        raise
    return server


def wait_until_up(port: int, timeout: float = 60.0) -> None:
    """Poll ``/healthz`` until the server answers 200: start-up includes migrations and plugin loading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it does not exit within 10 s (a stuck worker must not outlive the run)."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
