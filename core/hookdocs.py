"""The hooks reference, generated from ``core/hookspecs.py`` (``portal hooks docs``)."""

from __future__ import annotations

import inspect

from core import hookspecs


def hooks_markdown() -> str:
    """Markdown with one section per hook: signature and docstring."""
    lines = ["# Portal hooks", "", inspect.cleandoc(hookspecs.__doc__ or ""), ""]
    for name in hookspecs.HOOK_NAMES:
        func = getattr(hookspecs, name)
        kind = "build time" if name in hookspecs.BUILD_TIME_HOOKS else "request time"
        lines += [f"## `{name}{inspect.signature(func)}` ({kind})", "", inspect.cleandoc(func.__doc__ or ""), ""]
    return "\n".join(lines)
