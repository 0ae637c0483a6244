"""The nightly CI job for an app's own repository, run for real: the composite action's `run:`
steps (action.yml, in order, as GitHub runs them: bash -eo pipefail, `${{ }}` expressions
substituted, GITHUB_OUTPUT read back between steps, `uses:` steps skipped) and the GitLab job's
before_script + script, on a sample app repository in tmp_path with real workers (local backend).
The install step is given the already installed celery-chaos through its `celery-chaos` input
(CHAOS_EXECUTABLE on GitLab), the way a team whose image already has it would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "ci-templates" / "gitlab-celery-chaos.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")

SURVIVES = """
name: ci-acks-late-ok
description: one short task under acks_late, no fault; the deployment keeps it
celery: {task_acks_late: true}
workers: {count: 1, concurrency: 1}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 0.5, steps: 5}}
expect: {ok: 1}
timeout: 30
"""

# Celery's defaults ack before the task runs: a pool process SIGKILLed mid-task loses the task.
LOSES_WORK = """
name: ci-defaults-expected-safe
description: claims the defaults keep a task through a child kill; they do not
workers: {count: 1, concurrency: 1}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 1.0, steps: 10}}
faults:
  - {kind: kill_child, when: {task: 0, checkpoint: step-3}}
expect: {lost: 0}
timeout: 30
"""

BAD = """
name: ci-bad
description: a worker count that is not a number
workers: {count: many}
workload:
  - {task: sample_tasks.tasks.work}
expect: {ok: 1}
"""

MESSAGES = {
    0: "every scenario met its expectations",
    1: "expectations NOT met (exit 1)",
    2: "could not run (exit 2)",
}


def harness_executable() -> str:
    """The celery-chaos installed beside this interpreter (the one under test)."""
    beside = Path(sys.executable).parent / "celery-chaos"
    found = str(beside) if beside.exists() else shutil.which("celery-chaos")
    assert found, "no celery-chaos executable beside the test's Python"
    return found


@dataclass
class ActionRun:
    """What running the action's steps left: each run step's result and outputs, the summary."""

    steps: list[tuple[str, subprocess.CompletedProcess]] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    summary: str = ""

    @property
    def last(self) -> subprocess.CompletedProcess:
        return self.steps[-1][1]


def substitute(text: str, context: dict[str, str]) -> str:
    """``${{ name }}`` -> its value; an expression this runner does not know fails the test (so
    the action cannot grow one that these tests silently skip)."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in context, f"action.yml uses ${{{{ {name} }}}}, unknown to this test runner"
        return context[name]

    return EXPRESSION.sub(value, text)


def read_outputs(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: val for key, val in pairs}


def run_action(app: Path, given: dict[str, str]) -> ActionRun:
    """Run action.yml's steps as the GitHub runner would (until the first failing step)."""
    action = yaml.safe_load(ACTION.read_text())
    inputs = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    inputs.update(given)
    context = {f"inputs.{k}": v for k, v in inputs.items()} | {"github.action_path": str(ROOT)}
    temp, summary = app.parent / "runner-temp", app.parent / "step-summary.md"
    temp.mkdir(exist_ok=True)
    summary.write_text("")
    result = ActionRun()
    for index, step in enumerate(action["runs"]["steps"]):
        if "uses" in step:
            continue
        assert "if" not in step, "a run step's condition would need evaluating here"
        output = temp / f"output-{index}"
        output.write_text("")
        env = {k: substitute(str(v), context) for k, v in step.get("env", {}).items()}
        env |= {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        env |= {"RUNNER_TEMP": str(temp)}
        script = temp / f"step-{index}.sh"
        script.write_text(substitute(step["run"], context))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=app,
            env=os.environ | env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        result.steps.append((step["name"], done))
        if "id" in step:
            result.outputs[step["id"]] = read_outputs(output)
            context |= {
                f"steps.{step['id']}.outputs.{k}": v for k, v in read_outputs(output).items()
            }
        if done.returncode != 0:
            break
    result.summary = summary.read_text()
    return result


def app_repository(tmp_path: Path, scenario: str) -> Path:
    """A team's repository: its scenarios in chaos/ (the sample app's tasks)."""
    app = tmp_path / "app"
    (app / "chaos").mkdir(parents=True)
    (app / "chaos" / "nightly.yaml").write_text(scenario)
    return app


@pytest.mark.parametrize(
    ("scenario", "code"),
    [(SURVIVES, 0), (LOSES_WORK, 1), (BAD, 2)],
    ids=["passed", "expectations-not-met", "bad-scenario"],
)
def test_the_actions_steps_run_an_apps_scenarios(tmp_path: Path, scenario: str, code: int) -> None:
    app = app_repository(tmp_path, scenario)
    given = {"scenarios": "chaos/", "celery-chaos": harness_executable()}
    if code == 0:  # the app's interpreter named explicitly, as a team with its own venv would
        given["python"] = sys.executable
    run = run_action(app, given)
    names = [name for name, _ in run.steps]
    assert len(names) == 4, names  # install, run, summary, verdict (upload is a `uses:` step)
    log = "".join(done.stdout + done.stderr for _, done in run.steps)
    assert run.outputs["run"]["exit-code"] == str(code), log
    assert run.last.returncode == code, log
    assert MESSAGES[code] in run.last.stdout, run.last.stdout
    others = [m for c, m in MESSAGES.items() if c != code]
    assert not any(m in run.last.stdout for m in others)
    run_dir = run.outputs["run"]["run-dir"]
    if code == 2:  # nothing ran: no folder, and the summary says so
        assert run_dir == ""
        assert "wrote no report (exit 2)" in run.summary
        assert "nightly.yaml" in log and "count" in log  # the one line names file and field
        return
    assert Path(run_dir).parent == (app / "reports").resolve()
    summary_md = (Path(run_dir) / "summary.md").read_text()
    assert summary_md.strip() and run.summary == summary_md
    name = "ci-acks-late-ok" if code == 0 else "ci-defaults-expected-safe"
    assert name in run.summary


def test_a_second_run_that_writes_nothing_does_not_report_the_first(tmp_path: Path) -> None:
    """reports/latest from an earlier run (a self-hosted runner's workspace) is not this run's."""
    app = app_repository(tmp_path, SURVIVES)
    given = {"scenarios": "chaos/", "celery-chaos": harness_executable()}
    first = run_action(app, given)
    assert first.outputs["run"]["exit-code"] == "0", first.last.stdout
    (app / "chaos" / "nightly.yaml").write_text(BAD)
    second = run_action(app, given)
    assert second.outputs["run"] == {"exit-code": "2", "run-dir": ""}
    assert "wrote no report (exit 2)" in second.summary
    assert (app / "reports" / "latest").resolve() == Path(first.outputs["run"]["run-dir"])


def run_gitlab_job(app: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    """The template's before_script + script in one shell, as GitLab's runner runs them."""
    job = yaml.safe_load(GITLAB.read_text())[".celery-chaos"]
    env = {k: str(v) for k, v in job["variables"].items()} | variables
    script = "\n".join([*job["before_script"], *job["script"]])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "set -eo pipefail\n" + script],
        cwd=app,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("scenario", "code"), [(LOSES_WORK, 1), (BAD, 2)], ids=["expectations-not-met", "bad"]
)
def test_the_gitlab_job_runs_an_apps_scenarios(tmp_path: Path, scenario: str, code: int) -> None:
    app = app_repository(tmp_path, scenario)
    done = run_gitlab_job(app, {"CHAOS_EXECUTABLE": harness_executable()})
    assert done.returncode == code, done.stdout + done.stderr
    assert MESSAGES[code] in done.stdout
    if code == 1:
        summary_md = (app / "reports" / "latest" / "summary.md").read_text()
        assert "---- summary.md ----\n" + summary_md in done.stdout
    else:
        assert "wrote no report (exit 2)" in done.stdout
