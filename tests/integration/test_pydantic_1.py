"""Issue 18, way 1: the harness works beside an app pinned to pydantic 1.10, one code base.

Two fresh venvs get this project's wheel, resolved as pip would (its requirements must admit
both), one with ``pydantic==1.10.*`` and one with ``pydantic>=2.5``; nothing else differs. In the
pydantic 1 venv the unit tests of the scenario schema, the bad-input messages, the fault
options, the repro spec, the CLI and the ``chaos_env`` argument checks run against the installed
wheel and pass; the one-line messages for the same bad input, and ``celery-chaos list``, are
the same text under both majors; a built-in scenario (real workers, a real SIGKILL) reaches the
same conclusion and writes the same scenario config under both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.integration.uv_support import ROOT, build_wheel, install, run_in

pytestmark = pytest.mark.integration
MAJORS = {1: "pydantic==1.10.*", 2: "pydantic>=2.5"}
# The unit tests that exercise the schema and its messages (picked by grep: scenario parsing,
# bad input, fault options, repro spec, CLI, the chaos_env and testing API argument checks).
UNIT_FILES = [
    "test_pydantic_compat.py", "test_scenario.py", "test_scenario_data.py", "test_schema.py",
    "test_bad_input.py", "test_evict_params.py", "test_repro.py", "test_repro_probe.py",
    "test_strict.py", "test_cli.py", "test_testing_api.py", "test_broker_choice.py",
    "test_invariants.py", "test_invariants_reports.py", "test_expectations.py",
    "test_storm_schedule.py", "test_rolling_deploy.py", "test_workflow.py",
    "test_workload_plan.py", "test_worker_command.py",
]  # fmt: skip
# Bad scenario documents: (key, value) set on a valid scenario; each must be refused with the
# same one line under both majors (the values where pydantic 1 and 2 coerce differently).
BAD = [
    ("timeout", 1e9), ("timeout", 0), ("timeout", "x"), ("timeout", None), ("timeout", math.inf),
    ("name", 5), ("name", "Bad Name"), ("name", "a" * 300), ("description", None), ("nope", 1),
    ("workload", []), ("workload", "x"), ("workload", [{"task": ""}]),
    ("workload", [{"task": "t", "count": 0}]), ("workload", [{"task": "t", "count": 2.5}]),
    ("workload", [{"task": "t", "options": {"priority": 300}}]),
    ("workload", [{"chain": []}]), ("workload", [{"chain": [{"task": "a", "x": 1}]}]),
    ("broker", {"kind": "kafka"}), ("broker", "redis"), ("broker", {"consumer_timeout": 5}),
    ("workers", {"count": 100}), ("workers", {"pool": "x"}), ("workers", {"args": ["-n", "x"]}),
    ("workers", {"args": "-c 4", "concurrency": 2}), ("workers", {"memory_limit": "lots"}),
    ("workers", {"env": {"A": 1}}), ("workers", None), ("celery", []), ("seed", "x"),
    ("faults", [{"kind": "nope", "when": {"at": 1}}]), ("faults", [{"kind": "kill_child"}]),
    ("faults", [{"kind": "kill_child", "when": {}}]),
    ("faults", [{"kind": "kill_child", "when": {"at": 1}, "latency": 0.5}]),
    ("faults", [{"kind": "latency", "when": {"at": 1}, "latency": 100}]),
    ("faults", [{"kind": "oom", "when": {"at": 1}, "headroom": "huge"}]),
    ("faults", [{"kind": "bandwidth", "when": {"at": 1}, "rate": 0}]),
    ("expect", {"lost": -1}), ("expect", {"nope": 0}), ("expect", {"lost": {"min": 3, "max": 1}}),
    ("expect_when", [{"when": {"celery": "bad spec"}, "expect": {"lost": 0}, "why": "x"}]),
    ("results", {"db": 99}), ("invariants", [{"name": "a", "sql": "select {x}", "expect": 0}]),
    ("invariants", [{"name": "a", "path": "p", "expect": -1}]),
    ("setup", [{"sql": "x", "run": "y"}]), ("services", {"postgres": {"database": "Bad"}}),
    ("storm", {"duration": 5, "tasks": 1, "faults": []}), ("strict", "maybe"), ("settle", -1),
    # unions (pydantic 2 names the member in the location) and a mapping's bad key ([key])
    ("workers", {"memory_limit": [1]}), ("workers", {"memory_limit": 2.5}),
    ("faults", [{"kind": "oom", "when": {"at": 1}, "headroom": None}]),
    ("broker", {"kind": "rabbitmq", "declare_queues": {"": {}}}),
    ("broker", {"kind": "rabbitmq", "declare_queues": {"q": {"arguments": {"x": [1]}}}}),
]  # fmt: skip
MESSAGES = """
import json, sys
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
base = {"name": "n", "description": "d", "workload": [{"task": "t"}]}
for key, value in json.load(open(sys.argv[1])):
    try:
        parse_scenario({**base, key: value}, "f.yaml")
        print(key, "accepted")
    except ScenarioError as error:
        print(error)
"""


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One venv per pydantic major, each with the wheel resolved beside that pydantic."""
    base = tmp_path_factory.mktemp("pydantic")
    wheel = build_wheel(base)
    found = {}
    for major, pin in MAJORS.items():
        tools = ("pytest>=8", "pytest-timeout>=2.2", "jsonschema>=4")  # the schema's tests
        install(base / f"v{major}", str(wheel), pin, *tools)
        done = run_in(base / f"v{major}", "python", "-c", _WHICH, cwd=base)
        assert done.returncode == 0, done.stderr
        version, chosen, where = done.stdout.split()
        assert (version.split(".")[0], chosen) == (str(major), str(major))
        assert where.startswith(str(base / f"v{major}")), where  # the wheel, not the checkout
        found[major] = base / f"v{major}"
    return found


_WHICH = (
    "import pydantic, celery_chaos.pydantic_compat as c;"
    "print(pydantic.VERSION, c.PYDANTIC_MAJOR, c.__file__)"
)


@pytest.mark.timeout(1200)
def test_the_schema_unit_tests_pass_under_pydantic_1(venvs: dict[int, Path]) -> None:
    files = [f"tests/unit/{name}" for name in UNIT_FILES]
    argv = ("python", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rs")
    done = run_in(venvs[1], *argv, *files, cwd=ROOT, timeout=1100)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # Nothing skipped but the test of pydantic 2's own objects (the JSON Schema's tests ran).
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert [line for line in skipped if "pydantic 2's own objects" not in line] == [], skipped


def test_bad_input_reads_the_same_line_under_both_majors(
    venvs: dict[int, Path], tmp_path: Path
) -> None:
    cases = tmp_path / "bad.json"
    cases.write_text(json.dumps(BAD))
    lines = {}
    for major, venv in venvs.items():
        done = run_in(venv, "python", "-c", MESSAGES, str(cases), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines[major] = done.stdout.splitlines()
    assert len(lines[2]) == len(BAD) and not [line for line in lines[2] if "accepted" in line]
    assert lines[1] == lines[2]


def test_the_cli_says_the_same_under_both_majors(venvs: dict[int, Path], tmp_path: Path) -> None:
    """``celery-chaos list`` (the built-in suite) and a bad file's exit 2 with one line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nworkload: [{task: t}]\nworkers: {count: 2.5}\n")
    listed, refused = {}, {}
    for major, venv in venvs.items():
        listed[major] = run_in(venv, "celery-chaos", "list", cwd=tmp_path)
        refused[major] = run_in(venv, "celery-chaos", "run", str(bad), cwd=tmp_path)
    assert listed[1].returncode == listed[2].returncode == 0, listed[1].stderr + listed[2].stderr
    assert listed[1].stdout == listed[2].stdout
    assert refused[1].returncode == refused[2].returncode == 2
    assert refused[1].stderr == refused[2].stderr
    assert refused[2].stderr.strip().splitlines() == [
        f"celery-chaos: error: {bad}: workers.count: Input should be a valid integer,"
        " got a number with a fractional part"
    ]


@pytest.mark.timeout(600)
def test_a_built_in_scenario_runs_the_same_under_both_majors(
    venvs: dict[int, Path], tmp_path: Path
) -> None:
    """Real workers killed mid-task: the run under pydantic 1 reaches the same conclusion and
    writes the same scenario config (``model_dump``) into result.json as under pydantic 2."""
    results = {}
    for major, venv in venvs.items():
        reports = tmp_path / f"v{major}"
        argv = ("celery-chaos", "run", "--only", "defaults-child-kill", "--report-dir")
        done = run_in(venv, *argv, str(reports), cwd=tmp_path, timeout=500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        found = reports / "latest" / "defaults-child-kill" / "result.json"
        results[major] = json.loads(found.read_text())
    assert results[1]["status"] == results[2]["status"] == "passed"
    assert results[1]["verdicts"]["lost"] >= 1  # the kill landed: acks early lose the task
    assert results[1]["config"] == results[2]["config"]
