#!/usr/bin/env python
"""Speed figures of celery-chaos on this machine, each printed with its target and PASS/MISS.

a. environment ready: ledger + broker Redis + 1 prefork worker (concurrency 2) reporting
   ``worker_ready``, on the local backend (LocalBackend construction + ``start()``); median.
b. harness overhead of scenarios/03-ack-late-reject-child-kill.yaml: the wall time of
   ``run_scenario`` minus the workload's own time, where the workload time is the span of its
   history from the first ``dispatch`` to the last ``attempt_end`` (what the tasks themselves
   needed at the scenario's concurrency, including any time Celery took to redeliver). The rest is
   harness: provisioning, quiescence detection (incl. ``settle``), freezing, inspection, checking,
   teardown and report writing; median.
c. redelivery delay: in the same runs, the time from the ``kill_child`` fault event to the next
   ``attempt_start`` of the killed task (the checker's ``redelivery_latencies``); median.
d. checker time on a synthetic 1,000,000-event history (tasks with attempts, checkpoints, locks,
   side effects, kills and redeliveries, failures); median.

Usage: python benchmarks/bench.py [--runs 3] [--events 1000000] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import history as h  # noqa: E402
from harness.backends.local import LocalBackend  # noqa: E402
from harness.checker import BrokerState, check  # noqa: E402
from harness.runner import PASSED, RunOptions, run_scenario  # noqa: E402
from harness.scenario import Scenario, WorkersSpec, load_file  # noqa: E402

SCENARIO = ROOT / "scenarios" / "03-ack-late-reject-child-kill.yaml"
TARGETS = {
    "environment_ready_s": 1.5,
    "scenario_overhead_s": 2.0,
    "redelivery_delay_s": 0.2,
    "checker_1m_events_s": 5.0,
}


def quiet(_: str) -> None:
    pass


def environment_ready(scenario: Scenario, runs: int) -> list[float]:
    """Seconds until ledger, broker and one prefork worker (concurrency 2) are ready."""
    bare = scenario.model_copy(
        update={"workers": WorkersSpec(count=1, concurrency=2, pool="prefork"), "faults": []}
    )
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="chaos-bench-") as folder:
            began = time.perf_counter()
            backend = LocalBackend(bare, Path(folder), log=quiet, cwd=ROOT)
            with backend:
                backend.start()
                samples.append(time.perf_counter() - began)
    return samples


def workload_span(history: list[h.Event]) -> float:
    """First dispatch to last attempt_end: the time the tasks themselves took."""
    first = min(e["ts"] for e in history if e["type"] == h.DISPATCH)
    last = max(e["ts"] for e in history if e["type"] == h.ATTEMPT_END)
    return last - first


def scenario_runs(scenario: Scenario, runs: int) -> list[dict[str, Any]]:
    """Run the scenario ``runs`` times; per run: wall time, workload span, redelivery delays."""
    samples = []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="chaos-bench-") as folder:
            options = RunOptions(report_dir=Path(folder), seed=run)
            began = time.perf_counter()
            result = run_scenario(scenario, options, Path(folder), log=quiet)
            wall = time.perf_counter() - began
            if result.status != PASSED or result.verdicts is None:
                raise SystemExit(
                    f"scenario run {run} did not pass: {result.status} {result.reason}"
                )
            history = h.read_jsonl(str(result.report_dir / "history.jsonl"))
            delays = [
                latency
                for task in result.verdicts.tasks
                if any(a.interrupted_by is not None for a in task.attempts)
                for latency in task.redelivery_latencies
            ]
            faults = [e for e in history if e["type"] == h.FAULT and e.get("hits")]
            exits = [e for e in history if e["type"] == h.PROCESS_EXIT]
            noticed = [min(x["ts"] for x in exits) - faults[0]["ts"]] if faults and exits else []
            span = workload_span(history)
            samples.append(
                {
                    "wall": wall,
                    "span": span,
                    "overhead": wall - span,
                    "delays": delays,
                    "noticed": noticed,
                }
            )
    return samples


def synthetic_history(count: int, seed: int = 0) -> tuple[list[h.Event], BrokerState, None]:
    """``count`` events shaped like a real run: 2 workers x 4 processes, 20-event tasks, 5% killed
    and redelivered, 1% raising, the history cut at ``count`` (the tail is still running)."""
    rng = random.Random(seed)
    events: list[h.Event] = []
    workers = [f"w{i}@bench" for i in range(2)]
    t, task_no, fault_no = 1_700_000_000.0, 0, 0

    def add(event_type: str, ts: float, **fields: Any) -> None:
        events.append({"type": event_type, "ts": ts, **fields})

    while len(events) < count:
        task_id = f"{task_no:08d}-0000-4000-8000-{rng.getrandbits(48):012x}"
        name = rng.choice(["sample_tasks.tasks.ingest_document", "sample_tasks.tasks.send_email"])
        worker, pid = rng.choice(workers), 1000 + rng.randrange(8)
        at = t + rng.random() * 0.05
        add(h.DISPATCH, at, task_id=task_id, task=name, index=task_no, args=[], kwargs={})
        attempt, done = 1, False
        while not done:
            at += 0.001
            add(
                h.ATTEMPT_START,
                at,
                task_id=task_id,
                task=name,
                attempt=attempt,
                worker=worker,
                pid=pid,
                redelivered=attempt > 1,
            )
            add(
                h.LOCK_ACQUIRED,
                at,
                task_id=task_id,
                attempt=attempt,
                name=f"doc:{task_no}",
                reclaimed=attempt > 1,
                pid=pid,
            )
            killed_at = rng.randrange(10) if attempt == 1 and rng.random() < 0.05 else None
            for step in range(10):
                at += 0.01
                add(
                    h.CHECKPOINT, at, task_id=task_id, attempt=attempt, name=f"step-{step}", pid=pid
                )
                if step == killed_at:
                    add(
                        h.FAULT,
                        at + 0.001,
                        fault=fault_no,
                        kind="kill_child",
                        status="injected",
                        worker=worker,
                        task_id=task_id,
                        pid=pid,
                        hits=[{"task_id": task_id, "attempt": attempt}],
                        detail="SIGKILL",
                    )
                    add(
                        h.PROCESS_EXIT,
                        at + 0.01,
                        task_id=task_id,
                        attempt=attempt,
                        pid=pid,
                        worker=worker,
                        reason="SIGKILL by kill_child fault",
                    )
                    fault_no, pid, at = fault_no + 1, pid + 8, at + 0.05
                    break
            else:
                key = f"email:{task_no}"
                add(
                    h.SIDE_EFFECT,
                    at,
                    task_id=task_id,
                    attempt=attempt,
                    key=key,
                    applied=attempt == 1,
                    idempotent=attempt > 1,
                    pid=pid,
                )
                add(
                    h.LOCK_RELEASED,
                    at,
                    task_id=task_id,
                    attempt=attempt,
                    name=f"doc:{task_no}",
                    pid=pid,
                )
                state = "SUCCESS"
                if rng.random() < 0.01:
                    state = "FAILURE"
                    add(
                        h.TASK_FAILURE,
                        at,
                        task_id=task_id,
                        attempt=attempt,
                        exc_type="ValueError",
                        exc="bad input",
                        origin="task",
                        pid=pid,
                    )
                add(
                    h.ATTEMPT_END,
                    at + 0.001,
                    task_id=task_id,
                    attempt=attempt,
                    state=state,
                    pid=pid,
                )
                done = True
            attempt += 1
        t += 0.0125  # 8 processes in parallel, ~0.1 s per task
        task_no += 1
    events.sort(key=lambda e: e["ts"])
    del events[count:]
    for seq, event in enumerate(events):
        event["seq"] = seq
    recent = {e["task_id"] for e in events[-2000:] if e["type"] == h.DISPATCH}
    broker = BrokerState(locations={task_id: ["queue:celery"] for task_id in recent})
    return events, broker, None


def checker_time(events: int, runs: int) -> list[float]:
    history, broker, held = synthetic_history(events)
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        verdicts = check(history, broker, held)
        samples.append(time.perf_counter() - began)
    assert sum(verdicts.counts[o] for o in ("ok", "recovered")) > 0
    return samples


def figure(key: str, label: str, samples: list[float], note: str = "") -> dict[str, Any]:
    value = statistics.median(samples) if samples else float("nan")
    target = TARGETS[key]
    passed = value <= target
    runs = ", ".join(f"{s:.3f}" for s in samples)
    print(f"{label:<58} {value:7.3f} s   target <= {target:<4} s   {'PASS' if passed else 'MISS'}")
    print(f"    runs: [{runs}]{'  ' + note if note else ''}")
    return {
        "value": round(value, 4),
        "target": target,
        "pass": passed,
        "samples": [round(s, 4) for s in samples],
        "note": note,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per figure (median)")
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic history size")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    os.chdir(ROOT)

    scenario = load_file(SCENARIO)
    print(
        f"celery-chaos benchmarks: python {platform.python_version()}, {os.cpu_count()} CPUs,"
        f" {args.runs} runs each\n"
    )
    results: dict[str, Any] = {}
    results["environment_ready_s"] = figure(
        "environment_ready_s",
        "a. environment ready (ledger+broker+1 worker -c 2), median",
        environment_ready(scenario, args.runs),
    )
    runs = scenario_runs(scenario, args.runs)
    spans = ", ".join(f"{r['wall']:.2f}-{r['span']:.2f}" for r in runs)
    results["scenario_overhead_s"] = figure(
        "scenario_overhead_s",
        f"b. {SCENARIO.stem} overhead, median",
        [r["overhead"] for r in runs],
        note=f"wall-workload span: {spans}",
    )
    delays = [r["delays"][0] for r in runs if r["delays"]]
    noticed = ", ".join(f"{n:.3f}" for r in runs for n in r["noticed"])
    results["redelivery_delay_s"] = figure(
        "redelivery_delay_s",
        "c. child kill -> redelivered attempt_start, median",
        delays,
        note=f"harness saw the death (fault -> process_exit) after: [{noticed}]",
    )
    results["checker_1m_events_s"] = figure(
        "checker_1m_events_s",
        f"d. checker on a {args.events:,}-event history, median",
        checker_time(args.events, args.runs),
        note=f"{args.events} events, generated with seed 0",
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
