"""The worker command line: Celery's own defaults unless a scenario says otherwise, and a team's
own command line (``workers.args``, ``repro --worker-args``) split, merged and refused where it
would break the run (docs/worker-command.md). Real workers launched this way:
tests/integration/test_worker_command.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.scenario_parts import WorkersSpec, split_worker_args
from celery_chaos.placements.worker_command import launch_arguments, worker_arguments
from celery_chaos.report.files import worker_commands
from celery_chaos.tools import repro

APP = "celery_chaos.sample_tasks.app"


def scenario(**workers: Any) -> dict[str, Any]:
    return {
        "name": "worker-args",
        "description": "workers.args",
        "workers": workers,
        "workload": [{"task": "sample_tasks.tasks.work"}],
    }


def test_default_command_is_celerys_defaults() -> None:
    arguments = launch_arguments("app", "w0@chaos-x", WorkersSpec())
    assert arguments == ["-A", "app", "worker", "-n", "w0@chaos-x", "-P", "prefork", "-c", "2"] + [
        "-l",
        "INFO",
    ]
    assert not [arg for arg in arguments if arg.startswith("--without")]


@pytest.mark.parametrize(
    ("raw", "adopted", "rest"),
    [
        (
            "celery -A proj.celery:app worker -l info -c 4 -O fair --without-heartbeat",
            {"app": "proj.celery:app", "concurrency": "4"},
            ["-l", "info", "-O", "fair", "--without-heartbeat"],
        ),
        (
            "-Q a,b --prefetch-multiplier=1 -Pthreads",
            {"pool": "threads"},
            ["-Q", "a,b", "--prefetch-multiplier=1"],
        ),
        (["--pool=solo", "-E"], {"pool": "solo"}, ["-E"]),
        ("python -m celery --app=x worker", {"app": "x"}, []),
        ("/venv/bin/celery -A x worker --concurrency 8", {"app": "x", "concurrency": "8"}, []),
        ("worker -B", {}, ["-B"]),
        ("-EB -linfo -Ofair -Qa,b", {}, ["-EB", "-linfo", "-Ofair", "-Qa,b"]),
        ("", {}, []),
    ],
)
def test_split_worker_args(raw: Any, adopted: dict[str, str], rest: list[str]) -> None:
    assert split_worker_args(raw) == (adopted, rest)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-n w1@%h", "-n: the harness names each worker"),
        ("--hostname=w1@%h", "--hostname=w1@%h: the harness names each worker"),
        ("--detach", "--detach: a detached worker leaves the process the harness watches"),
        ("-f /var/log/celery.log", "-f: the harness reads the worker's output"),
        ("celery -b amqp://prod worker", "'-b' before 'worker': only -A may come first"),
        ("--result-backend redis://x", "--result-backend: a scenario chooses the result backend"),
        ("celery -A proj", "a celery command line without the worker sub-command"),
        ("-c", "-c needs a value"),
        ("-P threads -P solo", "-P given twice (threads, solo)"),
        ("-Ec 4", "-Ec: a cluster of short options with -c: give -c alone"),
        ("-EP threads", "-EP: a cluster of short options with -P: give -P alone"),
        ("-DE", "-DE: a cluster of short options with -D: give -D alone"),
        ("'unclosed", "cannot split like a shell"),
        (5, "expected a list of strings or one command-line string"),
    ],
)
def test_refused_worker_args(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        split_worker_args(raw)
    assert message in str(error.value)


def test_args_set_the_workers_fields_and_win() -> None:
    spec = parse_scenario(scenario(args="-P threads -c 1 -l WARNING -O fair"), "s.yaml").workers
    assert (spec.pool, spec.concurrency, spec.args) == (
        "threads",
        1,
        ["-l", "WARNING", "-O", "fair"],
    )
    arguments = launch_arguments("app", "w0", spec)
    assert arguments[-4:] == ["-l", "WARNING", "-O", "fair"]
    assert "INFO" not in arguments  # the team's -l replaces the harness's


def test_same_value_twice_is_accepted() -> None:
    spec = parse_scenario(
        scenario(pool="threads", app="a", args="celery -A a worker -P threads"), "s.yaml"
    )
    assert (spec.workers.pool, spec.workers.app, spec.workers.args) == ("threads", "a", [])


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        (
            {"pool": "prefork", "args": "-P threads"},
            "s.yaml: workers: args: pool threads, but pool: prefork: give it once",
        ),
        (
            {"app": "a", "args": "celery -A b worker"},
            "s.yaml: workers: args: app b, but app: a: give it once",
        ),
        ({"args": "-n w@h"}, "s.yaml: workers.args: -n: the harness names each worker"),
        ({"args": {"a": 1}}, "s.yaml: workers.args: expected a list of strings"),
        ({"args": "-P nope"}, "s.yaml: workers.pool: Input should be"),
    ],
)
def test_bad_workers_args_name_file_and_field(workers: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(scenario(**workers), "s.yaml")
    assert str(error.value).startswith(message)


def test_bad_workers_args_exit_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scenario(args=["--detach"])))
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(path), "--report-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{path}: workers.args: --detach: a detached worker" in lines[0]


def test_worker_arguments_keep_the_old_signature() -> None:
    assert worker_arguments("a", "n", "solo", 1) == [
        "-A",
        "a",
        "worker",
        "-n",
        "n",
        "-P",
        "solo",
        "-c",
        "1",
        "-l",
        "INFO",
    ]


def test_result_json_lists_each_workers_command() -> None:
    history = [
        {"type": "worker_started", "worker": "w0@x", "pid": 1, "argv": ["celery", "worker"]},
        {"type": "worker_ready", "worker": "w0@x"},
        {"type": "worker_started", "worker": "w1@x", "pid": 2},  # a history from before argv
    ]
    assert worker_commands(history) == {"w0@x": ["celery", "worker"]}


def test_repro_worker_args() -> None:
    base = {"app": APP, "task": "sample_tasks.tasks.work", "at": "seconds:1"}
    spec = repro.merge(
        repro.load_spec(None), **base, worker_args=f"celery -A {APP} worker -P threads -c 1 -O fair"
    )
    assert (spec.pool, spec.concurrency, spec.worker_args) == ("threads", 1, ["-O", "fair"])
    workers = repro.build_scenario(spec).workers
    assert (workers.pool, workers.concurrency, workers.args) == ("threads", 1, ["-O", "fair"])
    plain = repro.build_scenario(repro.merge(repro.load_spec(None), **base)).workers
    assert (plain.pool, plain.concurrency, plain.args) == ("prefork", 2, [])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"pool": "prefork", "worker_args": "-P threads"},
            "--worker-args: pool threads, but --pool prefork: give it once",
        ),
        ({"worker_args": "celery -A other worker"}, f"--worker-args: app other, but --app {APP}"),
        ({"worker_args": "-n x"}, "--worker-args: -n: the harness names each worker"),
    ],
)
def test_repro_worker_args_refused(given: dict[str, Any], message: str) -> None:
    base = {"app": APP, "task": "sample_tasks.tasks.work", "at": "seconds:1"}
    with pytest.raises(repro.ReproError) as error:
        repro.merge(repro.load_spec(None), **(base | given))
    assert str(error.value).startswith(message)


def test_repro_queue_follows_dash_q() -> None:
    from celery_chaos.tools.repro.app import worker_queues

    assert worker_queues(["-O", "fair", "-Q", "a,b"]) == ["a", "b"]
    assert worker_queues(["--queues=c"]) == ["c"]
    assert worker_queues(["-Qd"]) == ["d"]
    assert worker_queues(["-O", "fair"]) is None
