"""Deterministic, balanced slices of a suite for CI fan-out (``--shard I/N``).

Every shard computes the same assignment from the same inputs, so N jobs together run each item
exactly once with no coordination. Items are weighed by recorded durations when a previous run
is given (longest first, each to the lightest shard: LPT), else each counts 1 (round-robin in
name order). Ties break by name and shard number, never by chance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# Weight of every item when no previous run timed any.
DEFAULT_WEIGHT = 1.0


class ShardError(ValueError):
    """A malformed ``--shard``; the message names the option."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; shards are numbered from 1."""
    match = _SPEC.match(text)
    if not match:
        raise ShardError(f"--shard: {text!r}: expected I/N, e.g. 1/4")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or not 1 <= index <= total:
        raise ShardError(f"--shard: {text!r}: I must be between 1 and N (N >= 1)")
    return index, total


def assign(names: Sequence[str], total: int, durations: dict[str, float]) -> list[list[str]]:
    """``total`` lists of names, balanced by ``durations`` (missing: the median recorded)."""
    known = sorted(durations[name] for name in names if name in durations)
    fallback = known[len(known) // 2] if known else DEFAULT_WEIGHT
    weight = {name: float(durations.get(name, fallback)) for name in names}
    shards: list[list[str]] = [[] for _ in range(total)]
    loads = [0.0] * total
    for name in sorted(set(names), key=lambda n: (-weight[n], n)):
        lightest = min(range(total), key=lambda i: (loads[i], len(shards[i]), i))
        shards[lightest].append(name)
        loads[lightest] += weight[name]
    return shards


def select(
    items: Sequence[Item],
    shard: tuple[int, int],
    key: Callable[[Item], str],
    durations: dict[str, float] | None = None,
) -> list[Item]:
    """The items of shard ``I/N`` in their original order."""
    index, total = shard
    chosen = set(assign([key(item) for item in items], total, durations or {})[index - 1])
    return [item for item in items if key(item) in chosen]
