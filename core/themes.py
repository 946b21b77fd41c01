"""Themes: design tokens (``theme.toml``), template overrides and static files.

A tenant's branding overrides its theme's tokens; the result becomes CSS custom
properties in a small, content-hashed stylesheet per tenant and version, so a
browser caches it forever and a branding change gets a new URL. Each theme has
one cached Jinja2 environment whose loader looks in the theme, then in the
plugins' template folders, then in the core.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import i18n as i18n_extension  # noqa: F401  (named in the env's extension list)

from core.i18n import install_translations

CORE_TEMPLATES = Path(__file__).parent / "templates"
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

BRANDING_TOKENS = {"primary_color": "color-primary", "accent_color": "color-accent"}


@dataclass(frozen=True)
class Theme:
    """A theme folder: tokens, layout name, template and static folders."""

    name: str
    label: str
    description: str
    layout: str
    tokens: dict[str, str]
    path: Path
    extra_css: str = ""
    fonts: dict[str, str] = field(default_factory=dict)

    @property
    def template_dir(self) -> Path:
        """Templates that override plugins' and the core's."""
        return self.path / "templates"

    @property
    def static_dir(self) -> Path:
        """Files served at ``/static/themes/{name}/``."""
        return self.path / "static"

    @property
    def default_logo(self) -> Path | None:
        """The theme's logo, shown when the tenant uploaded none."""
        logo = self.static_dir / "logo.svg"
        return logo if logo.exists() else None


class ThemeError(ValueError):
    """A theme folder is malformed (named file and reason)."""


def load_theme(path: Path) -> Theme:
    """Read one theme folder."""
    manifest = path / "theme.toml"
    try:
        data = tomllib.loads(manifest.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{manifest}: {exc}") from None
    tokens = {str(k): str(v) for k, v in data.get("tokens", {}).items()}
    css_path = path / "static" / "theme.css"
    return Theme(
        name=path.name,
        label=data.get("label", path.name.title()),
        description=data.get("description", ""),
        layout=data.get("layout", "sidebar"),
        tokens=tokens,
        path=path,
        extra_css=css_path.read_text() if css_path.exists() else "",
    )


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance of a ``#rrggbb`` colour."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    return "#ffffff" if contrast_ratio(colour, "#ffffff") >= contrast_ratio(colour, "#111827") else "#111827"


def tenant_tokens(theme: Theme, branding: dict[str, Any]) -> dict[str, str]:
    """The theme's tokens with the tenant's branding on top, plus derived text colours."""
    tokens = dict(theme.tokens)
    for key, token in BRANDING_TOKENS.items():
        value = branding.get(key)
        if isinstance(value, str) and HEX_COLOUR.match(value):
            tokens[token] = value.lower()
    for token in ("color-primary", "color-accent"):
        if HEX_COLOUR.match(tokens.get(token, "")):
            tokens[f"{token}-contrast"] = readable_on(tokens[token])
    return tokens


def stylesheet(theme: Theme, branding: dict[str, Any]) -> str:
    """The per-tenant stylesheet: tokens as custom properties, then the theme's own CSS."""
    tokens = tenant_tokens(theme, branding)
    props = "\n".join(f"  --{name}: {value};" for name, value in sorted(tokens.items()))
    return f":root {{\n{props}\n}}\n{theme.extra_css}"


def content_hash(text: str | bytes) -> str:
    """Short hash for cache-busting URLs."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]


class ThemeRegistry:
    """Every theme of ``themes/`` and one Jinja2 environment per theme (per app)."""

    def __init__(self, themes_dir: Path, plugin_template_dirs: list[Path]) -> None:
        self.themes: dict[str, Theme] = {}
        if themes_dir.exists():
            for path in sorted(themes_dir.iterdir()):
                if (path / "theme.toml").exists():
                    self.themes[path.name] = load_theme(path)
        if "default" not in self.themes:
            raise ThemeError(f"{themes_dir}: no 'default' theme (themes/default/theme.toml)")
        self.plugin_template_dirs = plugin_template_dirs
        self._envs: dict[str, jinja2.Environment] = {}
        self._css: dict[tuple[Any, ...], tuple[str, str]] = {}

    def get(self, name: str) -> Theme:
        """A theme by name, ``default`` when the name is unknown."""
        return self.themes.get(name) or self.themes["default"]

    def environment(self, theme: Theme) -> jinja2.Environment:
        """The cached environment: theme templates → plugin templates → core templates."""
        env = self._envs.get(theme.name)
        if env is None:
            loader = jinja2.ChoiceLoader([
                jinja2.FileSystemLoader(str(theme.template_dir)),
                *(jinja2.FileSystemLoader(str(d)) for d in self.plugin_template_dirs),
                jinja2.FileSystemLoader(str(CORE_TEMPLATES)),
            ])
            env = jinja2.Environment(
                loader=loader,
                autoescape=jinja2.select_autoescape(["html", "xml", "svg"], default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                enable_async=False,
                auto_reload=False,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            install_translations(env)
            self._envs[theme.name] = env
        return env

    def tenant_css(self, tenant: Any) -> tuple[str, str]:
        """``(hash, css)`` of a tenant's stylesheet, cached per tenant version."""
        key = (tenant.id, tenant.version, tenant.theme)
        cached = self._css.get(key)
        if cached is None:
            css = stylesheet(self.get(tenant.theme), tenant.branding)
            cached = (content_hash(css), css)
            self._css[key] = cached
        return cached
