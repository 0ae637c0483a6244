"""Masking secrets in everything a run writes or prints: reports are CI artifacts.

One function, :func:`mask`, for every report file and console line: values of settings and
environment variables whose *names* look secret become ``***``, and the password part of every
URL in every string becomes ``***`` (``redis://user:***@host/0``).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|(?<!routing_)key|credential|auth|cookie|session|"
    r"private|signature|cert",
    re.IGNORECASE,
)
URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)")


def secret_name(name: str) -> bool:
    """Whether a setting/variable named ``name`` probably holds a secret."""
    return bool(SECRET_NAME.search(name))


def mask_text(text: str) -> str:
    """Every URL's password in ``text`` replaced by ``***``."""
    return URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def mask(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with secrets masked: mapping entries under a secret-looking
    name, and URL passwords in every string. ``KEY=VALUE`` strings count as a mapping entry."""
    if isinstance(value, str):
        name, sep, rest = value.partition("=")
        if sep and name.isidentifier() and secret_name(name):
            return f"{name}={MASK}"
        return mask_text(value)
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and secret_name(k) and v else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """A history event masked: its own fields are the harness's schema (``key`` of a side
    effect is not a secret), so only their values are masked, nested mappings by name."""
    return {k: mask(v) for k, v in event.items()}
