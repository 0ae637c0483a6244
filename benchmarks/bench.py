#!/usr/bin/env python
"""Speed figures of celery-chaos on this machine, local and docker backends side by side.

a. environment ready: ledger + broker Redis + 1 prefork worker (concurrency 2) reporting
   ``worker_ready``: backend construction (+ ``check_runnable()`` on docker) + ``start()``; median.
   a2. the same with a RabbitMQ broker (local: a private ``rabbitmq-server`` node, where it is
   installed; docker: the RabbitMQ image's container; no target: Erlang's start-up dominates).
b. harness overhead of scenarios/03-ack-late-reject-child-kill.yaml: the wall time of
   ``run_scenario`` minus the workload's own time, where the workload time is the span of its
   history from the first ``dispatch`` to the last ``attempt_end`` (what the tasks themselves
   needed at the scenario's concurrency, including any time Celery took to redeliver). The rest is
   harness: provisioning, quiescence detection (incl. ``settle``), freezing, inspection, checking,
   teardown and report writing; median.
c. redelivery delay: in the same runs, the time from the ``kill_child`` fault event to the next
   ``attempt_start`` of the killed task (the checker's ``redelivery_latencies``); median, split by
   which pool process was killed (the youngest or an older one) and by mode (Celery noticed the
   death at once, or only at its 5-second ``maintain_pool`` timer; see benchmarks/README.md).
d. checker time on a synthetic 1,000,000-event history (tasks with attempts, checkpoints, locks,
   side effects, kills and redeliveries, failures); median. Backend-independent.
e. the default suite's wall time on the local backend with the default options (``--jobs
   auto``) and one at a time (``--suite-jobs``), each run counting only if every scenario passed,
   verdicts compared with the one-at-a-time run (``suite_wall.py``, also runnable alone).

The targets are for the local backend (PASS/MISS); docker figures have none and are printed next
to the local target only for comparison.

Usage: python benchmarks/bench.py [--runs 3] [--backend local|docker|both] [--events 1000000]
                                  [--suite-jobs auto,1] [--json results.json] [--smoke]
``--smoke``: 1 run, local only, a 20,000-event history, no figure e: proves it runs, in seconds.
A missed target prints MISS and still exits 0.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from celery_chaos.core import history as h  # noqa: E402
from celery_chaos.core.checker import BrokerState, check  # noqa: E402
from celery_chaos.core.conclusion import PASSED  # noqa: E402
from celery_chaos.core.scenario import Scenario, load_file  # noqa: E402
from celery_chaos.core.scenario_parts import WorkersSpec  # noqa: E402
from celery_chaos.placements.base import Placement  # noqa: E402
from celery_chaos.placements.docker import images  # noqa: E402
from celery_chaos.placements.local.placement import LocalPlacement  # noqa: E402
from celery_chaos.run.runner import RunOptions, run_scenario  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite_wall  # noqa: E402

SCENARIO = ROOT / "scenarios" / "03-ack-late-reject-child-kill.yaml"
BACKENDS = ("local", "docker")
TARGETS = {  # issue 22: environment ready and scenario overhead <= 0.5 s each (were 1.5 and 1)
    "environment_ready_s": 0.5,
    "scenario_overhead_s": 0.5,
    "redelivery_delay_s": 0.2,
    "checker_1m_events_s": 5.0,
}
SMOKE_EVENTS = 20_000  # --smoke: figure d on a small history
# Celery's prefork pool runs maintain_pool every 5 s; a redelivery slower than this waited for it.
TIMER_MODE_S = 2.0
# Siblings are forked within seconds; a larger gap between their pids means the pid counter wrapped.
PID_WRAP_GAP = 16384


def quiet(_: str) -> None:
    pass


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def secs(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f} s"


def listing(samples: list[float], digits: int = 3) -> str:
    return "[" + ", ".join(f"{s:.{digits}f}" for s in samples) + "]"


# --- a. environment ready -----------------------------------------------------------------


def new_backend(backend: str, scenario: Scenario, folder: Path) -> Placement:
    """A backend as the runner would make it (docker: after its ``check_runnable()``)."""
    if backend == "local":
        return LocalPlacement(scenario, folder, log=quiet, cwd=ROOT)
    from celery_chaos.placements.docker.placement import DockerPlacement

    docker_backend = DockerPlacement(scenario, folder, log=quiet)
    docker_backend.check_runnable()
    return docker_backend


def environment_ready(scenario: Scenario, runs: int, backend: str) -> list[float]:
    """Seconds until ledger, broker and one prefork worker (concurrency 2) are ready."""
    return [sample for sample, _ in ready_runs(scenario, runs, backend)]


def ready_runs(scenario: Scenario, runs: int, backend: str) -> list[tuple[float, dict]]:
    """:func:`environment_ready` samples, each with where its time went (:func:`worker_parts`)."""
    bare = scenario.model_copy(
        update={"workers": WorkersSpec(count=1, concurrency=2, pool="prefork"), "faults": []}
    )
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="chaos-bench-") as folder:
            began, epoch = time.perf_counter(), time.time()
            with new_backend(backend, bare, Path(folder)) as started:
                started.start()
                took = time.perf_counter() - began
                samples.append((took, worker_parts(Path(folder), epoch)))
    return samples


# Celery's own log lines that split a worker's start: the broker connection, Mingle's hello to
# the other workers (it waits its whole 1 s inspect timeout for replies even when alone), ready.
WORKER_MARKS = {
    "connected": ("] Connected to ",),
    "mingle_begin": ("mingle: searching for neighbors",),
    "mingle_end": ("mingle: all alone", "mingle: sync with"),
    "ready": (" ready.",),
}


def log_time(line: str) -> float:
    """Epoch seconds of a Celery log line ``[2026-12-07 13:32:47,381: INFO/...]`` (local time)."""
    whole = time.mktime(time.strptime(line[1:20], "%Y-%m-%d %H:%M:%S"))
    return whole + int(line[21:24]) / 1000


def worker_parts(folder: Path, began: float) -> dict[str, float]:
    """From the first worker's log: seconds from the start of provisioning to its broker
    connection, Celery's Mingle wait, and the rest to ``ready`` (empty where the log is not in
    ``folder``, e.g. docker)."""
    logs = sorted(folder.rglob("worker-w0.log"))
    seen: dict[str, float] = {}
    for line in logs[0].read_text(errors="replace").splitlines() if logs else []:
        for mark, needles in WORKER_MARKS.items():
            if line.startswith("[") and mark not in seen and any(n in line for n in needles):
                seen[mark] = log_time(line)
    if len(seen) < len(WORKER_MARKS):
        return {}
    return {
        "to_connected": seen["connected"] - began,
        "mingle": seen["mingle_end"] - seen["mingle_begin"],
        "to_ready": seen["ready"] - seen["mingle_end"],
    }


def ready_details(runs: list[tuple[float, dict]]) -> list[str]:
    """Figure a's median parts, when the worker's log gave them."""
    parts = [p for _, p in runs if p]
    if not parts:
        return []
    middle = {key: median([p[key] for p in parts]) for key in parts[0]}
    return [
        f"median parts: to the worker's broker connection {secs(middle['to_connected'])}"
        f" (ledger, broker, Python + Celery + app start), Celery's Mingle {secs(middle['mingle'])}"
        f" (with Celery's defaults it waits its 1 s hello timeout even alone), then ready"
        f" {secs(middle['to_ready'])}"
    ]


def rabbitmq_ready_figure(scenario: Scenario, runs: int, backends: list[str]) -> list[Figure]:
    """a2: environment ready with a RabbitMQ broker, on each backend that can start one (local:
    where rabbitmq-server is installed; docker: the RabbitMQ image)."""
    from celery_chaos.core.scenario import with_broker_kind
    from celery_chaos.placements.local.rabbitmq_server import RabbitMQUnavailable, find_rabbitmq

    notes = {
        "local": ["a private rabbitmq-server node (its own epmd, ports, user) instead of Redis"],
        "docker": [f"a {images.DEFAULT_RABBITMQ_IMAGE} container instead of the Redis one"],
    }
    figure = Figure("environment_ready_rabbitmq_s", "a2. environment ready, RabbitMQ broker",
                    {}, {}, {})  # fmt: skip
    for backend in backends:
        if backend == "local":
            try:
                find_rabbitmq()
            except RabbitMQUnavailable as missing:
                print(f"skipping the local RabbitMQ broker: {missing}")
                continue
        print(f"measuring {backend} with a RabbitMQ broker ...", flush=True)
        rabbitmq = with_broker_kind(scenario, "rabbitmq")
        figure.samples[backend] = environment_ready(rabbitmq, runs, backend)
        figure.details[backend] = notes[backend]
    return [figure] if figure.samples else []


# --- b./c. scenario runs ------------------------------------------------------------------


@dataclass
class RunSample:
    """One run of the scenario: wall time, workload span, and what happened to the kill."""

    wall: float
    span: float
    delay: float | None  # kill -> redelivered attempt_start (checker's redelivery_latencies)
    harness_noticed: float | None  # kill -> harness recorded process_exit
    celery_noticed: float | None  # kill -> the worker forked the replacement pool process
    killed: str | None  # "youngest" or "older" pool process of its worker
    timings: dict[str, float]  # result.json ``timings``: where the overhead goes

    @property
    def overhead(self) -> float:
        return self.wall - self.span

    @property
    def mode(self) -> str | None:
        if self.delay is None:
            return None
        return "timer" if self.delay >= TIMER_MODE_S else "immediate"


def workload_span(history: list[h.Event]) -> float:
    """First dispatch to last attempt_end: the time the tasks themselves took."""
    first = min(e["ts"] for e in history if e["type"] == h.DISPATCH)
    last = max(e["ts"] for e in history if e["type"] == h.ATTEMPT_END)
    return last - first


def fork_order(pids: list[int]) -> list[int]:
    """Sibling pids in fork order: ascending, rotated if the pid counter wrapped in between."""
    ordered = sorted(pids)
    gaps = [(b - a, i) for i, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False))]
    if gaps and max(gaps)[0] > PID_WRAP_GAP:
        cut = max(gaps)[1] + 1
        ordered = ordered[cut:] + ordered[:cut]
    return ordered


def killed_rank(history: list[h.Event], fault: h.Event) -> str | None:
    """Whether the killed pool process was its worker's youngest live one (by fork order).

    Siblings are the ``pool_process_started`` events with the killed process's ``ppid`` that
    precede the fault and have no ``process_exit`` before it (scenario 03 has one worker).
    """
    before = [e for e in history if e["ts"] <= fault["ts"]]
    parents = {e["pid"]: e.get("ppid") for e in before if e["type"] == h.POOL_PROCESS_STARTED}
    pid = fault.get("pid")
    if pid not in parents:
        return None
    exited = {e.get("pid") for e in before if e["type"] == h.PROCESS_EXIT}
    siblings = [p for p, ppid in parents.items() if ppid == parents[pid] and p not in exited]
    return "youngest" if fork_order(siblings)[-1] == pid else "older"


def replacement_delay(history: list[h.Event], fault: h.Event) -> float | None:
    """Kill -> first pool process the killed process's parent started after it: when Celery
    noticed the death (it forks the replacement in the same ``maintain_pool`` call)."""
    parent = next(
        (
            e.get("ppid")
            for e in history
            if e["type"] == h.POOL_PROCESS_STARTED and e["pid"] == fault.get("pid")
        ),
        None,
    )
    later = [
        e["ts"]
        for e in history
        if e["type"] == h.POOL_PROCESS_STARTED and e["ts"] > fault["ts"] and e.get("ppid") == parent
    ]
    return min(later) - fault["ts"] if later and parent is not None else None


def scenario_runs(scenario: Scenario, runs: int, backend: str) -> list[RunSample]:
    """Run the scenario ``runs`` times on ``backend``; one :class:`RunSample` per run."""
    samples = []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="chaos-bench-") as folder:
            options = RunOptions(backend=backend, report_dir=Path(folder), seed=run)
            began = time.perf_counter()
            result = run_scenario(scenario, options, Path(folder), log=quiet)
            wall = time.perf_counter() - began
            if result.status != PASSED or result.verdicts is None:
                raise SystemExit(
                    f"{backend}: scenario run {run} did not pass: {result.status} {result.reason}"
                )
            history = h.read_jsonl(str(result.report_dir / "history.jsonl"))
            delays = [
                latency
                for task in result.verdicts.tasks
                if any(a.interrupted_by is not None for a in task.attempts)
                for latency in task.redelivery_latencies
            ]
            faults = [e for e in history if e["type"] == h.FAULT and e.get("hits")]
            fault = faults[0] if faults else None
            exits = [e["ts"] for e in history if e["type"] == h.PROCESS_EXIT]
            samples.append(
                RunSample(
                    wall=wall,
                    span=workload_span(history),
                    delay=delays[0] if delays else None,
                    harness_noticed=min(exits) - fault["ts"] if fault and exits else None,
                    celery_noticed=replacement_delay(history, fault) if fault else None,
                    killed=killed_rank(history, fault) if fault else None,
                    timings=dict(result.timings),
                )
            )
    return samples


def split(runs: list[RunSample], by: Callable[[RunSample], str | None]) -> dict[str, Any]:
    """Redelivery delays grouped by ``by``: count, median and samples per group."""
    groups: dict[str, list[float]] = {}
    for run in runs:
        if run.delay is not None and by(run) is not None:
            groups.setdefault(str(by(run)), []).append(run.delay)
    return {
        name: {"n": len(values), "median": round(median(values), 4), "samples": values}
        for name, values in sorted(groups.items())
    }


def split_line(groups: dict[str, Any], names: dict[str, str]) -> str:
    """``label n=.. median ..`` for each group, in the order of ``names``."""
    parts = []
    for key, label in names.items():
        group = groups.get(key)
        count, value = (group["n"], f" median {secs(group['median'])}") if group else (0, "")
        parts.append(f"{label} n={count}{value}")
    return " | ".join(parts)


# --- d. checker ---------------------------------------------------------------------------


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
    """Seconds ``check()`` takes on a synthetic history of ``events`` events."""
    history, broker, held = synthetic_history(events)
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        verdicts = check(history, broker, held)
        samples.append(time.perf_counter() - began)
    assert sum(verdicts.counts[o] for o in ("ok", "recovered")) > 0
    return samples


# --- report -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the table: samples per backend, detail lines per backend."""

    key: str
    label: str
    samples: dict[str, list[float]]
    details: dict[str, list[str]]
    extra: dict[str, dict[str, Any]]

    def value(self, backend: str) -> float | None:
        samples = self.samples.get(backend)
        return median(samples) if samples is not None else None

    def passed(self) -> bool | None:
        value, target = self.value("local"), TARGETS.get(self.key)
        return None if value is None or target is None else value <= target

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target_local": TARGETS.get(self.key)}
        for backend, samples in self.samples.items():
            value = self.value(backend)
            out[backend] = {
                "value": round(value, 4) if value is not None else None,
                "samples": [round(s, 4) for s in samples],
                "notes": self.details.get(backend, []),
                **self.extra.get(backend, {}),
            }
            if backend == "local":
                out[backend]["pass"] = self.passed()
        return out


def print_table(figures: list[Figure], backends: list[str], runs: int) -> None:
    """The summary table, then each figure's runs and notes."""
    measured = {backend for fig in figures for backend in fig.samples}
    backends = [b for b in BACKENDS if b in backends or b in measured]
    columns = "".join(f"{b:>11}" for b in backends)
    print(f"{'figure (median of ' + str(runs) + ' runs)':<54}{columns}   local target")
    for fig in figures:
        cells = "".join(
            f"{secs(fig.value(b)) if b in fig.samples else 'n/a':>11}" for b in backends
        )
        verdict = {True: "PASS", False: "MISS", None: ""}[fig.passed()]
        target = f"<= {TARGETS[fig.key]:g} s" if fig.key in TARGETS else "-"
        print(f"{fig.label:<54}{cells}   {target:<9} {verdict}")
    if "docker" in backends:
        print("  (PASS/MISS grades the local column only; the docker backend has no targets,")
        print("   so next to docker figures the target is the local one, informative)")
    print()
    for fig in figures:
        print(fig.label)
        for backend, samples in fig.samples.items():
            print(f"  {backend:<7} runs: {listing(samples)}")
            for line in fig.details.get(backend, []):
                print(f"  {'':<7} {line}")
    print()


def scenario_figures(runs: list[RunSample]) -> dict[str, Any]:
    """Figures b and c of one backend's runs: samples, detail lines, JSON extras."""
    spans = ", ".join(f"{r.wall:.2f}-{r.span:.2f}" for r in runs)
    by_kill = split(runs, lambda r: r.killed)
    by_mode = split(runs, lambda r: r.mode)
    celery = [r.celery_noticed for r in runs if r.celery_noticed is not None]
    harness = [r.harness_noticed for r in runs if r.harness_noticed is not None]
    return {
        "overhead": ([r.overhead for r in runs], [f"wall-workload span: {spans}", split_up(runs)]),
        "delay": (
            [r.delay for r in runs if r.delay is not None],
            [
                "by killed pool process: "
                + split_line(by_kill, {"youngest": "youngest", "older": "older"}),
                "by mode: "
                + split_line(
                    by_mode,
                    {
                        "immediate": "detected at once",
                        "timer": f"detected at the 5 s maintain_pool timer (>= {TIMER_MODE_S:g} s)",
                    },
                ),
                f"Celery noticed (kill -> replacement pool process): {listing(celery)}",
                f"harness saw the death (kill -> process_exit): {listing(harness)}",
            ],
        ),
        "extra": {
            "by_killed_process": by_kill,
            "by_mode": by_mode,
            "runs": [asdict(r) | {"mode": r.mode} for r in runs],
        },
    }


OVERHEAD_PARTS = ("environment_ready", "settle", "freeze_inspect", "teardown")


def split_up(runs: list[RunSample]) -> str:
    """Medians of the overhead's parts as result.json's ``timings`` has them."""
    parts = [
        f"{part} {median([r.timings.get(part, 0.0) for r in runs]):.3f} s"
        for part in OVERHEAD_PARTS
    ]
    return "median parts: " + ", ".join(parts) + " (the rest: dispatch, reports, checker)"


def choose_backends(requested: str | None) -> tuple[list[str], str]:
    """The backends to measure and a note; exits 2 if docker was asked for and is unusable."""
    ok, reason = images.engine_available()
    if requested is None:
        if ok:
            return list(BACKENDS), reason
        return ["local"], f"docker figures skipped: {reason}"
    wanted = list(BACKENDS) if requested == "both" else [requested]
    if "docker" in wanted and not ok:
        raise SystemExit(f"--backend {requested}: {reason}")
    return wanted, reason if "docker" in wanted else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per figure (median)")
    parser.add_argument(
        "--backend",
        choices=["local", "docker", "both"],
        help="backends to measure (default: both when a Docker engine answers, else local)",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic history size")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--suite-jobs",
        default="auto,1",
        help="figure e: --jobs values to run the default suite with ('' skips it)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"1 run, local, {SMOKE_EVENTS:,} events, no figure e: proves it runs, in seconds",
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.backend, args.events, args.suite_jobs = 1, "local", SMOKE_EVENTS, ""
    os.chdir(ROOT)

    try:
        backends, note = choose_backends(args.backend)
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    scenario = load_file(SCENARIO)
    print(
        f"celery-chaos benchmarks: python {platform.python_version()}, {os.cpu_count()} CPUs,"
        f" {args.runs} runs each, backends: {', '.join(backends)}"
    )
    if note:
        print(f"note: {note}")
    print()

    ready = Figure(
        "environment_ready_s",
        "a. environment ready (ledger+broker+1 worker -c 2)",
        {},
        {},
        {},
    )
    overhead = Figure("scenario_overhead_s", f"b. {SCENARIO.stem} overhead", {}, {}, {})
    delay = Figure("redelivery_delay_s", "c. child kill -> redelivered attempt_start", {}, {}, {})
    for backend in backends:
        print(f"measuring {backend} ...", flush=True)
        runs = ready_runs(scenario, args.runs, backend)
        ready.samples[backend] = [sample for sample, _ in runs]
        ready.details[backend] = ready_details(runs)
        figures = scenario_figures(scenario_runs(scenario, args.runs, backend))
        overhead.samples[backend], overhead.details[backend] = figures["overhead"]
        delay.samples[backend], delay.details[backend] = figures["delay"]
        delay.extra[backend] = figures["extra"]
    ready_rabbitmq = rabbitmq_ready_figure(scenario, args.runs, backends)
    print("measuring the checker ...\n", flush=True)
    checker = Figure(
        "checker_1m_events_s",
        f"d. checker on a {args.events:,}-event history",
        {"local": checker_time(args.events, args.runs)},
        {"local": [f"{args.events} events, generated with seed 0 (no backend involved)"]},
        {},
    )
    table = [ready, *ready_rabbitmq, overhead, delay, checker]
    suite_jobs = [j.strip() for j in args.suite_jobs.split(",") if j.strip()]
    suites = suite_wall.measure(suite_jobs, 1) if suite_jobs else {}
    print_table(table, backends, args.runs)
    if suites:
        suite_wall.print_table(suites)
    if args.json:
        results = {
            "runs": args.runs,
            "backends": backends,
            "figures": {fig.key: fig.as_json() for fig in table},
        }
        if suites:
            results["figures"]["suite_wall_s"] = suite_wall.as_json(suites)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.smoke:
        print("smoke run (--smoke): tiny N, so the figures prove the benchmark runs, not its speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
