"""The CI templates for an app's own repository (action.yml, ci-templates/gitlab-celery-chaos.yml)
are valid against the schemas check-jsonschema ships (offline), install the harness only in an
environment of their own, and tell exit 1, 2 and 3 apart. The shell parts run here against a
stand-in `celery-chaos` / `python3` that only exit or record; tests/integration/test_ci_action.py
runs them against real workers."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "ci-templates" / "gitlab-celery-chaos.yml"
MESSAGES = {
    0: "every scenario met its expectations",
    1: "expectations NOT met (exit 1)",
    2: "could not run (exit 2)",
    3: "inconclusive (exit 3)",
    130: "interrupted (exit 130)",
}


def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("check-jsonschema is missing on CI: install the dev extra")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    return found


def validate(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def consumer_pipeline(tmp_path: Path, **changes: object) -> Path:
    """A team's pipeline with the template's job as a concrete job (``extends`` resolved by hand):
    GitLab's schema accepts anything under a hidden ``.job`` key, so only this checks the job."""
    job = yaml.safe_load(GITLAB.read_text())[".celery-chaos"]
    job |= {"variables": job["variables"] | {"CHAOS_SCENARIOS": "chaos/"}, "image": "python:3.11"}
    job |= {"rules": [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]}
    job["artifacts"] |= changes
    path = tmp_path / "gitlab-ci.yml"
    path.write_text(yaml.safe_dump({"chaos-nightly": job}))
    return path


def test_matches_the_vendors_schema(tmp_path: Path) -> None:
    for schema, path in [
        ("vendor.github-actions", ACTION),
        ("vendor.gitlab-ci", GITLAB),
        ("vendor.gitlab-ci", consumer_pipeline(tmp_path)),
    ]:
        done = validate(schema, path)
        assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"


def test_the_schema_checks_do_catch_mistakes(tmp_path: Path) -> None:
    action = yaml.safe_load(ACTION.read_text())
    del action["runs"]["steps"][1]["shell"]  # a composite action's run step must name its shell
    (tmp_path / "action.yml").write_text(yaml.safe_dump(action))
    assert validate("vendor.github-actions", tmp_path / "action.yml").returncode == 1
    broken = consumer_pipeline(tmp_path, when="sometimes")
    assert validate("vendor.gitlab-ci", broken).returncode == 1


def action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def step(name_start: str) -> dict:
    return next(s for s in action()["runs"]["steps"] if s["name"].startswith(name_start))


def test_the_actions_inputs_and_upload() -> None:
    inputs = action()["inputs"]
    required = {"scenarios", "python", "backend", "broker", "report-dir", "celery-chaos-version"}
    assert required <= set(inputs)
    assert [n for n, spec in inputs.items() if spec.get("required")] == ["scenarios"]
    assert inputs["backend"]["default"] == "local" and inputs["python"]["default"] == ""
    upload = step("Upload")
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"].startswith("always()")


def test_inputs_reach_the_scripts_only_through_env() -> None:
    """An input pasted into a script is a script injection (a scenario path with `$(...)`)."""
    for each in action()["runs"]["steps"]:
        assert "${{" not in each.get("run", ""), each["name"]


def fake(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("version", "backend", "installed"),
    [
        ("", "local", f"{ROOT}[redis-server]"),
        ("0.3.0", "local", "celery-chaos[redis-server]==0.3.0"),
        (
            "git+https://e.invalid/c.git",
            "local",
            "celery-chaos[redis-server] @ git+https://e.invalid/c.git",
        ),
        ("celery-chaos[docker]>=0.3", "docker", "celery-chaos[docker]>=0.3"),  # as given
        ("0.3.0", "docker", "celery-chaos[docker]==0.3.0"),
    ],
)
def test_install_goes_into_a_venv_of_its_own(
    tmp_path: Path, version: str, backend: str, installed: str
) -> None:
    """python3 -m venv under RUNNER_TEMP, then that venv's pip: nothing touches the app's."""
    bin_dir, temp = tmp_path / "bin", tmp_path / "temp"
    bin_dir.mkdir()
    temp.mkdir()
    log = tmp_path / "calls"
    recorder = 'echo "$0 $*" >> ' + str(log) + "\n"
    venv_maker = 'mkdir -p "$3/bin"; cp "$0" "$3/bin/python"\n'
    fake(bin_dir / "python3", recorder + 'if [ "$2" = venv ]; then ' + venv_maker + "fi\n")
    output = tmp_path / "output"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RUNNER_TEMP": str(temp)}
    env |= {"GITHUB_OUTPUT": str(output), "CHAOS_EXECUTABLE": "", "CHAOS_VERSION": version}
    env |= {"CHAOS_BACKEND": backend, "ACTION_PATH": str(ROOT)}
    done = run_step(step("Install")["run"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    venv = temp / "celery-chaos-venv"
    calls = log.read_text().splitlines()
    assert calls[0] == f"{bin_dir / 'python3'} -m venv {venv}"
    assert calls[-1] == f"{venv / 'bin' / 'python'} -m pip install --quiet {installed}"
    assert output.read_text() == f"executable={venv / 'bin' / 'celery-chaos'}\n"


def test_an_existing_executable_installs_nothing(tmp_path: Path) -> None:
    output = tmp_path / "output"
    exe = fake(tmp_path / "celery-chaos", "exit 0\n")
    env = {"GITHUB_OUTPUT": str(output), "CHAOS_EXECUTABLE": str(exe), "CHAOS_VERSION": ""}
    env |= {"CHAOS_BACKEND": "local", "ACTION_PATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    assert run_step(step("Install")["run"], env, tmp_path).returncode == 0
    assert output.read_text() == f"executable={exe}\n"
    env["CHAOS_EXECUTABLE"] = str(tmp_path / "missing")
    done = run_step(step("Install")["run"], env, tmp_path)
    assert done.returncode == 2 and "input celery-chaos: no executable" in done.stdout


def stand_in(tmp_path: Path, code: int) -> Path:
    """A `celery-chaos` that records its arguments and exits with ``code``."""
    return fake(tmp_path / "celery-chaos", f'echo "$*" > {tmp_path / "args"}\nexit {code}\n')


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_the_action_tells_exit_codes_apart(tmp_path: Path, code: int) -> None:
    output = tmp_path / "output"
    env = {"GITHUB_OUTPUT": str(output), "CHAOS": str(stand_in(tmp_path, code))}
    env |= {"CHAOS_SCENARIOS": "chaos/a.yaml  chaos/more", "CHAOS_PYTHON": ".venv/bin/python"}
    env |= {"CHAOS_BACKEND": "docker", "CHAOS_BROKER": "rabbitmq", "CHAOS_REPORT_DIR": "out"}
    env |= {"CHAOS_ARGS": "--strict --require-all"}
    assert run_step(step("Run")["run"], env, tmp_path).returncode == 0  # the verdict comes last
    assert output.read_text() == f"exit-code={code}\nrun-dir=\n"
    assert (tmp_path / "args").read_text().split() == [
        *("run", "chaos/a.yaml", "chaos/more", "--report-dir", "out", "--backend", "docker"),
        *("--python", ".venv/bin/python", "--broker", "rabbitmq", "--strict", "--require-all"),
    ]
    done = run_step(step("Fail")["run"], {"CODE": str(code)}, tmp_path)
    assert done.returncode == code
    said = [c for c, message in MESSAGES.items() if message in done.stdout]
    assert said == [code], done.stdout
    if code:
        assert done.stdout.startswith("::error title=celery-chaos")


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_the_gitlab_job_tells_exit_codes_apart(tmp_path: Path, code: int) -> None:
    job = yaml.safe_load(GITLAB.read_text())[".celery-chaos"]
    env = {k: str(v) for k, v in job["variables"].items()}
    env |= {"CHAOS_EXECUTABLE": str(stand_in(tmp_path, code)), "CHAOS_SCENARIOS": "a.yaml"}
    script = "\n".join([*job["before_script"], *job["script"]])
    done = run_step(script, env, tmp_path)
    assert done.returncode == code
    said = [c for c, message in MESSAGES.items() if message in done.stdout]
    assert said == [code], done.stdout
    assert (tmp_path / "args").read_text().split() == [
        *("run", "a.yaml", "--report-dir", "reports", "--backend", "local")
    ]
    assert job["artifacts"]["when"] == "always"
