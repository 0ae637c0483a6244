"""Reading a YAML input file strictly: one UTF-8 text document of plain mappings, lists and
scalars, or a one-line error naming the file, the line and what is wrong.

PyYAML on its own accepts things that make a scenario mean something other than it says: a key
given twice keeps the last value silently, ``---`` starts a second document that ``safe_load``
refuses with a multi-line message, tags (``!!binary``, ``!!set``, ``!!python/...``) turn values
into types no scenario field takes. All of these are refused here, before any validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024  # a scenario is a page of YAML; a bigger file is a wrong path


class InputError(ValueError):
    """An input file is malformed; the message is one line naming the file and the reason."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}"
    position = getattr(error, "position", None)  # a ReaderError: a bad character
    return f"character {position}" if position is not None else "(file)"


def _problem(error: yaml.YAMLError) -> str:
    """The YAML error's own one-line reason (PyYAML's str() spans several lines)."""
    if isinstance(error, yaml.reader.ReaderError):
        return f"character {error.character!r} is not allowed in YAML text"
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    return ", ".join(p for p in parts if p) or str(error).splitlines()[0]


def decode_text(raw: bytes, source: str) -> str:
    """UTF-8 text or an :class:`InputError` saying where the first non-text byte is."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            f"{source}: line {line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset"
            f" {error.start}); save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError(f"{source}: line {line}: not a text file (it contains NUL bytes)")
    return text


def _refuse_tags(text: str, source: str) -> None:
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.TagToken):
            handle, suffix = token.value
            raise InputError(
                f"{source}: line {token.start_mark.line + 1}: YAML tag {handle or ''}{suffix}"
                " is not allowed; write a plain value"
            )


def parse_yaml(text: str, source: str) -> Any:
    """Exactly one YAML document without tags or duplicate keys, as Python data."""
    try:
        _refuse_tags(text, source)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.composer.ComposerError as error:
        if error.problem == "but found another document":
            raise InputError(
                f"{source}: {_where(error)}: a second YAML document ('---') in one file;"
                " put one per file"
            ) from None
        raise InputError(f"{source}: {_where(error)}: not valid YAML: {_problem(error)}") from None
    except yaml.YAMLError as error:
        raise InputError(f"{source}: {_where(error)}: not valid YAML: {_problem(error)}") from None


def read_yaml(path: Path) -> Any:
    """Read and parse ``path`` strictly (size, encoding, one document, no tags, unique keys)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{path}: {size} bytes: larger than the {MAX_FILE_BYTES} bytes a scenario file"
                " may have"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    return parse_yaml(decode_text(raw, str(path)), str(path))
