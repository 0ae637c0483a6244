"""Self-contained HTML reports: ``report.html`` per scenario and ``index.html`` per run.

Both are written from the files a run already leaves in each scenario folder (``result.json``
and ``history.jsonl``), so an old run folder can be rendered again. Everything a page needs is
inline (CSS, JS, SVG): it opens from a CI artifact or an air-gapped machine. Every piece of user
text (task arguments, scenario descriptions, exit reasons) goes through Jinja's autoescaping or
``tojson``, never into markup unescaped.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml
from jinja2 import ChainableUndefined, Environment, PackageLoader, Undefined

from celery_chaos.core import history as h
from celery_chaos.core.checker import LABELS, OUTCOMES, VERDICTS
from celery_chaos.core.invariants import broken_text, expect_text, number_text, stored_text
from celery_chaos.report import timeline as tl

REPORT_NAME = "report.html"
INDEX_NAME = "index.html"
GOOD_VERDICTS = {"ok", "recovered", "workflow_completed"}
# Lane heights in pixels (the timeline's JS places everything horizontally).
LANE_HEIGHT = {"client": 22, "broker": 22, "worker": 24, "pool": 24}
FAULT_LABEL_ROWS = 3  # fault labels that would overlap go one row down (timeline.js)
TAG_WORDS = {
    "lost": "LOST",
    "pending": "PENDING",
    "dead_lettered": "DEAD-LETTERED",
    "failed": "FAILED",
    "redelivery_loop": "REDELIVERY LOOP",
    "dropped_at_delivery_limit": "DROPPED AT DELIVERY LIMIT",
    "unexpected": "NEVER DISPATCHED",
}
AXIS_HEIGHT = 26


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    """One environment per process: compiling the templates took ~0.2 s of every scenario's
    overhead; rendering from it is thread-safe (``run --jobs``)."""
    env = Environment(
        loader=PackageLoader("celery_chaos.report", "templates"),
        autoescape=True,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = format_seconds
    env.filters["json"] = lambda value: json.dumps(value, default=str)  # shown as text
    env.filters["number"] = number_text  # an invariant's value: 2, 0.5, unreadable
    env.filters["expect_text"] = expect_text
    return env


def format_seconds(value: Any) -> str:
    if value is None or isinstance(value, Undefined):
        return "-"
    value = float(value)
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"


def load_scenario_dir(scenario_dir: Path) -> tuple[dict[str, Any], list[h.Event]]:
    """``result.json`` and ``history.jsonl`` of one scenario folder (either may be missing)."""
    result_path, history_path = scenario_dir / "result.json", scenario_dir / "history.jsonl"
    result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else {}
    result.setdefault("scenario", scenario_dir.name)
    events = h.read_jsonl(str(history_path)) if history_path.exists() else []
    return result, events


def verdict_counts(result: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(verdict, count, is_anomaly) for every verdict the run counted, known ones first."""
    counts = result.get("verdicts") or {}
    names = [*VERDICTS, *(k for k in counts if k not in VERDICTS)]
    return [(n, int(counts.get(n) or 0), n not in GOOD_VERDICTS) for n in names if n in counts]


def _task_name(task: dict[str, Any]) -> str:
    index = task.get("index")
    return f"#{index} {task.get('task', '?')}" if index is not None else str(task.get("task"))


def _anomaly_items(result: dict[str, Any], verdict: str) -> list[dict[str, Any]]:
    """What made ``verdict`` non-zero: each item has a text and the task ids it links to."""
    if verdict in OUTCOMES or verdict in LABELS:
        return [
            {"text": _task_name(t), "tasks": [t["task_id"]], "note": _last_exit(t),
             "why": _why(result, f"{verdict} ", f"[{t['task_id']}]: ")}
            for t in result.get("tasks") or []
            if verdict in (t.get("verdicts") or [t.get("outcome")])
        ]  # fmt: skip
    if verdict == "stuck_locks":
        return [
            {"text": f"lock {lock['name']}", "tasks": [lock.get("owner")] if lock.get("owner")
             else [], "note": f"held by attempt {lock.get('owner_attempt') or '?'}: "
             f"{lock.get('reason', '')}"}
            for lock in result.get("locks") or [] if lock.get("stuck")
        ]  # fmt: skip
    if verdict == "duplicate_side_effects":
        return [
            {"text": f"effect {e['key']}", "tasks": e.get("tasks") or [],
             "note": f"applied {e.get('applied')}x, attempted {e.get('attempted')}x"}
            for e in result.get("effects") or [] if e.get("duplicated")
        ]  # fmt: skip
    if verdict == "unexpected":
        return [{"text": "never dispatched", "tasks": [t], "note": ""} for t in result[verdict]]
    if verdict.startswith("workflow_"):
        return [
            {"text": f"{w['kind']} #{w.get('index')}", "note": w.get("reason", ""),
             "tasks": [m["task_id"] for m in w.get("members") or [] if m.get("outcome") not in
                       ("ok", "recovered")]}
            for w in result.get("workflows") or [] if w.get("verdict") == verdict
        ]  # fmt: skip
    if verdict == "revoked_but_ran":
        return [{"text": "ran after its revoke", "tasks": [t], "note": ""} for t in result[verdict]]
    if verdict == "invariant_violations":
        return [
            {"text": broken_text(i), "tasks": [], "note": f"{i.get('kind')}: {i.get('query')}",
             "why": _why(result, f"{verdict} ", f" {i['name']}: ")}
            for i in result.get("invariants") or [] if not i.get("held")
        ]  # fmt: skip
    if verdict == "result_not_stored":
        states = result.get("result_states") or {}
        return [
            {"text": f"completed, the result backend {stored_text(states.get(t, 'PENDING'))}",
             "tasks": [t], "note": result.get("result_backend") or "",
             "why": _why(result, f"{verdict} ", f"[{t}]: ")}
            for t in result.get(verdict) or []
        ]  # fmt: skip
    return [_generic_item(item) for item in result.get(verdict) or []]


def _why(result: dict[str, Any], prefix: str, marker: str) -> str:
    """One finding's explanation line (core.explain) after its head: the first line that
    starts with ``prefix`` and holds ``marker``, from the end of ``marker`` on."""
    for line in result.get("explanations") or []:
        if line.startswith(prefix) and marker in line:
            return line.split(marker, 1)[1]
    return ""


def _generic_item(item: Any) -> dict[str, Any]:
    """A finding of a kind this page does not know in detail (e.g. ``worker_crashes``)."""
    if not isinstance(item, dict):
        return {"text": str(item), "tasks": [], "note": ""}
    tasks = [t for t in (item.get("task_id"), *(item.get("tasks") or [])) if t]
    text = str(item.get("worker") or item.get("name") or item.get("key") or "")
    note = ", ".join(f"{k}: {v}" for k, v in item.items() if k not in ("worker", "tasks"))
    return {"text": text, "tasks": tasks, "note": note}


def _last_exit(task: dict[str, Any]) -> str:
    attempts = task.get("attempts") or []
    parts = [f"{len(attempts)} attempt(s)"]
    if successes(task) > 1:
        parts.append(f"ran to completion {times_text(successes(task)).lower()}")
    if attempts and attempts[-1].get("exit_reason"):
        parts.append(f"last died: {attempts[-1]['exit_reason']}")
    if task.get("failures"):
        parts.append("failures: " + ", ".join(task["failures"]))
    if task.get("in_broker"):
        parts.append("in broker: " + ", ".join(task["in_broker"]))
    return "; ".join(parts)


def anomalies(result: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for verdict, count, is_anomaly in verdict_counts(result):
        if is_anomaly and count:
            found.append(
                {"verdict": verdict, "count": count, "items": _anomaly_items(result, verdict)}
            )
    return found


def _task_rows(result: dict[str, Any], events: list[h.Event]) -> list[dict[str, Any]]:
    """The judged tasks of result.json, plus executions of tasks never dispatched, each with
    the arguments it was dispatched with."""
    dispatches = {e["task_id"]: e for e in events if e["type"] == h.DISPATCH}
    rows = [dict(t) for t in result.get("tasks") or []]
    known = {t["task_id"] for t in rows}
    for task_id in result.get("unexpected") or []:
        if task_id not in known:
            rows.append({"task_id": task_id, "task": "?", "index": None, "verdicts": ["unexpected"],
                         "attempts": [], "redelivery_latencies": []})  # fmt: skip
    for row in rows:
        dispatch = dispatches.get(row["task_id"], {})
        row["call"] = {k: dispatch.get(k) for k in ("args", "kwargs", "options") if dispatch.get(k)}
    return rows


def _prune(value: Any) -> Any:
    """The scenario as run without unset (null) fields: what a user would have written."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def replay_command(result: dict[str, Any]) -> str:
    if result.get("replay"):
        return str(result["replay"])
    source = result.get("source") or f"{result.get('scenario', 'scenario')}.yaml"
    command = f"celery-chaos run {source}"
    if result.get("seed") is not None:
        command += f" --seed {result['seed']}"
    return command + f" --backend {result.get('backend') or 'local'}"


def times_text(times: int) -> str:
    """``TWICE``, ``9 TIMES``: how often a duplicated task ran to completion."""
    return {1: "ONCE", 2: "TWICE"}.get(times, f"{times} TIMES")


def tag_word(verdict: str, task: dict[str, Any]) -> str:
    """The timeline's word for a verdict; a duplicated task says how many times it ran."""
    if verdict == "duplicate_executions":
        return f"RAN {times_text(successes(task))}"
    return TAG_WORDS.get(verdict, verdict.upper())


def successes(task: dict[str, Any]) -> int:
    return sum(1 for a in task.get("attempts") or [] if a.get("state") == "SUCCESS")


def timeline_tags(result: dict[str, Any]) -> dict[str, list[str]]:
    """What to write next to each anomalous task on the timeline."""
    tags: dict[str, list[str]] = {}
    for task in result.get("tasks") or []:
        verdicts = [v for v in task.get("verdicts") or [] if v not in GOOD_VERDICTS]
        words = [tag_word(v, task) for v in verdicts]
        if words:
            tags[task["task_id"]] = words
    for lock in result.get("locks") or []:
        if lock.get("stuck") and lock.get("owner"):
            tags.setdefault(lock["owner"], []).append(f"STUCK LOCK {lock['name']}")
    for effect in result.get("effects") or []:
        for task_id in effect.get("tasks") or [] if effect.get("duplicated") else []:
            tags.setdefault(task_id, []).append(f"EFFECT {effect['key']} x{effect['applied']}")
    for task_id in result.get("unexpected") or []:
        tags.setdefault(task_id, []).append(TAG_WORDS["unexpected"])
    return tags


def _lane_height(timeline: tl.Timeline, kind: str) -> int:
    if kind == "nemesis":
        return 24 + 16 * (min(FAULT_LABEL_ROWS, max(1, len(timeline.faults))) - 1)
    return LANE_HEIGHT[kind]


def _lane_geometry(timeline: tl.Timeline) -> tuple[list[dict[str, Any]], int]:
    lanes, y = [], AXIS_HEIGHT
    for lane in timeline.lanes:
        height = _lane_height(timeline, lane.kind)
        lanes.append({"lane": lane, "y": y, "height": height, "mid": y + height / 2})
        y += height
    return lanes, y + 8


def _timeline_context(timeline: tl.Timeline) -> dict[str, Any]:
    lanes, height = _lane_geometry(timeline)
    return {
        "timeline": timeline,
        "lanes": lanes,
        "height": height,
        "data": {
            "start": timeline.start,
            "end": timeline.end,
            "first": timeline.first,
            "rows": FAULT_LABEL_ROWS,
            "bars": [bar.info for bar in timeline.bars],
            "faults": [marker.info for marker in timeline.faults],
            "marks": [marker.info for marker in timeline.marks],
            "dispatches": [marker.info for marker in timeline.dispatches],
            "tags": [marker.info for marker in timeline.tags],
        },
    }


def scenario_context(result: dict[str, Any], events: list[h.Event]) -> dict[str, Any]:
    config = result.get("config") or {}
    timeline = tl.build(events, config, timeline_tags(result))
    return {
        "r": result,
        "status": result.get("status") or "unknown",
        "counts": verdict_counts(result),
        "found": [c for c in verdict_counts(result) if c[1]],
        "zeros": [c for c in verdict_counts(result) if not c[1]],
        "anomalies": anomalies(result),
        "tasks": _task_rows(result, events),
        "scenario_yaml": yaml.safe_dump(_prune(config), sort_keys=False) if config else "",
        "replay": replay_command(result),
        "history_lines": [json.dumps(e, default=str) for e in events],
        "started": events[0]["ts"] if events else None,
        **_timeline_context(timeline),
    }


def render_scenario(scenario_dir: Path) -> str:
    result, events = load_scenario_dir(scenario_dir)
    template = _environment().get_template("scenario.html.j2")
    return template.render(**scenario_context(result, events))


def write_scenario_html(scenario_dir: Path) -> Path:
    """Write ``report.html`` into a scenario's report folder; returns its path."""
    path = scenario_dir / REPORT_NAME
    path.write_text(render_scenario(scenario_dir), encoding="utf-8")
    return path


def _index_row(run_dir: Path, scenario_dir: Path) -> dict[str, Any]:
    result, events = load_scenario_dir(scenario_dir)
    tasks = result.get("tasks") or []
    return {
        "r": result,
        "status": result.get("status") or "unknown",
        "counts": [c for c in verdict_counts(result) if c[1]],
        "tasks": len(tasks),
        "attempts": sum(1 for e in events if e["type"] == h.ATTEMPT_START),
        "faults": sum(1 for e in events if e["type"] == h.FAULT),
        "duration": (result.get("timings") or {}).get("total"),
        "href": Path(os.path.relpath(scenario_dir / REPORT_NAME, run_dir)).as_posix(),
        "has_page": (scenario_dir / REPORT_NAME).exists(),
    }


def write_index_html(run_dir: Path, scenario_dirs: list[Path]) -> Path:
    """Write the suite's ``index.html`` (one row per scenario, in the given order)."""
    rows = [_index_row(run_dir, d) for d in scenario_dirs]
    statuses = [row["status"] for row in rows]
    template = _environment().get_template("index.html.j2")
    page = template.render(
        run_dir=run_dir.name,
        rows=rows,
        passed=statuses.count("passed"),
        extras=[n for n in ("summary.md", "junit.xml") if (run_dir / n).exists()],
    )
    path = run_dir / INDEX_NAME
    path.write_text(page, encoding="utf-8")
    return path


def write_matrix_index(
    directory: Path, columns: list[str], baseline: str, rows: list[tuple[str, list[dict]]]
) -> Path:
    """A matrix folder's ``index.html``: scenarios down, version sets across; a cell that differs
    from the ``baseline`` column is marked, each cell links to that run's report."""
    rows = [
        (
            name,
            [
                e | {"counts": [(k, v, k not in GOOD_VERDICTS) for k, v in e["counts"]]}
                for e in line
            ],
        )
        for name, line in rows
    ]
    cells = [entry for _, line in rows for entry in line if entry["status"] != "-"]
    page = (
        _environment()
        .get_template("matrix.html.j2")
        .render(
            title=directory.name,
            columns=columns,
            baseline=baseline,
            rows=rows,
            passed=sum(1 for entry in cells if entry["status"] == "passed"),
            total=len(cells),
            extras=[n for n in ("matrix.md", "matrix.json") if (directory / n).exists()],
        )
    )
    path = directory / INDEX_NAME
    path.write_text(page, encoding="utf-8")
    return path
