"""Masking secrets in everything a run writes or prints: reports are CI artifacts.

Two rules, applied by :func:`mask` (and the report-shaped :func:`mask_report` and
:func:`mask_event`, which only say *where* the user's own settings sit):

- the password part of every URL in every string becomes ``***`` (``redis://user:***@host/0``);
- in the user's settings and environment (``celery``, ``workers.env``, repro's ``--set`` and
  ``--env``, a task's kwargs), and in ``NAME=VALUE`` strings, a value whose *name* looks secret
  becomes ``***``.

Names are only judged inside the user's mappings: the report's own fields (a side effect's
``key``, a probe's ``keys``) are the harness's schema, never secrets.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Anywhere in a name: these words are never innocent.
SECRET_PARTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE", "COOKIE")
# Whole words of a name only (``AUTH`` but not ``AUTHOR``; ``KEY`` but not ``KEYS``).
SECRET_WORDS = frozenset({"KEY", "APIKEY", "AUTH", "PASS", "PWD", "CERT", "SIGNATURE", "SESSION"})
NOT_SECRET = frozenset({"ROUTING_KEY"})
URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)")
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=")


def secret_name(name: str) -> bool:
    """Whether a setting/variable named ``name`` probably holds a secret."""
    upper = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).upper()
    if any(upper.endswith(safe) for safe in NOT_SECRET):
        return False
    words = set(re.split(r"[^A-Z0-9]+", upper))
    return bool(words & SECRET_WORDS) or any(part in upper for part in SECRET_PARTS)


def mask_text(text: str) -> str:
    """Every URL's password in ``text`` replaced by ``***``."""
    return URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def mask(value: Any, names: bool = False) -> Any:
    """A copy of ``value`` (JSON-like) with URL passwords masked in every string and, with
    ``names`` (the user's own mappings), entries under secret-looking names masked too."""
    if isinstance(value, str):
        match = ASSIGNMENT.match(value)
        if match and secret_name(match.group("name")):
            return f"{match.group('name')}={MASK}"
        return mask_text(value)
    if isinstance(value, dict):
        return {
            k: MASK if names and isinstance(k, str) and secret_name(k) and v else mask(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v, names) for v in value]
    return value


def _mask_at(document: dict[str, Any], *path: str) -> None:
    """Name-mask the user's mapping at ``path`` inside ``document``, if it is there."""
    *parents, last = path
    holder: Any = document
    for part in parents:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if isinstance(holder, dict) and isinstance(holder.get(last), dict):
        holder[last] = mask(holder[last], names=True)


USER_MAPPINGS = (("config", "celery"), ("config", "workers", "env"), ("repro", "overrides"))


def mask_report(document: dict[str, Any]) -> dict[str, Any]:
    """A result.json document masked: URLs everywhere, names in the user's settings/env."""
    masked = mask(document)
    for path in USER_MAPPINGS:
        _mask_at(masked, *path)
    return masked


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """A history event masked: URLs everywhere, names in a dispatch's kwargs and options."""
    return {k: mask(v, names=k in ("kwargs", "options")) for k, v in event.items()}
