"""Translations: user-facing strings are marked with ``_()`` / ``{% trans %}`` and extracted by Babel.

``make messages`` extracts them into ``core/locale/messages.pot``; a locale is
added with ``pybabel init``. Until a catalogue exists the strings show as written.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"


def translations(locale: str | None) -> NullTranslations:
    """The catalogue for ``locale``, or pass-through translations."""
    if locale and LOCALE_DIR.exists():
        return Translations.load(str(LOCALE_DIR), [locale])
    return NullTranslations()


def install_translations(env: jinja2.Environment, locale: str | None = None) -> None:
    """Give templates ``_``, ``gettext`` and ``ngettext`` (new-style: auto-escaped, %-formatting)."""
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]


def _(message: str) -> str:
    """Mark a Python string for extraction; translated at render time by the template."""
    return message
