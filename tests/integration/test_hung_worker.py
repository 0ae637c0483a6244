"""A worker Celery declares dead ("Unrecoverable error") whose shutdown never ends is a
``worker_crashes`` finding (reason ``shutdown_hung``), recorded by the run's last look: the
checker counts worker exits, and such a worker never exits. Real workers, a real Redis restart:
scenario 28's crash (Kombu's restore on channel close raises after a broker restart), with a
worker step whose ``stop`` never returns (stuck_shutdown_app.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.core import history as h

from tests.integration.adhoc_support import ACK_LATE, run

pytestmark = pytest.mark.integration
APP = "tests.integration.stuck_shutdown_app:app"
INGEST = {"task": "sample_tasks.tasks.ingest_document", "count": 2,
          "kwargs": {"doc_id": "doc-{n}", "steps": 10, "step_seconds": 0.2}}  # fmt: skip


def test_a_worker_whose_shutdown_hangs_after_an_unrecoverable_error_is_a_crash(
    tmp_path: Path,
) -> None:
    result = run(
        tmp_path,
        celery=ACK_LATE | {"broker_transport_options": {"visibility_timeout": 5}},
        broker={"persistence": "aof"},
        workers={"count": 1, "concurrency": 2, "app": APP},
        workload=[INGEST],
        faults=[
            {"kind": "restart_broker", "when": {"task": 0, "checkpoint": "step-3"}, "duration": 1}
        ],
        timeout=20,
    )
    assert result.verdicts is not None
    (crash,) = result.verdicts.crashes
    assert crash.reason_code == "shutdown_hung", crash
    assert "Unrecoverable error" in (result.report_dir / "logs" / "worker-w0.log").read_text()
    assert crash.log_tail, "the log lines that explain it"
    history = (result.report_dir / "history.jsonl").read_text().splitlines()
    assert sum(f'"type": "{h.WORKER_HUNG}"' in line for line in history) == 1
    assert not any(f'"type": "{h.WORKER_EXIT}"' in line for line in history)  # it never exited
