"""examples/document_ingest on a real PostgreSQL with real workers, SIGKILLed mid-parse: the
invariant catches the stuck document under Celery's defaults and holds under the safe settings
with the idempotent task (the same statements, in one transaction).

Each run adds one invariant to the example's own (the killed document's row, read the same way)
so the test proves *which* row is stuck and how, not only how many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult, failure_message
from celery_chaos.core.scenario import load_file, parse_scenario
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.services_support import needs_postgres

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "document_ingest" / "scenarios"
# doc-0 is task 0's document, the one whose pool process is killed at checkpoint 'ocr'.
KILLED_ROW = "SELECT count(*) FROM documents WHERE id = 'doc-0' AND {condition}"


def run(file: str, tmp_path: Path, **extra: str) -> ScenarioResult:
    """The example's scenario, strict, plus one invariant per ``extra`` (name: condition on
    doc-0's row, expected to match it once), from the repository's root as its README says."""
    data = load_file(EXAMPLE / file).model_dump(exclude_unset=True)
    data["invariants"] += [
        {"name": name, "sql": KILLED_ROW.format(condition=condition), "expect": 1}
        for name, condition in extra.items()
    ]
    scenario = parse_scenario(data, file)
    options = RunOptions(report_dir=tmp_path, strict=True)
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert result.status == PASSED, failure_message(result)
    return result


def judged(result: ScenarioResult) -> dict[str, dict[str, Any]]:
    assert result.verdicts is not None
    return {invariant["name"]: invariant for invariant in result.verdicts.invariants}


@needs_postgres
def test_the_invariant_catches_the_stuck_document_under_celerys_defaults(tmp_path: Path):
    result = run(
        "01-defaults.yaml",
        tmp_path,
        **{"doc-0-locked-mid-parse": "backend_lock AND stage = 'extract' AND content IS NULL"},
    )
    found = judged(result)
    assert (found["no-stuck-document"]["value"], found["no-stuck-document"]["held"]) == (1, False)
    assert (
        found["every-document-parsed"]["value"] == 1 and not found["every-document-parsed"]["held"]
    )
    assert found["doc-0-locked-mid-parse"]["held"], found["doc-0-locked-mid-parse"]
    assert result.verdicts is not None and result.verdicts.counts["invariant_violations"] == 2
    killed = result.verdicts.tasks[0]
    assert killed.outcome == "lost" and killed.failures == ["WorkerLostError"]
    assert [a.last_checkpoint for a in killed.attempts] == ["ocr"]  # one attempt, killed there
    assert any(
        line.startswith("invariant_violations no-stuck-document") for line in result.explanations
    )


@needs_postgres
def test_redelivery_alone_cannot_unstick_a_task_that_locks_itself_out(tmp_path: Path):
    result = run("03-acks-late-reject.yaml", tmp_path, **{"doc-0-still-locked": "backend_lock"})
    assert judged(result)["doc-0-still-locked"]["held"]
    killed = result.verdicts.tasks[0] if result.verdicts else None
    assert killed is not None and [a.state for a in killed.attempts] == [None, "FAILURE"]
    assert killed.attempts[1].redelivered and killed.failures == ["DocumentLocked"]


@needs_postgres
def test_every_invariant_holds_with_safe_settings_and_the_idempotent_task(tmp_path: Path):
    parsed = "content IS NOT NULL AND NOT backend_lock AND stage = 'done'"
    result = run("05-idempotent.yaml", tmp_path, **{"doc-0-parsed-by-the-redelivery": parsed})
    found = judged(result)
    assert all(invariant["held"] for invariant in found.values()), found
    assert found["no-stuck-document"]["value"] == 0 == found["every-document-parsed"]["value"]
    killed = result.verdicts.tasks[0] if result.verdicts else None
    assert killed is not None and killed.outcome == "recovered"
    # the first attempt set backend_lock (in its transaction) and was killed at 'ocr'; the
    # redelivery found a clean row and parsed it
    assert [(a.state, a.last_checkpoint) for a in killed.attempts] == [
        (None, "ocr"),
        ("SUCCESS", "store"),
    ]


@needs_postgres
def test_the_idempotent_task_alone_leaves_no_lock_but_an_unparsed_document(tmp_path: Path):
    result = run("06-idempotent-defaults.yaml", tmp_path, **{"doc-0-untouched": "stage IS NULL"})
    found = judged(result)
    assert found["no-stuck-document"]["held"] and found["doc-0-untouched"]["held"]
    assert (
        found["every-document-parsed"]["value"] == 1 and not found["every-document-parsed"]["held"]
    )
    assert result.verdicts is not None and result.verdicts.tasks[0].outcome == "lost"
