"""`celery-chaos repro --file examples/document_ingest/repro.yaml` as a user runs it: the repro
file's services (a real PostgreSQL), setup SQL and invariants, a real SIGKILL of the pool process
at checkpoint 'ocr', the verdict and the exit code the invariants decide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.services_support import needs_postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
REPRO_FILE = "examples/document_ingest/repro.yaml"


def repro(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "repro", "--file", REPRO_FILE]
        + ["--report-dir", str(tmp_path), *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=180,
    )
    results = list(tmp_path.glob("*/repro-*/result.json"))
    assert results, done.stdout + done.stderr
    return done, json.loads(results[0].read_text())


def invariants(result: dict) -> dict[str, tuple[float, bool]]:
    return {i["name"]: (i["value"], i["held"]) for i in result["probes"]}


@needs_postgres
def test_the_repro_files_invariants_catch_the_stuck_document(tmp_path: Path) -> None:
    done, result = repro(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "setup[0] sql: ok" in done.stdout
    assert result["repro"]["verdict"] == "LOST" and result["verdicts"]["invariant_violations"] == 2
    assert invariants(result) == {
        "no-stuck-document": (1, False),
        "every-document-parsed": (1, False),
    }
    assert "no-stuck-document (sql): 1 (expected 0, BROKEN)" in done.stdout
    assert "because invariant no-stuck-document: after the run" in done.stdout


@needs_postgres
def test_the_idempotent_task_with_redelivery_holds_them(tmp_path: Path) -> None:
    done, result = repro(
        tmp_path,
        "--task",
        "document_ingest.ingest_idempotent",
        "--set",
        "task_acks_late=true",
        "--set",
        "task_reject_on_worker_lost=true",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["repro"]["verdict"] == "RECOVERED"
    assert invariants(result) == {
        "no-stuck-document": (0, True),
        "every-document-parsed": (0, True),
    }
    attempts = result["tasks"][0]["attempts"]
    assert [(a["state"], a["last_checkpoint"]) for a in attempts] == [
        (None, "ocr"),
        ("SUCCESS", "store"),
    ]
