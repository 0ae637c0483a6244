"""Every benchmark runs: each script in benchmarks/ once with ``--smoke`` (tiny N, seconds), as a
subprocess, exactly as a person runs it. A benchmark that crashes fails here; a missed target does
not (it prints MISS, exit 0), so what is asserted is that each figure is printed beside its goal.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.placements.local.rabbitmq_server import RabbitMQUnavailable, find_rabbitmq

pytestmark = pytest.mark.integration
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# Modules the benchmarks import, not benchmarks themselves.
HELPERS = {"overhead_app.py"}
GRADE = r"\s+(PASS|MISS)\b"
SMOKE_TIMEOUT = 240  # seconds; a smoke run takes 1-20 s on an idle 2-CPU machine


def smoke(script: str, *arguments: str, cwd: Path | None = None) -> str:
    """Run ``benchmarks/<script> --smoke``; its output, after asserting it exited 0."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", *arguments],
        capture_output=True, text=True, timeout=SMOKE_TIMEOUT, cwd=cwd, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} --smoke exited {done.returncode}:\n{output[-3000:]}"
    assert "smoke run (--smoke)" in done.stdout, output[-3000:]
    return done.stdout


def assert_lines(output: str, patterns: list[str]) -> None:
    missing = [p for p in patterns if not re.search(p, output, re.MULTILINE)]
    assert missing == [], f"figures not printed beside their goals: {missing}\n{output[-3000:]}"


def test_every_benchmark_script_has_a_smoke_test() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - HELPERS
    tested = {name.removeprefix("test_").removesuffix("_smoke") + ".py" for name in globals()}
    assert scripts - tested == set(), "a benchmark without a smoke test in this file"


def test_bench_smoke(tmp_path: Path) -> None:
    output = smoke("bench.py", "--json", str(tmp_path / "bench.json"))
    assert_lines(
        output,
        [
            rf"^a\. environment ready .* <= 0\.5 s{GRADE}",
            rf"^b\. 03-ack-late-reject-child-kill overhead .* <= 0\.5 s{GRADE}",
            rf"^c\. child kill -> redelivered attempt_start .* <= 0\.2 s{GRADE}",
            rf"^d\. checker on a 20,000-event history .* <= 5 s{GRADE}",
        ],
    )
    figures = json.loads((tmp_path / "bench.json").read_text())["figures"]
    assert figures["checker_1m_events_s"]["local"]["pass"] in (True, False)
    # figure a's parts, read from the worker's own log (Mingle: Celery's 1 s hello wait)
    assert re.search(
        r"median parts: to the worker's broker connection [\d.]+ s .* Mingle [\d.]+ s", output
    )


def test_agent_overhead_smoke() -> None:
    output = smoke("agent_overhead.py")
    assert_lines(
        output,
        [
            rf"^no-op\s+agent {mode}\s+\d+ t/s\s+costs\s+[-+][\d.]+%\s+goal <= 5%{GRADE}\s+"
            r"\(earlier, synchronous: 77%\)"
            for mode in ("sync", "async")
        ]
        + [
            rf"^5 ms task\s+agent {mode}\s+\d+ t/s\s+costs\s+[-+][\d.]+%\s+goal <= 1%{GRADE}\s+"
            r"\(earlier, synchronous: 26.3%\)"
            for mode in ("sync", "async")
        ]
        + [
            r"^agent sync: handlers \(prerun \+ postrun\) in-process: \d+ µs per attempt, "
            r"2\.0 Redis round trips",
            r"^agent async: handlers \(prerun \+ postrun\) in-process: \d+ µs per attempt, "
            r"0\.0 Redis round trips",
        ],
    )


def test_ledger_kill_writers_smoke() -> None:
    output = smoke("ledger_kill_writers.py")
    assert_lines(
        output,
        [
            rf"^events lost: 0 of 200, per-writer order kept: True  goal: none lost{GRADE}",
            rf"^writers' connections left in CLIENT LIST: 0 .*goal: none left{GRADE}",
        ],
    )


def require_rabbitmq() -> None:
    """Skip where no ``rabbitmq-server`` is installed (the RabbitMQ benchmarks boot nodes)."""
    try:
        find_rabbitmq()
    except RabbitMQUnavailable as missing:
        pytest.skip(str(missing))


def test_rabbitmq_node_smoke() -> None:
    require_rabbitmq()
    output = smoke("rabbitmq_node.py")
    assert_lines(
        output,
        [
            r"^node boot, package plugins dir: [\d.]+ s, node CPU [\d.]+ s$",
            rf"^node boot, core plugins links: .* goal: faster than the package dir{GRADE}",
            r"^list_queues via rabbitmqctl: [\d.]+ s per call",
            rf"^list_queues via erl_call: .* goal: <= 0\.05 s{GRADE}",
            r"^a scenario's broker, a node of its own: [\d.]+ s, node CPU [\d.]+ s",
            rf"^a scenario's broker, a vhost on the shared node: .* goal: <= 0\.1 s{GRADE}",
        ],
    )


def test_rabbitmq_suite_shared_smoke() -> None:
    """A scenario run on a node of its own and in a vhost of a shared node gives the same
    verdicts (asserted: the line must say PASS, not only be printed)."""
    require_rabbitmq()
    output = smoke("rabbitmq_suite_shared.py")
    assert_lines(
        output,
        [
            r"^  a node per scenario:\s+[\d.]+ s, 1/1 passed",
            rf"^  vhosts of a shared node:\s+[\d.]+ s, 1/1 passed  goal: faster{GRADE}",
            r"^  same status and verdict counts both ways: 1/1  goal: all PASS$",
        ],
    )


def test_storm_bench_smoke() -> None:
    output = smoke("storm_bench.py")
    assert_lines(
        output,
        [
            rf"^e\. checker on a 20,000-event storm history: [\d.]+ s\s+target <= 5 s{GRADE}",
            rf"^f\. proxy added latency .* target < 1 ms{GRADE}",
        ],
    )


def test_suite_wall_smoke() -> None:
    output = smoke("suite_wall.py")
    assert_lines(
        output,
        [
            rf"^  one at a time \(--jobs 1\)\s+([\d.]+ s|n/a)\s+< 60 s{GRADE}",
            r"^  one at a time \(--jobs 1\): [\d.]+ s, exit \d+, \d/2 passed",
        ],
    )


def test_flakiness_smoke(tmp_path: Path) -> None:
    summary, table = tmp_path / "flakiness.json", tmp_path / "flakiness.md"
    output = smoke("flakiness.py", "--json", str(summary), "--markdown", str(table))
    assert_lines(
        output,
        [
            r"^run 1/1: exit \d+, 2 scenarios",
            r"^defaults-child-kill\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+median",
            r"^ack-late-no-reject-child-kill\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+median",
            rf"^verdict flips: 0 in 0 scenarios\s+target 0{GRADE}",
            rf"^verdicts that differed from their expectation: \d+\s+target 0{GRADE}",
        ],
    )
    document = json.loads(summary.read_text())
    assert document["runs_completed"] == 1
    assert set(document["scenarios"]) == {"defaults-child-kill", "ack-late-no-reject-child-kill"}
    assert table.read_text().startswith("# Flakiness: 1 of 1 runs, backend local")


def test_matrix_wall_smoke() -> None:
    from celery_chaos.tools.matrix import envs

    try:
        envs.uv_executable()
    except envs.EnvBuildError as missing:  # uv comes with the dev and matrix extras
        pytest.skip(str(missing))
    output = smoke("matrix_wall.py")
    assert_lines(
        output,
        [
            r"^matrix wall time \(celery-chaos matrix, 1 cells, exit \d\): [\d.]+ s .*"
            r"target: none \(informative\)",
            r"^  celery-[\d.]+_kombu-[\d.]+: environment [\d.]+ s \((cached|built)\), cells "
            r"[\d.]+ s\s+target: none \(informative\)",
        ],
    )


def test_ci_wall_smoke(tmp_path: Path) -> None:
    output = smoke("ci_wall.py")
    assert_lines(
        output,
        [
            rf"^CI test command wall time\s+[\d.]+ min\s+goal <= 15 min{GRADE}",
            r"^summed test durations\s+[\d.]+ min over 1 process\(es\)",
            r"^CPUs busy during the run\s+[\d.]+ %",
            r"^\s+[\d.]+ s\s+[\d.]+ %  tests/unit/test_docs\.py$",
        ],
    )
    log = tmp_path / "no-summary.log"
    log.write_text("collected 0 items\n")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ci_wall.py"), "--log", str(log)],
        capture_output=True, text=True, timeout=SMOKE_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"--log {log}: no pytest summary line" in done.stderr
