"""The timeline of a run, laid out for drawing: lanes, attempt bars, fault markers and bands,
redelivery links. Pure: it reads a history (the events ``history.jsonl`` holds), no I/O.

Lanes, top to bottom: the nemesis (one marker per fault event), the broker, then per worker its
main process and its pool processes. A pool process replaced after a death continues on the lane
of the one it replaced (Celery keeps ``concurrency`` processes), so a poison message that kills
a few hundred processes still draws on a handful of lanes; each bar names its pid.

Times are seconds from the start of the workload (the first dispatch), the clock the console's
``[t=...]`` lines use; the environment's start-up shows as negative time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.checker import Attempt, check
from celery_chaos.faults.base import INJECTED, FaultKind
from celery_chaos.faults.registry import FAULTS, undone_by
from celery_chaos.report.timeline_model import Band, Bar, Lane, Link, Marker, Timeline

__all__ = ["Band", "Bar", "Lane", "Link", "Marker", "Timeline", "all_attempts", "build"]

WORKER_EXIT = "worker_exit"  # written by newer runners; tolerated when absent
NEMESIS_LANE, CLIENT_LANE, BROKER_LANE = 0, 1, 2  # the fixed lanes above the workers


def attempt_ending(attempt: Attempt) -> str:
    """How an attempt ended, as the bar's colour class."""
    if attempt.state:
        return {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}.get(
            attempt.state, "other"
        )
    if attempt.died is not None:
        return "oom" if (attempt.exit_reason or "").startswith("oom") else "killed"
    return "running"


def all_attempts(history: list[h.Event]) -> dict[str, list[Attempt]]:
    """Every attempt per task id, as the checker sees them (attempts of tasks that were never
    dispatched included, so every ``attempt_start`` gets a bar)."""
    dispatched = {e["task_id"] for e in history if e["type"] == h.DISPATCH}
    extra: dict[str, h.Event] = {}
    for event in history:
        if event["type"] == h.ATTEMPT_START and event["task_id"] not in dispatched:
            extra.setdefault(
                event["task_id"],
                {"type": h.DISPATCH, "ts": event["ts"], "task_id": event["task_id"],
                 "task": event.get("task", "?"), "index": None},
            )  # fmt: skip
    return {t.task_id: t.attempts for t in check([*extra.values(), *history]).tasks}


def _workload_epoch(history: list[h.Event], config: dict[str, Any]) -> float:
    """The epoch time the workload started: the first dispatch minus its planned delay."""
    dispatches = [e["ts"] for e in history if e["type"] == h.DISPATCH]
    if not dispatches:
        return history[0]["ts"] if history else 0.0
    delays = [float(item.get("at") or 0) for item in config.get("workload") or []]
    return min(dispatches) - (min(delays) if delays else 0.0)


class _Builder:
    def __init__(self, history: list[h.Event], config: dict[str, Any]):
        self.history = history
        self.config = config
        self.epoch = _workload_epoch(history, config)
        last = max((e["ts"] for e in history), default=self.epoch + 1.0)
        self.end = self.rel(last)
        self.timeline = Timeline(epoch=self.epoch, end=self.end)
        self.attempts = all_attempts(history)
        self.worker_pids: dict[str, int] = {}  # worker name -> main pid (agent's view)
        self.worker_spans: dict[str, list[float]] = {}  # worker name -> [start, ready, end]

    def rel(self, ts: float) -> float:
        return round(ts - self.epoch, 4)

    def lane(self, key: str, label: str, kind: str, worker: str | None = None) -> Lane:
        lane = Lane(key, label, kind, worker, index=len(self.timeline.lanes))
        self.timeline.lanes.append(lane)
        return lane


def _workers(b: _Builder) -> list[str]:
    """Worker names in order of appearance, with their lifetimes (start, end)."""
    names: list[str] = []
    for event in b.history:
        name = event.get("worker")
        if event["type"] in (h.WORKER_STARTED, h.WORKER_READY, h.ATTEMPT_START) and name:
            if name not in names:
                names.append(name)
                b.worker_spans[name] = [b.rel(event["ts"])] * 2 + [b.end]
            if event["type"] == h.WORKER_READY:
                b.worker_spans[name][1] = b.rel(event["ts"])
                b.worker_pids[name] = event.get("pid")  # type: ignore[assignment]
        kind = _kind(event) if event["type"] == h.FAULT else None
        ends_worker = event["type"] == WORKER_EXIT or (
            kind is not None and kind.ends_worker and event.get("status") == INJECTED
        )
        if ends_worker and name in b.worker_spans:
            b.worker_spans[name][2] = min(b.worker_spans[name][2], b.rel(event["ts"]))
    return names


def _pool_processes(b: _Builder, worker: str) -> dict[int, list[float]]:
    """Pool processes of one worker with their lifetimes: from their start (or first attempt)
    to their death (or the worker's end)."""
    end = b.worker_spans[worker][2]
    spans: dict[int, list[float]] = {}
    main_pid = b.worker_pids.get(worker)
    owners = [w for w, pid in b.worker_pids.items() if pid == main_pid]
    for event in b.history:
        kind, pid = event["type"], event.get("pid")
        ours = owners == [worker] and event.get("ppid") == main_pid
        if (kind == h.POOL_PROCESS_STARTED and ours) or (
            kind == h.ATTEMPT_START and event.get("worker") == worker
        ):
            spans.setdefault(pid, [b.rel(event["ts"]), end])
        elif kind == h.PROCESS_EXIT and event.get("worker") == worker and pid in spans:
            spans[pid][1] = b.rel(event["ts"])
    return spans


def _attempt_rows(attempts: list[tuple[float, float, Any]]) -> list[list[Any]]:
    """Pack intervals into rows so that no two in a row overlap (a threads pool runs several
    attempts in one process at once)."""
    rows: list[list[Any]] = []
    ends: list[float] = []
    for t0, t1, item in sorted(attempts, key=lambda a: a[0]):
        for i, row_end in enumerate(ends):
            if t0 >= row_end:
                rows[i].append(item)
                ends[i] = t1
                break
        else:
            rows.append([item])
            ends.append(t1)
    return rows


def _attempt_span(b: _Builder, attempt: Attempt) -> tuple[float, float]:
    end = attempt.ended if attempt.ended is not None else attempt.died
    t0 = b.rel(attempt.started)
    return t0, max(t0, b.rel(end) if end is not None else b.end)


def _pool_lanes(b: _Builder, worker: str) -> dict[tuple[int, int], int]:
    """Lanes of one worker's pool processes; returns (pid, row) -> lane index."""
    spans = _pool_processes(b, worker)
    by_pid: dict[int, list[tuple[float, float, Any]]] = defaultdict(list)
    for attempts in b.attempts.values():
        for a in attempts:
            if a.worker == worker and a.pid is not None:
                by_pid[a.pid].append((*_attempt_span(b, a), a))
    virtual = []  # (start, end, (pid, row)): one per process, or per row of a threaded one
    for pid, (start, end) in spans.items():
        rows = _attempt_rows(by_pid.get(pid, [])) or [[]]
        virtual.extend((start, end, (pid, row)) for row in range(len(rows)))
    slots = _attempt_rows(virtual)
    index: dict[tuple[int, int], int] = {}
    for slot in slots:
        pids = list(dict.fromkeys(pid for pid, _ in slot))
        label = f"pid {pids[0]}" if len(pids) == 1 else f"pids {pids[0]} … {pids[-1]}"
        lane = b.lane(f"pool:{worker}:{slot[0]}", label, "pool", worker)
        lane.detail = f"{len(pids)} pool process(es): " + ", ".join(map(str, pids[:50]))
        for key in slot:
            index[key] = lane.index
            lane.lifelines.append((*spans[key[0]], ""))  # type: ignore[arg-type]
    return index


def _place_attempts(b: _Builder, worker: str, lanes: dict[tuple[int, int], int]) -> None:
    by_pid: dict[int, list[tuple[float, float, Attempt]]] = defaultdict(list)
    task_of: dict[int, str] = {}
    for task_id, attempts in b.attempts.items():
        for a in attempts:
            if a.worker == worker and a.pid is not None:
                by_pid[a.pid].append((*_attempt_span(b, a), a))
                task_of[id(a)] = task_id
    for pid, spans in by_pid.items():
        for row, attempts in enumerate(_attempt_rows(spans)):
            for a in attempts:
                t0, t1 = _attempt_span(b, a)
                bar = Bar(lanes[(pid, row)], t0, t1, attempt_ending(a), task_of[id(a)], a.attempt,
                          {"worker": worker, "pid": pid})  # fmt: skip
                b.timeline.bars.append(bar)


def build(
    history: list[h.Event],
    config: dict[str, Any] | None = None,
    tags: dict[str, list[str]] | None = None,
) -> Timeline:
    """Lay out a history as a timeline. ``config`` is the scenario as run (fault durations);
    ``tags`` name each anomalous task's verdicts, drawn after its last attempt."""
    b = _Builder(history, config or {})
    b.lane("nemesis", "nemesis", "nemesis").detail = "one marker per fault the nemesis fired"
    b.lane("client", "client", "client").detail = "one dot per task dispatched"
    broker = b.lane("broker", "broker", "broker")
    broker.lifelines.append((b.rel(history[0]["ts"]) if history else 0.0, b.end, ""))
    for worker in _workers(b):
        lane = b.lane(f"worker:{worker}", worker, "worker", worker)
        lane.detail = f"main process pid {b.worker_pids.get(worker, '?')}"
        start, ready, end = b.worker_spans[worker]
        lane.lifelines += [(start, min(ready, end), "starting"), (ready, end, "worker")]
        _place_attempts(b, worker, _pool_lanes(b, worker))
    _fill_bars(b)
    _faults(b)
    _worker_marks(b)
    _links(b)
    _dispatches(b)
    _tags(b, tags or {})
    t = b.timeline
    t.start = min([0.0, *(lane.lifelines[0][0] for lane in t.lanes if lane.lifelines)])
    t.end = max([t.start + 0.1, b.end, *(bar.t1 for bar in t.bars)])
    events = [m.t for m in (*t.dispatches, *t.faults)] + [bar.t0 for bar in t.bars]
    t.first = min([t.end, *events]) if events else t.start
    return t


def _dispatches(b: _Builder) -> None:
    for event in b.history:
        if event["type"] == h.DISPATCH:
            info = {k: event.get(k) for k in ("task", "task_id", "index", "args", "kwargs")}
            label = f"#{event.get('index')} {event.get('task')}"
            marker = Marker(CLIENT_LANE, b.rel(event["ts"]), "dispatch", label, info)
            b.timeline.dispatches.append(marker)


def _tags(b: _Builder, tags: dict[str, list[str]]) -> None:
    """Each anomalous task's verdicts after its last attempt (at its dispatch if it never ran);
    the same words at the same place are written once, with a count."""
    placed: dict[tuple[int, float, str], list[str]] = {}
    for task_id, words in tags.items():
        bars = [bar for bar in b.timeline.bars if bar.task_id == task_id]
        for bar in bars:
            bar.anomalous = True
        sent = [m.t for m in b.timeline.dispatches if m.info["task_id"] == task_id]
        if bars:
            last = max(bars, key=lambda bar: bar.t1)
            lane, t = last.lane, last.t1
        elif sent:
            lane, t = CLIENT_LANE, sent[0]
        else:
            continue
        placed.setdefault((lane, round(t, 1), " · ".join(words)), []).append(task_id)
    for (lane, t, label), task_ids in placed.items():
        text = label if len(task_ids) == 1 else f"{label} x{len(task_ids)}"
        info = {"task_id": task_ids[0], "task_ids": task_ids, "verdicts": label}
        b.timeline.tags.append(Marker(lane, t, "tag", text, info, "tag"))


def _fill_bars(b: _Builder) -> None:
    """Attach each bar's details, label and checkpoint ticks."""
    found = {(a.task_id, a.attempt): a for a in b.timeline.bars}
    names: dict[str, str] = {}
    indices: dict[str, Any] = {}
    for event in b.history:
        if event["type"] == h.DISPATCH:
            indices[event["task_id"]] = event.get("index")
        elif event["type"] == h.ATTEMPT_START:
            names[event["task_id"]] = event.get("task", "?")
        elif event["type"] == h.CHECKPOINT:
            bar = found.get((event.get("task_id"), event.get("attempt")))
            if bar is not None:
                bar.ticks.append((b.rel(event["ts"]), str(event.get("name"))))
    for task_id, attempts in b.attempts.items():
        for a in attempts:
            bar = found.get((task_id, a.attempt))
            if bar is None:
                continue
            index = indices.get(task_id)
            bar.label = f"#{index}·{a.attempt}" if index is not None else f"?·{a.attempt}"
            bar.info.update(
                task=names.get(task_id, "?"), task_id=task_id, attempt=a.attempt, index=index,
                redelivered=a.redelivered, state=a.state, exit_reason=a.exit_reason,
                interrupted_by=a.interrupted_by, last_checkpoint=a.last_checkpoint,
                start=bar.t0, end=bar.t1, ending=bar.ending,
            )  # fmt: skip


def _fault_lanes(b: _Builder, event: h.Event) -> list[int]:
    """The lanes a fault event affects: the broker, or its worker's lanes."""
    kind = _kind(event)
    if kind is not None and kind.on_broker:
        return [BROKER_LANE]
    worker = event.get("worker")
    return [lane.index for lane in b.timeline.lanes if worker and lane.worker == worker]


def _fault_duration(b: _Builder, event: h.Event) -> float | None:
    faults = b.config.get("faults") or []
    index = event.get("fault")
    if isinstance(index, int) and 0 <= index < len(faults):
        return faults[index].get("duration")
    return None


def _faults(b: _Builder) -> None:
    """One marker per fault event on the nemesis lane; bands for faults that last."""
    events = [e for e in b.history if e["type"] == h.FAULT]
    for event in events:
        t = b.rel(event["ts"])
        kind = str(event.get("kind"))
        label = f"#{event.get('fault', '?')} {kind}"
        info = {k: v for k, v in event.items() if k not in ("type", "seq", "hits")}
        fired = _fired(b, event)
        info |= {"t": fired, "recorded": t, "hits": len(event.get("hits") or [])}
        css = f"fault-{event.get('status', 'injected')}"
        b.timeline.faults.append(Marker(NEMESIS_LANE, fired, kind, label, info, css))
        _fault_band(b, event, events, fired, t)


def _fired(b: _Builder, event: h.Event) -> float:
    """When the nemesis fired a fault: its ``offset`` from the workload start. The event itself
    is written once the fault is carried out (a broker restart or an OOM kill takes a while)."""
    recorded = b.rel(event["ts"])
    offset = event.get("offset")
    if isinstance(offset, (int, float)) and -0.05 <= recorded - offset <= 120:
        return min(round(float(offset), 4), recorded)
    return recorded


def _kind(event: h.Event) -> FaultKind | None:
    """The registered kind of a fault event (None for a kind this version does not know)."""
    return FAULTS.get(str(event.get("kind")))


def _fault_band(b: _Builder, event: h.Event, events: list[h.Event], fired: float, t: float) -> None:
    """A band over the lanes of a fault that lasts: over its carrying out (a broker down, a
    memory limit lowered), or until the kind that undoes it (else its duration, or the end)."""
    kind, lanes = _kind(event), _fault_lanes(b, event)
    if event.get("status") != INJECTED or not lanes or kind is None or kind.band is None:
        return
    band = kind.band
    if not band.until_undone:
        b.timeline.bands.append(Band(lanes, fired, t, band.css, band.label))
        return
    ended_by = undone_by(kind.name)
    ends = [
        b.rel(e["ts"]) for e in events
        if e.get("kind") == ended_by and e.get("worker") == event.get("worker")
        and e["ts"] >= event["ts"]
    ]  # fmt: skip
    duration = _fault_duration(b, event)
    end = min(ends) if ends else (t + duration if duration else b.end)
    b.timeline.bands.append(Band(lanes, t, end, band.css, band.label))


def _worker_marks(b: _Builder) -> None:
    """Readiness, clean shutdown and exits on each worker's main lane."""
    labels = {h.WORKER_READY: "ready", h.WORKER_SHUTDOWN: "shutdown", WORKER_EXIT: "exit"}
    for event in b.history:
        if event["type"] not in labels:
            continue
        lane = b.timeline.lane_index(f"worker:{event.get('worker')}")
        if lane is None:
            continue
        info = {k: v for k, v in event.items() if k not in ("type", "seq")}
        label = labels[event["type"]]
        if event["type"] == WORKER_EXIT:
            label += f": {event.get('reason') or event.get('exitcode') or event.get('code') or ''}"
        css = "mark-" + labels[event["type"]]
        b.timeline.marks.append(Marker(lane, b.rel(event["ts"]), event["type"], label, info, css))


def _links(b: _Builder) -> None:
    """Redelivery links: the attempt that began first after an interruption is its redelivery
    (the checker's rule for redelivery latency)."""
    bars = {(bar.task_id, bar.attempt): bar for bar in b.timeline.bars}
    for task_id, attempts in b.attempts.items():
        for dead in attempts:
            if dead.died is None:
                continue
            after = [a for a in attempts if a.started >= dead.died]
            if not after:
                continue
            nxt = min(after, key=lambda a: a.started)
            src, dst = bars.get((task_id, dead.attempt)), bars.get((task_id, nxt.attempt))
            if src and dst:
                latency = round(nxt.started - dead.died, 3)
                b.timeline.links.append(Link(src.lane, src.t1, dst.lane, dst.t0, latency, task_id))
