"""Prompt templates, one text file each, with named ``{placeholders}``; loaded by name."""

from __future__ import annotations

import hashlib
import string
from functools import cache
from pathlib import Path

PROMPT_DIR = Path(__file__).resolve().parent


@cache
def template(name: str) -> str:
    """The raw text of ``prompts/<name>.txt``."""
    return (PROMPT_DIR / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """Fill the named placeholders of a template; a missing value is an error."""
    text = template(name)
    needed = {field for _, field, _, _ in string.Formatter().parse(text) if field}
    missing = needed - values.keys()
    if missing:
        raise KeyError(f"prompt '{name}' needs {sorted(missing)}")
    return text.format(**values)


def version(name: str) -> str:
    """A short hash of a template's text: part of every cache key built from it."""
    return hashlib.sha256(template(name).encode()).hexdigest()[:12]
