"""``--shard I/N``: every scenario in exactly one shard, the same split on every machine,
balanced by recorded durations when a previous run gives them."""

from __future__ import annotations

import pytest
from celery_chaos.core.shards import ShardError, assign, parse_shard, select

NAMES = [f"scenario-{i:02d}" for i in range(11)]


@pytest.mark.parametrize("total", [1, 2, 3, 4, 11, 15])
def test_every_scenario_runs_in_exactly_one_shard(total: int) -> None:
    shards = [select(NAMES, (i, total), str) for i in range(1, total + 1)]
    flat = [name for shard in shards for name in shard]
    assert sorted(flat) == NAMES
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1  # without durations: balanced by count


def test_the_split_does_not_depend_on_input_order() -> None:
    reversed_split = [select(NAMES[::-1], (i, 3), str) for i in (1, 2, 3)]
    split = [select(NAMES, (i, 3), str) for i in (1, 2, 3)]
    assert [sorted(s) for s in reversed_split] == [sorted(s) for s in split]
    assert split[0] == sorted(split[0])  # each slice keeps the suite's order


def test_recorded_durations_balance_the_wall_time() -> None:
    durations = {"long": 60.0, "a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0, "e": 10.0, "f": 10.0}
    shards = assign(list(durations), 2, durations)
    loads = sorted(sum(durations[n] for n in shard) for shard in shards)
    assert loads == [60.0, 60.0]
    assert ["long"] in shards  # by count it would have been 4 + 3 scenarios


def test_a_scenario_no_run_timed_weighs_the_median() -> None:
    shards = assign(["new", "x", "y", "z"], 2, {"x": 30.0, "y": 1.0, "z": 2.0})
    assert {"x"} in [set(s) for s in shards] or {"x", "y"} in [set(s) for s in shards]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1", "1/2/3", "-1/2"])
def test_a_malformed_shard_names_the_option(text: str) -> None:
    with pytest.raises(ShardError, match=r"^--shard: "):
        parse_shard(text)


def test_shard_spec() -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
