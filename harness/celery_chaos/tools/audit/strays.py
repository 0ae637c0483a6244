"""Dead config: Celery settings written where the app never reads them. An environment
variable ``CELERY_ACKS_LATE=True`` that no code consumes (mitodl/ol-infrastructure#5404), a
Django setting ``TASK_ACKS_LATE`` without the ``CELERY_`` namespace the app configured with
``config_from_object(..., namespace="CELERY")``, or ``CELERY_TASK_ACKS_LATE`` in a settings
object read without one.

Each candidate is judged by what the app runs with, not by guessing Celery's loading rules: a
value Celery did read is the app's effective value; one that differs from it was never read (or
was overridden later), and the team's intent silently did not happen. :func:`strays` reads a real
app and its environment; the rest is pure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
ENVIRONMENT = "environment variable"


@dataclass(frozen=True)
class Stray:
    """A setting written somewhere (``where``: an environment variable, a settings object) as
    ``name`` = ``value``, meant for Celery's ``key``, while the app runs with ``effective``."""

    where: str
    name: str
    value: Any
    key: str
    effective: Any

    @property
    def dead(self) -> bool:
        """The app does not run with the value written (never read, or overridden)."""
        value = parsed(self.value, self.effective) if self.where == ENVIRONMENT else self.value
        return value != self.effective


def meant_key(
    name: str, namespace: str | None, keys: Iterable[str], old: Mapping[str, str]
) -> str | None:
    """The Celery setting an upper-case ``name`` is meant for: ``CELERY_TASK_ACKS_LATE`` and
    ``TASK_ACKS_LATE`` -> ``task_acks_late``, an old name (``CELERYD_PREFETCH_MULTIPLIER``)
    through Celery's own table ``old``; None for a name that is no Celery setting."""
    known = set(keys)
    prefixes = [f"{namespace}_"] if namespace else []
    for prefix in [*prefixes, "CELERY_", ""]:
        if name.startswith(prefix) and name[len(prefix) :].lower() in known:
            return name[len(prefix) :].lower()
    return old.get(name)


def parsed(text: Any, like: Any) -> Any:
    """An environment variable's text as the type of the value it would replace."""
    if not isinstance(text, str):
        return text
    lowered = text.strip().lower()
    if isinstance(like, bool) or like is None and lowered in TRUE + FALSE:
        return lowered in TRUE if lowered in TRUE + FALSE else text
    for kind in (int, float):
        if isinstance(like, kind) or like is None:
            try:
                return kind(text)
            except ValueError:
                continue
    return text


def source_object(app: Any) -> Any:
    """The object the app's settings came from (``config_from_object``), resolved; None."""
    source = getattr(app, "_config_source", None)
    if isinstance(source, str):
        from celery.utils.imports import symbol_by_name

        try:
            return symbol_by_name(source)
        except Exception:
            return None
    return source


def cli_environment() -> frozenset[str]:
    """The ``CELERY_*`` variables the ``celery`` command itself reads: its options' click
    environment names (``CELERY_WORKER_CONCURRENCY``...) and those Celery reads by name."""
    from celery.bin.celery import celery

    names = {
        "CELERY_CONFIG_MODULE", "CELERY_LOADER", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
        "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL", "CELERY_CUSTOM_WORKER_POOL",
        "CELERY_SKIP_CHECKS", "CELERY_TRACE_APP", "CELERY_RDB_HOST", "CELERY_RDB_PORT",
        "CELERY_LOG_LEVEL", "CELERY_LOG_FILE", "CELERY_LOG_REDIRECT", "CELERY_LOG_REDIRECT_LEVEL",
    }  # fmt: skip
    commands = [("CELERY", celery)]
    while commands:
        prefix, command = commands.pop()
        names |= {f"{prefix}_{p.name.upper()}" for p in command.params if p.name}
        for name, sub in getattr(command, "commands", {}).items():
            commands.append((f"{prefix}_{name.upper().replace('-', '_')}", sub))
    return frozenset(names)


def strays(app: Any, environ: Mapping[str, str] | None = None) -> list[Stray]:
    """The Celery settings the app's environment and settings object write, with what the app
    runs with for each (:attr:`Stray.dead` says which it never read)."""
    from celery.app.defaults import _TO_NEW_KEY, DEFAULTS

    environ = os.environ if environ is None else environ
    found: list[tuple[str, str, Any, str | None]] = []
    consumed = cli_environment()
    for name, value in sorted(environ.items()):
        if name.startswith("CELERY") and name not in consumed:
            found.append((ENVIRONMENT, name, value, meant_key(name, None, DEFAULTS, _TO_NEW_KEY)))
    source, namespace = source_object(app), getattr(app, "namespace", None)
    if source is not None:
        given = getattr(app, "_config_source", None)
        label = given if isinstance(given, str) else getattr(source, "__name__", "the object")
        where = f"{label} (config_from_object"
        where += f", namespace {namespace})" if namespace else ", no namespace)"
        for name in sorted(n for n in dir(source) if n.isupper()):
            key = meant_key(name, namespace, DEFAULTS, _TO_NEW_KEY)
            found.append((where, name, getattr(source, name, None), key))
    return [Stray(w, n, v, k, app.conf.get(k)) for w, n, v, k in found if k is not None]
