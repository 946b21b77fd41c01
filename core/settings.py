"""Settings read from ``PORTAL_*`` environment variables.

One frozen object built once per app: tests build their own with overrides, so
no setting leaks between apps. A wrong or missing required setting raises
``SettingsError`` whose message is one line naming the variable and the reason;
the CLI prints that line and exits instead of showing a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_PLUGINS = (
    "core.builtin",
    "plugins.team",
    "plugins.apikeys",
    "plugins.audit",
    "plugins.billing",
    "plugins.usage",
    "plugins.sso",
)


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it and says why."""


@dataclass(frozen=True)
class Settings:
    """Everything the portal reads from its environment."""

    env: str = "development"
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'portal.db'}"
    secret_key: str = ""
    debug: bool = False
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    redis_url: str | None = None
    plugin_allowlist: tuple[str, ...] | None = None
    builtin_plugins: tuple[str, ...] = BUILTIN_PLUGINS
    load_entry_points: bool = True
    themes_dir: Path = PROJECT_ROOT / "themes"
    var_dir: Path = PROJECT_ROOT / "var"
    tenant_cache_ttl: float = 30.0
    session_idle_timeout: int = 8 * 3600
    session_absolute_timeout: int = 14 * 24 * 3600
    password_hash_profile: str = "production"
    mail_backend: str = "dev"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    outbox_worker: bool = True
    outbox_poll_interval: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        """Production turns on Secure cookies and refuses generated secrets."""
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        """SQLite needs immediate transactions and WAL; PostgreSQL a connection pool."""
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (tests, CLI flags)."""
        return replace(self, **changes)


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"PORTAL_{name}: expected true or false, got {raw!r}")


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"PORTAL_{name}: expected a whole number, got {raw!r}") from None


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"PORTAL_TRUSTED_PROXIES: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite:///", "postgres://", "postgresql://")):
        raise SettingsError(
            "PORTAL_DATABASE_URL: must start with sqlite:/// or postgresql://, got " + repr(raw.split(":")[0])
        )
    return raw


def _dev_secret(var_dir: Path) -> str:
    """Generate the development secret once and keep it in var/ so sessions survive restarts."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment; raise ``SettingsError`` on the first bad one."""
    env = dict(os.environ if environ is None else environ)
    get = lambda name: env.get(f"PORTAL_{name}")  # noqa: E731
    values: dict[str, object] = {}
    portal_env = get("ENV") or "development"
    if portal_env not in {"development", "production", "test"}:
        raise SettingsError(f"PORTAL_ENV: expected development, production or test, got {portal_env!r}")
    values["env"] = portal_env
    if (raw := get("VAR_DIR")) is not None:
        values["var_dir"] = Path(raw)
    var_dir = Path(values.get("var_dir", Settings.var_dir))  # type: ignore[arg-type]
    if (raw := get("DATABASE_URL")) is not None:
        values["database_url"] = _database_url(raw)
    elif "var_dir" in values:
        values["database_url"] = f"sqlite:///{var_dir / 'portal.db'}"
    secret = get("SECRET_KEY")
    if secret is not None and len(secret) < 32:
        raise SettingsError("PORTAL_SECRET_KEY: must be at least 32 characters of random text")
    if secret is None:
        if portal_env == "production":
            raise SettingsError("PORTAL_SECRET_KEY: required when PORTAL_ENV=production (never generated there)")
        secret = _dev_secret(var_dir)
    values["secret_key"] = secret
    if (raw := get("DEBUG")) is not None:
        values["debug"] = _bool("DEBUG", raw)
    if (raw := get("TRUSTED_PROXIES")) is not None:
        values["trusted_proxies"] = _networks(raw)
    if raw := get("REDIS_URL"):
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("PORTAL_REDIS_URL: must start with redis://, rediss:// or unix://")
        values["redis_url"] = raw
    if (raw := get("PLUGINS")) is not None:
        values["plugin_allowlist"] = tuple(p.strip() for p in raw.split(",") if p.strip())
    if (raw := get("THEMES_DIR")) is not None:
        values["themes_dir"] = Path(raw)
    if (raw := get("TENANT_CACHE_TTL")) is not None:
        values["tenant_cache_ttl"] = float(_int("TENANT_CACHE_TTL", raw))
    if (raw := get("SESSION_IDLE_TIMEOUT")) is not None:
        values["session_idle_timeout"] = _int("SESSION_IDLE_TIMEOUT", raw)
    if (raw := get("SESSION_ABSOLUTE_TIMEOUT")) is not None:
        values["session_absolute_timeout"] = _int("SESSION_ABSOLUTE_TIMEOUT", raw)
    if (raw := get("PASSWORD_HASH_PROFILE")) is not None:
        if raw not in {"production", "test"}:
            raise SettingsError("PORTAL_PASSWORD_HASH_PROFILE: expected production or test")
        if raw == "test" and portal_env == "production":
            raise SettingsError("PORTAL_PASSWORD_HASH_PROFILE: the cheap test profile is refused in production")
        values["password_hash_profile"] = raw
    if (raw := get("MAIL_BACKEND")) is not None:
        if raw not in {"dev", "smtp"}:
            raise SettingsError("PORTAL_MAIL_BACKEND: expected dev or smtp")
        if raw == "dev" and portal_env == "production":  # /_dev/mail would show anyone the reset links
            raise SettingsError("PORTAL_MAIL_BACKEND: the dev backend is refused in production "
                                "(its mail, reset links included, is readable at /_dev/mail)")
        values["mail_backend"] = raw
    elif portal_env == "production":
        values["mail_backend"] = "smtp"
    for name, key in (("SMTP_HOST", "smtp_host"), ("SMTP_USERNAME", "smtp_username"),
                      ("SMTP_PASSWORD", "smtp_password")):
        if (raw := get(name)) is not None:
            values[key] = raw
    if (raw := get("SMTP_PORT")) is not None:
        values["smtp_port"] = _int("SMTP_PORT", raw)
    if (raw := get("SMTP_STARTTLS")) is not None:
        values["smtp_starttls"] = _bool("SMTP_STARTTLS", raw)
    if (raw := get("OUTBOX_WORKER")) is not None:
        values["outbox_worker"] = _bool("OUTBOX_WORKER", raw)
    values["extra"] = {k[len("PORTAL_"):].lower(): v for k, v in env.items() if k.startswith("PORTAL_")}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
