"""The plugin guide's example plugin and its test really run (docs/plugins.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"```\w+\n(?:# file: |<!-- file: )([\w/.]+)(?: -->)?\n(.*?)```", re.S)


def test_partner_example_in_the_docs_passes(tmp_path):
    files = FILE_BLOCK.findall(DOCS.read_text())
    assert {name for name, _ in files} == {
        "example_status.py", "example_status_templates/status/index.html", "test_example_status.py"}
    for name, body in files:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env["PYTHONPATH"] = str(tmp_path)
    database = "postgres" if os.environ["PORTAL_DATABASE_URL"].startswith("postgres") else "sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--portal-db={database}",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=session",
         "-o", "asyncio_default_test_loop_scope=session", "test_example_status.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
