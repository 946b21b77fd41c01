"""Branding form values: what a tenant admin may set and which combinations are refused.

Colours are checked against WCAG 2.1 AA before they are saved:
- text on a primary-coloured button (black or white, whichever the stylesheet picks, see
  ``core.themes.readable_on``) needs 4.5:1;
- the primary colour as link and heading text on the theme's surface needs 4.5:1;
- text on the accent colour (badges and highlights use ``--color-accent-contrast`` on it) needs 4.5:1.
Only colours the admin sets are checked; an empty colour means "use the theme's", whose
choices are the theme author's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.themes import HEX_COLOUR, Theme, contrast_ratio, readable_on

AA_TEXT = 4.5
EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")

TEXT_FIELDS = {
    "product_name": 80, "sender_name": 80, "sender_email": 320, "support_email": 320, "support_url": 500,
    "legal_name": 200, "legal_address": 500, "tax_id": 50,
}
COLOUR_FIELDS = ("primary_color", "accent_color")
BRANDING_FIELDS = (*TEXT_FIELDS, *COLOUR_FIELDS)


@dataclass
class BrandingDraft:
    """What the form sent, normalised, plus errors per field."""

    values: dict[str, str]
    theme: str
    errors: dict[str, str]

    def branding(self, current: dict[str, Any]) -> dict[str, Any]:
        """The branding dict to store: the current one with the form's fields replaced (empty removes)."""
        merged = {k: v for k, v in current.items() if k not in BRANDING_FIELDS}
        merged.update({k: v for k, v in self.values.items() if v})
        return merged


def surface_of(theme: Theme) -> str:
    """The colour text sits on in this theme (cards), for the contrast checks."""
    colour = theme.tokens.get("color-surface", "#ffffff")
    return colour if HEX_COLOUR.match(colour) else "#ffffff"


def contrast_problems(primary: str | None, accent: str | None, theme: Theme) -> dict[str, str]:
    """Human-readable reasons the colours fail WCAG AA on ``theme`` (empty when they pass)."""
    problems: dict[str, str] = {}
    surface = surface_of(theme)
    if primary and HEX_COLOUR.match(primary):
        on_primary = readable_on(primary)
        ratio = contrast_ratio(primary, on_primary)
        if ratio < AA_TEXT:
            problems["primary_color"] = (
                f"Text on buttons in {primary} would have a contrast of {ratio:.2f}:1; WCAG AA needs {AA_TEXT}:1. "
                "Pick a darker or a lighter shade.")
        else:
            ratio = contrast_ratio(primary, surface)
            if ratio < AA_TEXT:
                problems["primary_color"] = (
                    f"Links in {primary} on the page background ({surface}) would have a contrast of {ratio:.2f}:1; "
                    f"WCAG AA needs {AA_TEXT}:1. Pick a darker shade.")
    if accent and HEX_COLOUR.match(accent):
        ratio = contrast_ratio(accent, readable_on(accent))
        if ratio < AA_TEXT:
            problems["accent_color"] = (
                f"Text on highlights in {accent} would have a contrast of {ratio:.2f}:1; WCAG AA needs "
                f"{AA_TEXT}:1. Pick a darker or a lighter shade.")
    return problems


def parse_branding(form: Any, themes: dict[str, Theme], current_theme: str) -> BrandingDraft:
    """Read and validate the branding form (also used, without saving, by the live preview)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, limit in TEXT_FIELDS.items():
        value = " ".join(str(form.get(name, "") or "").split()) if name != "legal_address" else \
            str(form.get(name, "") or "").strip().replace("\r\n", "\n")
        if len(value) > limit:
            errors[name] = f"Use at most {limit} characters."
        values[name] = value[:limit]
    for name in COLOUR_FIELDS:
        value = str(form.get(name, "") or "").strip().lower()
        if value and not value.startswith("#"):
            value = "#" + value
        if value and not HEX_COLOUR.match(value):
            errors[name] = "Enter a colour like #1a56db, or leave it empty to use the theme's colour."
            value = ""
        values[name] = value
    for name in ("sender_email", "support_email"):
        if values[name] and not EMAIL.match(values[name]):
            errors[name] = "Enter an email address like help@example.com."
    if values["support_url"]:
        parts = urlsplit(values["support_url"])
        if parts.scheme not in {"https", "http"} or not parts.netloc:
            errors["support_url"] = "Enter a full web address starting with https://."
    if values["sender_name"] and re.search(r"[<>\"@]", values["sender_name"]):
        errors["sender_name"] = "A sender name cannot contain <, >, \" or @."
    theme = str(form.get("theme", "") or current_theme)
    if theme not in themes:
        errors["theme"] = "Choose one of the listed themes."
        theme = current_theme
    for field, problem in contrast_problems(values["primary_color"], values["accent_color"], themes[theme]).items():
        errors.setdefault(field, problem)
    return BrandingDraft(values, theme, errors)
