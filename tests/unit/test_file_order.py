"""The table the suite's file order comes from (tests/conftest.py) names real test files, slowest
first, as ``benchmarks/ci_wall.py --write-order`` writes it: a renamed file would otherwise
silently lose its place and run wherever the median puts it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FILE_SECONDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_in_the_table_exists_and_the_slowest_come_first() -> None:
    seconds: dict[str, float] = json.loads(FILE_SECONDS.read_text())["seconds"]
    missing = [name for name in seconds if not (ROOT / name).is_file()]
    assert missing == [], f"regenerate with benchmarks/ci_wall.py --write-order: {missing}"
    assert list(seconds.values()) == sorted(seconds.values(), reverse=True)
