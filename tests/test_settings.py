"""Settings: defaults, production requirements, and one clear line for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import SettingsError, load_settings


def test_development_defaults_generate_a_secret_once(tmp_path):
    first = load_settings({"PORTAL_VAR_DIR": str(tmp_path)})
    second = load_settings({"PORTAL_VAR_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.database_url == f"sqlite:///{tmp_path / 'portal.db'}"
    assert not first.production and first.password_hash_profile == "production"


def test_production_requires_a_secret_and_never_generates_one(tmp_path):
    with pytest.raises(SettingsError, match="PORTAL_SECRET_KEY: required when PORTAL_ENV=production"):
        load_settings({"PORTAL_ENV": "production", "PORTAL_VAR_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()
    settings = load_settings({"PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "s" * 40})
    assert settings.production and settings.mail_backend == "smtp"


@pytest.mark.parametrize(("env", "message"), [
    ({"PORTAL_DATABASE_URL": "mysql://x"}, "PORTAL_DATABASE_URL"),
    ({"PORTAL_DEBUG": "maybe"}, "PORTAL_DEBUG: expected true or false"),
    ({"PORTAL_TRUSTED_PROXIES": "10.0.0.0/8, not-an-ip"}, "PORTAL_TRUSTED_PROXIES: 'not-an-ip'"),
    ({"PORTAL_SECRET_KEY": "short"}, "PORTAL_SECRET_KEY: must be at least 32"),
    ({"PORTAL_REDIS_URL": "http://x"}, "PORTAL_REDIS_URL"),
    ({"PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "s" * 40, "PORTAL_PASSWORD_HASH_PROFILE": "test"},
     "cheap test profile is refused in production"),
    ({"PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "s" * 40, "PORTAL_MAIL_BACKEND": "dev"},
     "dev backend is refused in production"),
])
def test_bad_settings_name_the_variable(env, message, tmp_path):
    with pytest.raises(SettingsError, match=message):
        load_settings({"PORTAL_VAR_DIR": str(tmp_path), **env})


def test_cli_prints_one_line_and_exits_2_on_a_bad_setting(tmp_path):
    import os

    env = {**os.environ, "PORTAL_ENV": "production", "PORTAL_VAR_DIR": str(tmp_path)}
    env.pop("PORTAL_SECRET_KEY", None)
    result = subprocess.run([sys.executable, "-m", "core", "migrate"], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "portal: configuration error: PORTAL_SECRET_KEY: required when PORTAL_ENV=production (never generated there)"
    ]
