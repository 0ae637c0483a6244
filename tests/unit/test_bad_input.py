"""Every malformed scenario, in one table: the exact one-line message (file, field, reason), the
same line from ``celery-chaos run`` with exit code 2, no traceback and nothing started.

Each row is a file's content (raw bytes, or changes to a valid scenario) and the message after
``<file>: ``. The schema and the preflight (Celery settings, the app, its tasks) are both covered:
``load_suite(check=preflight)`` is what the command line does.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.cli import main
from celery_chaos.core.scenario import load_suite
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.run.preflight import checker
from click.testing import CliRunner

pytest_plugins = ["pytester"]

VALID: dict[str, Any] = {
    "name": "bad-input",
    "description": "a valid scenario that each row breaks in one place",
    "workers": {"count": 1},
    "workload": [{"task": "sample_tasks.tasks.work", "kwargs": {"seconds": 0.1}}],
    "expect": {"ok": 1},
}
VALID_TEXT = yaml.safe_dump(VALID, sort_keys=False).encode()
VALID_LINES = VALID_TEXT.count(b"\n")


def changed(**changes: Any) -> bytes:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False).encode()


def kill_worker(at: float, **extra: Any) -> dict[str, Any]:
    return {"kind": "kill_worker", "when": {"at": at}, **extra}


WORK = "sample_tasks.tasks.work"
BAD_INPUTS: list[tuple[str, bytes, str]] = [
    # --- not a scenario file at all -----------------------------------------------------------
    (
        "latin-1",
        "name: caf\xe9\n".encode("latin-1"),
        "line 1: not UTF-8 text (byte 0xe9 at offset 9); save the file as UTF-8",
    ),
    (
        "binary",
        bytes(range(256)),
        "line 2: not UTF-8 text (byte 0x80 at offset 128); save the file as UTF-8",
    ),
    ("nul-bytes", b"name: a\x00b\n", "line 1: not a text file (it contains NUL bytes)"),
    (
        "two-documents",
        VALID_TEXT + b"---\nname: other\n",
        f"line {VALID_LINES + 1}: a second YAML document ('---') in one file; put one per file",
    ),
    (
        "python-tag",
        b"name: !!python/object/apply:os.system [true]\n",
        "line 1: YAML tag !!python/object/apply:os.system is not allowed; write a plain value",
    ),
    (
        "binary-tag",
        VALID_TEXT.replace(b"description:", b"description: !!binary"),
        "line 2: YAML tag !!binary is not allowed; write a plain value",
    ),
    (
        "duplicate-key",
        VALID_TEXT + b"timeout: 5\ntimeout: 500\n",
        f"line {VALID_LINES + 2}: not valid YAML: duplicate key 'timeout'",
    ),
    ("list", b"- a\n- b\n", "(top level): expected a mapping of scenario keys"),
    # --- Celery settings ------------------------------------------------------------------
    (
        "setting-typo",
        changed(celery={"task_acks_lat": True}),
        "celery.task_acks_lat: not a Celery setting (did you mean task_acks_late?);"
        " a setting of a Celery extension goes in extension_settings too",
    ),
    (
        "old-style-setting",
        changed(celery={"CELERY_ACKS_LATE": True}),
        "celery.CELERY_ACKS_LATE: an old-style setting name; write task_acks_late;"
        " a setting of a Celery extension goes in extension_settings too",
    ),
    (
        "extension-setting-not-set",
        changed(extension_settings=["redbeat_redis_url"]),
        "extension_settings: 'redbeat_redis_url' is not a key of celery",
    ),
    # --- expectations that cannot be met --------------------------------------------------
    ("negative-count", changed(expect={"lost": -1}), "expect.lost: -1: a count cannot be negative"),
    (
        "unknown-broker",
        changed(broker={"kind": "kafka"}),
        "broker.kind: Input should be 'redis' or 'rabbitmq'",
    ),
    (
        "consumer-timeout-on-redis",
        changed(broker={"consumer_timeout": 5}),
        "broker: consumer_timeout: a RabbitMQ setting; set kind: rabbitmq",
    ),
    (
        "declare-queues-on-redis",
        changed(broker={"declare_queues": {"celery.dead": {}}}),
        "broker: declare_queues: a RabbitMQ setting; set kind: rabbitmq",
    ),
    (
        "declare-queues-unknown-field",
        changed(broker={"kind": "rabbitmq", "declare_queues": {"dlq": {"exclusive": True}}}),
        "broker.declare_queues.dlq.exclusive: Extra inputs are not permitted",
    ),
    (
        "min-above-max",
        changed(expect={"ok": {"min": 3, "max": 1}}),
        "expect.ok: min 3 > max 1: no count can meet both",
    ),
    (
        "negative-min",
        changed(expect={"ok": {"min": -1}}),
        "expect.ok.min: Input should be greater than or equal to 0",
    ),
    (
        "boolean-count",
        changed(expect={"ok": True}),
        "expect.ok: True: expected a count (e.g. 0) or a range {min: 1, max: 3}",
    ),
    # --- the app and its tasks ------------------------------------------------------------
    (
        "app-not-importable",
        changed(workers={"app": "no_such_module.celery:app"}),
        "workers.app: no_such_module.celery:app: cannot import:"
        " ModuleNotFoundError: No module named 'no_such_module'",
    ),
    (
        "app-not-a-celery-app",
        changed(workers={"app": "os:path"}),
        "workers.app: os:path: cannot import: TypeError: os:path is a module, not a Celery app",
    ),
    (
        "task-not-registered",
        changed(workload=[{"task": "sample_tasks.tasks.wrok"}]),
        "workload[0].task: 'sample_tasks.tasks.wrok' is not registered in"
        " celery_chaos.sample_tasks.app (did you mean sample_tasks.tasks.work?)",
    ),
    # --- absurd sizes -----------------------------------------------------------------------
    (
        "10^12-tasks",
        changed(workload=[{"task": WORK, "count": 10**12}]),
        "workload[0].count: 1000000000000 is above the upper bound 100000 (README: Limits)",
    ),
    (
        "too-many-tasks-in-all",
        changed(workload=[{"task": WORK, "count": 60_000}, {"task": WORK, "count": 60_000}]),
        "workload: 120000 tasks in all; a scenario dispatches at most 100000",
    ),
    (
        "timeout-of-years",
        changed(timeout=3 * 365 * 86_400),
        "timeout: 94608000 is above the upper bound 86400 (README: Limits)",
    ),
    ("infinite-timeout", changed(timeout=float("inf")), "timeout: Input should be a finite number"),
    (
        "exclusive-not-bool",
        changed(exclusive="sometimes"),
        "exclusive: Input should be a valid boolean, unable to interpret input",
    ),
    (
        "too-many-workers",
        changed(workers={"count": 500}),
        "workers.count: 500 is above the upper bound 64 (README: Limits)",
    ),
    # --- faults that aim at nothing or never fire -----------------------------------------
    (
        "worker-index-beyond-workers",
        changed(faults=[kill_worker(1, target={"worker": 1})]),
        "faults[0].target.worker: worker 1 never exists (workers are numbered from 0;"
        " 1 in all, counting start_worker/restart_worker faults)",
    ),
    (
        "after-timeout",
        changed(timeout=10, faults=[kill_worker(12)]),
        "faults[0].when: fires at t=12s at the earliest, not before the timeout (10s):"
        " it can never fire",
    ),
    (
        "after-fault-chain-past-timeout",
        changed(
            timeout=10,
            faults=[
                kill_worker(6),
                {"kind": "start_worker", "when": {"after_fault": 0, "delay": 5}},
            ],
        ),
        "faults[1].when: fires at t=11s at the earliest (after its after_fault chain), not before"
        " the timeout (10s): it can never fire",
    ),
    (
        "random-window-past-timeout",
        changed(timeout=10, faults=[{"kind": "pause", "when": {"random": {"min": 1, "max": 10}}}]),
        "faults[0].when.random.max: a time drawn up to t=10s is not always before the timeout"
        " (10s): some seeds would never fire it",
    ),
    (
        "dispatch-after-timeout",
        changed(timeout=10, workload=[{"task": WORK, "at": 10}]),
        "workload[0].at: 10s is not before the timeout (10s): it would never be dispatched",
    ),
    # --- workflows (canvas), results and revokes ------------------------------------------
    (
        "task-and-chain",
        changed(workload=[{"task": WORK, "chain": [{"task": WORK}]}]),
        "workload[0]: give exactly one of task, chain, group, chord; got ['task', 'chain']",
    ),
    (
        "empty-chain",
        changed(workload=[{"chain": []}]),
        "workload[0].chain: List should have at least 1 item after validation, not 0",
    ),
    (
        "chord-without-results",
        changed(workload=[{"chord": {"header": [{"task": WORK}], "body": {"task": WORK}}}]),
        "workload[0].chord: a chord needs a result backend the harness runs;"
        " add results: {server: ledger} (or server: broker)",
    ),
    (
        "results-server",
        changed(results={"server": "elsewhere"}),
        "results.server: Input should be 'broker' or 'ledger'",
    ),
    (
        "results-on-rabbitmq",
        changed(results={"server": "broker"}, broker={"kind": "rabbitmq"}),
        "results.server: broker needs a Redis broker (RabbitMQ has no databases);"
        " use server: ledger",
    ),
    (
        "member-not-registered",
        changed(workload=[{"chain": [{"task": WORK}, {"task": "sample_tasks.tasks.wrok"}]}]),
        "workload[0].chain[1].task: 'sample_tasks.tasks.wrok' is not registered in"
        " celery_chaos.sample_tasks.app (did you mean sample_tasks.tasks.work?)",
    ),
    (
        "revoke-unknown-fault",
        changed(workload=[{"task": WORK, "revoke": {"after_fault": 2}}]),
        "workload[0].revoke.after_fault: 2: no such fault (the scenario has 0)",
    ),
    # --- pools, network faults and storms (issue 12) ------------------------------------------
    (
        "unknown-pool",
        changed(workers={"count": 1, "pool": "greenlet"}),
        "workers.pool: Input should be 'prefork', 'solo', 'threads', 'gevent' or 'eventlet'",
    ),
    (
        "latency-too-long",
        changed(faults=[{"kind": "latency", "when": {"at": 1}, "latency": 600}]),
        "faults[0].latency: 600 is above the upper bound 60 (README: Limits)",
    ),
    (
        "bandwidth-rate-not-a-size",
        changed(faults=[{"kind": "bandwidth", "when": {"at": 1}, "rate": "fast"}]),
        "faults[0].rate: not a byte rate: 'fast' (use e.g. 500, 16k, 1M)",
    ),
    (
        "storm-partition-without-duration",
        changed(
            storm={
                "duration": 10,
                "tasks": 5,
                "faults": [{"kind": "partition", "every": {"min": 1, "max": 2}}],
            }
        ),  # fmt: skip
        "storm.faults[0]: a storm's partition needs duration (seconds until it ends)",
    ),
    (
        "storm-kind-not-drawable",
        changed(
            storm={
                "duration": 10,
                "tasks": 5,
                "faults": [{"kind": "pause", "every": {"min": 1, "max": 2}}],
            }
        ),  # fmt: skip
        "storm.faults[0].kind: Input should be 'kill_child', 'kill_worker', 'terminate', 'quit',"
        " 'restart_broker', 'restart_worker', 'partition', 'drop_connections' or 'latency'",
    ),
    (
        "storm-longer-than-timeout",
        changed(
            timeout=30,
            storm={
                "duration": 60,
                "tasks": 5,
                "faults": [{"kind": "kill_worker", "every": {"min": 5, "max": 10}}],
            },
        ),  # fmt: skip
        "storm.duration: 60s is not before the timeout (30s): the run would end before the"
        " storm does",
    ),
    (
        "storm-and-faults",
        changed(
            faults=[kill_worker(1)],
            storm={
                "duration": 10,
                "tasks": 5,
                "faults": [{"kind": "kill_worker", "every": {"min": 5, "max": 10}}],
            },
        ),  # fmt: skip
        "storm: give a storm or a faults list, not both",
    ),
]
IDS = [row[0] for row in BAD_INPUTS]


def write(folder: Path, content: bytes) -> Path:
    path = folder / "bad.yaml"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("content", "message"), [r[1:] for r in BAD_INPUTS], ids=IDS)
def test_bad_input_is_refused_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content)

    with pytest.raises(ScenarioError) as raised:
        load_suite([path], check=checker())

    assert str(raised.value) == f"{path}: {message}"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("content", "message"), [r[1:] for r in BAD_INPUTS], ids=IDS)
def test_celery_chaos_run_exits_2_with_that_line_and_starts_nothing(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """The command's own code path, in this process (a subprocess per row cost ~0.75 s of
    Python start-up each, 55 s of CI for the table); the process itself is the next test."""
    path = write(tmp_path, content)
    reports = tmp_path / "reports"

    done = CliRunner().invoke(main, ["run", str(path), "--report-dir", str(reports)])

    assert done.exit_code == 2, done.output
    assert done.stderr == f"celery-chaos: error: {path}: {message}\n"
    assert done.stdout == ""
    assert not reports.exists()  # nothing started: not even a run folder


@pytest.mark.parametrize("row", [0, IDS.index("app-not-importable")], ids=lambda i: IDS[i])
def test_the_celery_chaos_process_exits_2_with_that_line(tmp_path: Path, row: int) -> None:
    """A real ``celery-chaos run`` process: exit status 2, the one line on stderr, no traceback."""
    _, content, message = BAD_INPUTS[row]
    path = write(tmp_path, content)
    reports = tmp_path / "reports"

    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(path), "--report-dir", str(reports)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr == f"celery-chaos: error: {path}: {message}\n"
    assert done.stdout == ""
    assert not reports.exists()


def test_celery_chaos_list_refuses_the_same_input(tmp_path: Path) -> None:
    path = write(tmp_path, changed(celery={"task_acks_lat": True}))

    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "list", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert done.stderr.startswith(f"celery-chaos: error: {path}: celery.task_acks_lat: ")
    assert done.stderr.count("\n") == 1


def test_an_extension_setting_listed_in_extension_settings_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        changed(
            celery={"redbeat_redis_url": "redis://x"}, extension_settings=["redbeat_redis_url"]
        ),
    )

    (scenario,) = load_suite([path], check=checker())

    assert scenario.celery == {"redbeat_redis_url": "redis://x"}


def test_the_valid_base_of_the_table_passes_every_check(tmp_path: Path) -> None:
    assert load_suite([write(tmp_path, VALID_TEXT)], check=checker())[0].name == "bad-input"


def test_pytest_collection_error_is_the_same_line(pytester: pytest.Pytester) -> None:
    path = pytester.path / "scenarios" / "bad.yaml"
    path.parent.mkdir()
    path.write_bytes(changed(celery={"task_acks_lat": True}))

    result = pytester.runpytest("scenarios/")

    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting scenarios/bad.yaml*",
            "scenarios/bad.yaml: celery.task_acks_lat: not a Celery setting"
            " (did you mean task_acks_late?)*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED


MARKED_TEST = """
import pytest

@pytest.mark.chaos(celery={"task_acks_lat": True})
def test_typo(chaos_env):
    pass
"""


def test_chaos_marker_setting_typo_fails_setup_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED_TEST)

    result = pytester.runpytest("--chaos-report-dir", "out")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["@pytest.mark.chaos: celery.task_acks_lat: not a Celery setting (did you mean*"]
    )
    assert not (pytester.path / "out").exists()  # no environment was started


def test_a_typo_in_a_task_name_of_a_plain_app_is_caught(tmp_path: Path) -> None:
    plain = Path(__file__).resolve().parents[1] / "fixtures" / "plain_project"
    path = write(
        tmp_path, changed(workers={"app": "plain_app:app"}, workload=[{"task": "plain_app.ad"}])
    )

    with pytest.raises(ScenarioError) as raised:
        load_suite([path], check=checker(cwd=plain))

    assert str(raised.value) == (
        f"{path}: workload[0].task: 'plain_app.ad' is not registered in plain_app:app"
        " (did you mean plain_app.add?)"
    )
