"""The nightly GitHub Actions workflow is valid (against the schema check-jsonschema ships, no
network) and does what README promises: nightly + manual, reports always kept, exit codes told
apart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "resilience.yml"


def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("check-jsonschema is missing on CI: install the dev extra")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    return found


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_matches_the_github_schema() -> None:
    done = validate(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_does_catch_mistakes(tmp_path: Path) -> None:
    broken = yaml.safe_load(WORKFLOW.read_text())
    broken["jobs"]["suite"]["runs-on"] = {"no": "such form"}
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert validate(path).returncode == 1


def load() -> dict:
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps() -> list[dict]:
    return load()["jobs"]["suite"]["steps"]


def step_running(fragment: str) -> dict:
    return next(s for s in steps() if fragment in s.get("run", "") + s.get("uses", ""))


def test_runs_nightly_and_on_demand() -> None:
    triggers = load()["on"]
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers


def test_runs_the_suite_on_docker_after_building_images() -> None:
    runs = [s.get("run", "") for s in steps()]
    order = [
        next(i for i, r in enumerate(runs) if needle in r)
        for needle in (
            "pip install -e",
            ".ci/docker-setup.sh",
            "celery-chaos images build",
            "celery-chaos run scenarios/ --backend docker",
        )
    ]
    assert order == sorted(order)


def test_tells_failed_expectations_from_could_not_run() -> None:
    script = step_running("celery-chaos run scenarios/")["run"]
    assert "set +e" in script and 'exit "$code"' in script
    assert '1) echo "::error title=celery-chaos: expectations failed' in script
    assert '2) echo "::error title=celery-chaos: could not run' in script


def test_always_keeps_the_reports_and_the_summary() -> None:
    upload = step_running("actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    summary = step_running("GITHUB_STEP_SUMMARY")
    assert summary["if"] == "always()" and "reports/latest/summary.md" in summary["run"]


def test_fans_out_over_shards_and_merges_them_in_a_final_job() -> None:
    jobs = load()["jobs"]
    shards = jobs["suite"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and len(shards) > 1
    assert jobs["suite"]["strategy"]["fail-fast"] is False  # one red shard keeps the others
    run = step_running("celery-chaos run scenarios/")["run"]
    assert f'--shard "${{{{ matrix.shard }}}}/{len(shards)}"' in run
    upload = step_running("actions/upload-artifact")
    assert "${{ matrix.shard }}" in upload["with"]["name"]  # one artifact per shard
    merge = jobs["merge"]
    assert merge["needs"] == "suite" and merge["if"] == "always()"
    download = next(s for s in merge["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"]["pattern"].endswith("-shard-*")
    merging = next(s for s in merge["steps"] if "report merge" in s.get("run", ""))
    assert "celery-chaos report merge shards/*/latest --out merged/" in merging["run"]
    summary = next(s for s in merge["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert "merged/summary.md" in summary["run"]


def test_the_version_matrix_fans_out_and_merges_into_one_matrix() -> None:
    jobs = load()["jobs"]
    steps_of = {name: jobs[name]["steps"] for name in ("versions", "versions-merge")}
    run = next(s["run"] for s in steps_of["versions"] if "celery-chaos matrix" in s.get("run", ""))
    assert "--celery 5.4,5.5,5.6" in run and '--shard "${{ matrix.shard }}/2"' in run
    assert jobs["versions"]["strategy"]["matrix"]["shard"] == [1, 2]
    cache = next(s for s in steps_of["versions"] if "actions/cache" in s.get("uses", ""))
    assert "~/.cache/celery-chaos/envs" in cache["with"]["path"]  # envs are reused
    merge = jobs["versions-merge"]
    assert merge["needs"] == "versions" and merge["if"] == "always()"
    merging = [s.get("run", "") for s in steps_of["versions-merge"]]
    assert any("report merge matrix-shards/*/latest --out matrix/" in r for r in merging)
    assert any("matrix/matrix.md" in r and "GITHUB_STEP_SUMMARY" in r for r in merging)


def test_nightly_storm_runs_the_nightly_folder_on_its_own_job() -> None:
    job = load()["jobs"]["storm"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "celery-chaos run scenarios/nightly/" in runs
    assert job["timeout-minutes"] >= 15  # a 10-minute storm plus set-up and drain
    uploads = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload")]
    assert uploads and uploads[0]["if"] == "always()"
    storm = (ROOT / "scenarios" / "nightly" / "storm-recommended-10min.yaml").read_text()
    assert "duration: 600" in storm


def test_nightly_runs_the_suite_on_rabbitmq_containers_on_its_own_job() -> None:
    job = load()["jobs"]["rabbitmq"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "celery-chaos images build" in runs
    assert (
        "celery-chaos run scenarios/ scenarios/rabbitmq/ --backend docker --broker rabbitmq" in runs
    )
    uploads = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload")]
    assert uploads and uploads[0]["if"] == "always()"


def test_every_job_that_runs_scenarios_installs_the_extras_and_requires_all() -> None:
    """A missing gevent/eventlet extra is a red nightly run (exit 2), never a silent skip."""
    runners = []
    for name, job in load()["jobs"].items():
        scripts = [step.get("run", "") for step in job["steps"]]
        runs = [line for s in scripts for line in s.splitlines() if "celery-chaos run " in line]
        if not runs:
            continue
        runners.append(name)
        assert all("--require-all" in line for line in runs), name
        install = next(s for s in scripts if "pip install -e" in s)
        assert "gevent" in install and "eventlet" in install, name
    assert sorted(runners) == ["rabbitmq", "storm", "suite"]
