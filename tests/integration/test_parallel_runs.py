"""``celery-chaos run`` with its default ``--jobs auto`` and with ``--jobs N``, real workers: the
same verdicts as one at a time, output in suite order and never wrapped off a terminal, and
nothing outlives a harness killed mid-run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from celery_chaos.placements.local import reaper
from celery_chaos.placements.local.state import REPORT_COPY, STATE_DIR_ENV, RunState

from tests.integration.interrupts import as_from_a_terminal, signal_state
from tests.integration.test_harness_death import (
    GONE_DEADLINE,
    SCENARIO,
    cgroups_usable,
    sweep_after_failure,  # noqa: F401 - autouse: a failing test's leftovers are removed
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUITE = ["ack-late-reject-child-kill", "broker-restart-no-persistence", "broker-restart-aof"]


def run_cli(report_dir: Path, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    only = [arg for name in SUITE for arg in ("--only", name)]
    return subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", *only, "--seed", "11",
         "--report-dir", str(report_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=os.environ | {"COLUMNS": "80", "TERM": "dumb"} | (env or {}),
    )  # fmt: skip


def verdicts(report_dir: Path) -> dict[str, tuple[str, dict[str, int]]]:
    found = {}
    for path in (report_dir / "latest").glob("*/result.json"):
        document = json.loads(path.read_text())
        found[document["scenario"]] = (document["status"], document["verdicts"])
    return found


def test_the_default_gives_the_same_verdicts_in_suite_order_unwrapped(tmp_path: Path) -> None:
    deep = tmp_path / ("a-long-folder-name-so-that-report-paths-pass-eighty-columns" * 2)
    one, two = run_cli(deep / "one", "--jobs", "1"), run_cli(deep / "two")  # two: --jobs auto
    assert one.returncode == 0, one.stdout + one.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    assert verdicts(deep / "one") == verdicts(deep / "two")
    assert set(verdicts(deep / "two")) == set(SUITE)
    lines = two.stdout.splitlines()
    headers = [line.split()[1] for line in lines if line.startswith("== ")]
    assert headers == SUITE  # the suite's order (files 03, 09a, 09b), whatever finished first
    titles = [line for line in lines if line.endswith(": passed")]
    assert titles == [f"{name}: passed" for name in SUITE]  # each title one whole line
    footers = [line for line in lines if "tasks, ended:" in line]
    assert len(footers) == 3 and all(line.endswith("report.html") for line in footers)
    assert all(len(line) > 120 for line in footers)  # long, and still not wrapped
    for name in SUITE:  # a scenario's lines stay together: its header, schedule, title, footer
        block = lines[lines.index(f"== {name} (backend local, seed 11)") :]
        end = next(i for i, line in enumerate(block) if "tasks, ended:" in line)
        assert all(not line.startswith("== ") for line in block[1:end])


def _started_workers(state_dir: Path, runs: int, workers: int) -> bool:
    states = []
    for path in state_dir.glob("*.json"):
        try:
            states.append(RunState.load(path))
        except (OSError, ValueError, KeyError, TypeError):
            return False
    roles = [[g.role for g in s.groups if g.role.startswith("worker")] for s in states]
    return len(states) == runs and all(len(r) == workers for r in roles)


def two_long_scenarios(tmp_path: Path) -> Path:
    limit = ", memory_limit: 1G" if cgroups_usable() else ""
    folder = tmp_path / "suite"
    folder.mkdir()
    for name in ("long-one", "long-two"):
        text = SCENARIO.format(limit=limit).replace("name: long-running", f"name: {name}")
        (folder / f"{name}.yaml").write_text(text)
    return folder


rng = random.Random(9_2026)
KILLS = [
    (signal.SIGKILL, round(rng.uniform(0.0, 1.5), 3)),
    (signal.SIGINT, round(rng.uniform(0.0, 1.5), 3)),
    (signal.SIGTERM, round(rng.uniform(0.0, 1.5), 3)),
]


@pytest.mark.parametrize(
    ("sig", "delay"), KILLS, ids=[f"{signal.Signals(s).name}+{d}s" for s, d in KILLS]
)
def test_nothing_outlives_a_harness_killed_with_jobs(
    tmp_path: Path, sig: int, delay: float
) -> None:
    """Two scenarios at once, their workers started by pool threads: killed mid-run (both
    running a 30 s task), the harness leaves nothing behind."""
    state_dir = tmp_path / "state"
    harness = subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(two_long_scenarios(tmp_path)),
         "--jobs", "2", "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)}, preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    try:
        end = time.monotonic() + 120
        while not _started_workers(state_dir, runs=2, workers=2):
            assert harness.poll() is None and time.monotonic() < end, "workers never started"
            time.sleep(0.05)
        time.sleep(delay)  # the kill moment drawn from the seeded RNG
        seen = psutil.Process(harness.pid).children(recursive=True)
        assert len(seen) >= 2 * (2 + 2), seen  # two runs: ledger, broker, two workers each
        state = signal_state(harness.pid)
        harness.send_signal(sig)
        code = harness.wait(timeout=90)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130), state
    states = [RunState.load(c) for c in (tmp_path / "reports").glob(f"*/*/{REPORT_COPY}")]
    assert len(states) == 2
    _, alive = psutil.wait_procs(seen, timeout=GONE_DEADLINE)
    assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
    end = time.monotonic() + GONE_DEADLINE
    while time.monotonic() < end:
        left = [reaper.leftovers(state) for state in states]
        cgroups = [c for state in states for c in state.cgroups if Path(c).exists()]
        if not any(left) and not cgroups and not list(state_dir.glob("*.json")):
            return
        time.sleep(0.1)
    pytest.fail(f"left behind: {left}, cgroups {cgroups}, {list(state_dir.glob('*.json'))}")
