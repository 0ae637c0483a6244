"""Version sets: which Celery/Kombu/redis-py the workers of one matrix column run.

From the command line (``--celery 5.3,5.4 --kombu 5.3,5.4``: one value applies to every column,
a list lines up with ``--celery``) or a matrix file (``version_sets: [{celery: "5.3"}, ...]``).
A value is a release (``5.5.3``: exactly it), a minor (``5.4``: its newest patch) or a PEP 440
specifier (``>=5.4,<5.5``). ``extras`` (a set's own list in the file, ``--extra`` for every set)
are more requirements installed beside them: ``gevent``/``eventlet`` for the green pools,
``setuptools<70`` for a stack that still imports ``pkg_resources`` (a uv environment has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from celery_chaos.core.yaml_input import InputError, read_yaml

# Option/key -> the distribution pip installs.
DISTRIBUTIONS = {
    "celery": "celery[redis]",
    "kombu": "kombu",
    "billiard": "billiard",
    "redis-py": "redis",
}
_RELEASE = re.compile(r"^\d+(\.\d+)*$")


class VersionSetError(ValueError):
    """Bad version input; the message names the option or file and the field."""


@dataclass(frozen=True)
class VersionSet:
    pins: dict[str, str] = field(default_factory=dict)  # key of DISTRIBUTIONS -> value as given
    name: str = ""
    extras: tuple[str, ...] = ()  # more requirements, as given (``setuptools<70``, ``gevent``)

    @property
    def label(self) -> str:
        """A column title and folder name: ``celery-5.3_kombu-5.3`` unless named."""
        return self.name or "_".join(f"{key}-{value}" for key, value in self.pins.items())

    def requirements(self) -> list[str]:
        return [requirement(key, value) for key, value in self.pins.items()] + list(self.extras)


def extras_of(value: object, where: str) -> tuple[str, ...]:
    """A list of PEP 508 requirements (``setuptools<70``, ``gevent==24.2.1``), else
    :class:`VersionSetError` naming ``where`` and the entry."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise VersionSetError(f"{where}: a list of requirements like ['setuptools<70', gevent]")
    for index, item in enumerate(value):
        try:
            Requirement(item)
        except InvalidRequirement:
            raise VersionSetError(
                f"{where}[{index}]: {item!r} is not a requirement (e.g. 'setuptools<70', gevent)"
            ) from None
    return tuple(value)


def with_extras(columns: list[VersionSet], extras: list[str], where: str) -> list[VersionSet]:
    """Every column with ``extras`` added (``--extra``: for all of them)."""
    added = extras_of(list(extras), where)
    return [replace(column, extras=column.extras + added) for column in columns]


def requirement(key: str, value: str) -> str:
    """``celery 5.4`` -> ``celery[redis]==5.4.*``; ``5.5.3`` -> ``==5.5.3``; a specifier as is."""
    distribution = DISTRIBUTIONS[key]
    if _RELEASE.match(value):
        exact = value.count(".") >= 2
        return f"{distribution}=={value}" if exact else f"{distribution}=={value}.*"
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise VersionSetError(
            f"--{key}: {value!r} is neither a version (5.4, 5.5.3) nor a specifier (>=5.4,<5.5)"
        ) from None
    return f"{distribution}{value}"


def from_options(options: dict[str, str | None]) -> list[VersionSet]:
    """Columns from ``--celery/--kombu/--billiard/--redis-py`` comma lists."""
    lists = {key: _split(value) for key, value in options.items() if value}
    if not lists:
        return []
    # --celery sets the number of columns; without it the longest list does.
    width = len(lists["celery"]) if "celery" in lists else max(map(len, lists.values()))
    for key, values in lists.items():
        if len(values) not in (1, width):
            raise VersionSetError(
                f"--{key}: {len(values)} values; give one (for every column) or {width}"
            )
    columns = [
        VersionSet(
            {key: values[0] if len(values) == 1 else values[i] for key, values in lists.items()}
        )
        for i in range(width)
    ]
    for column in columns:
        column.requirements()  # validate every value now: nothing is built on bad input
    return columns


def _split(value: str) -> list[str]:
    parts = [part.strip() for part in re.split(r",(?![<>=!~])", value)]
    return [part for part in parts if part]


def from_file(path: Path) -> list[VersionSet]:
    """``version_sets:`` of a matrix file, each a mapping of library -> version (+ ``name``)."""
    try:
        document = read_yaml(path)
    except InputError as error:
        raise VersionSetError(str(error)) from None
    entries = document.get("version_sets") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise VersionSetError(f"{path}: version_sets: a non-empty list of version mappings")
    columns = []
    for index, entry in enumerate(entries):
        where = f"{path}: version_sets[{index}]"
        if not isinstance(entry, dict):
            raise VersionSetError(f"{where}: a mapping like {{celery: '5.4'}}")
        unknown = set(entry) - set(DISTRIBUTIONS) - {"name", "extras"}
        if unknown:
            raise VersionSetError(
                f"{where}: unknown key {sorted(unknown)[0]!r};"
                f" expected {', '.join(DISTRIBUTIONS)}, name, extras"
            )
        pins = {key: str(entry[key]) for key in DISTRIBUTIONS if entry.get(key) is not None}
        extras = extras_of(entry["extras"], f"{where}.extras") if "extras" in entry else ()
        column = VersionSet(pins, str(entry.get("name") or ""), extras)
        try:
            column.requirements()
        except VersionSetError as error:
            raise VersionSetError(f"{where}: {error}") from None
        columns.append(column)
    return columns


def check_unique(columns: list[VersionSet]) -> None:
    labels = [column.label for column in columns]
    for label in labels:
        if labels.count(label) > 1:
            raise VersionSetError(f"version sets: {label!r} given twice")
