"""The short quiet window (only when nothing can be in flight) and the parallel runner's order."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from celery_chaos.core import history as h
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.run.loop import PROVEN_SETTLE, DoneTasks, Interrupted, QuietWindow
from celery_chaos.run.parallel import run_parallel


def test_quiet_window_needs_settle_unless_proven() -> None:
    window = QuietWindow(settle=1.0)
    assert not window.held(True, 0.0)
    assert not window.held(True, 0.5)
    assert window.held(True, 1.0)
    window = QuietWindow(settle=1.0)
    assert not window.held(True, 0.0, proven=True)
    assert window.held(True, PROVEN_SETTLE, proven=True)


def test_proof_must_hold_for_the_whole_short_window() -> None:
    window = QuietWindow(settle=1.0)
    window.held(True, 0.0)
    window.held(True, 0.5)  # quiet for 0.5 s, not proven yet
    assert not window.held(True, 0.55, proven=True)  # proven only from now on
    assert not window.held(True, 0.6, proven=False)  # the proof broke: needs a fresh window
    assert not window.held(True, 0.65, proven=True)
    assert window.held(True, 0.65 + PROVEN_SETTLE, proven=True)
    assert not window.held(False, 2.0, proven=True)  # not quiet: everything restarts


def events(*items: tuple[str, str, int | None, str | None]) -> DoneTasks:
    done = DoneTasks()
    for kind, task_id, attempt, state in items:
        done.observe({"type": kind, "task_id": task_id, "attempt": attempt, "state": state})
    return done


def test_done_only_when_every_latest_attempt_ended_success_or_failure() -> None:
    assert not DoneTasks().all_done()  # nothing seen proves nothing
    ended = events((h.DISPATCH, "a", None, None), (h.ATTEMPT_START, "a", 1, None),
                   (h.ATTEMPT_END, "a", 1, "SUCCESS"))  # fmt: skip
    assert ended.all_done()
    ended.observe({"type": h.DISPATCH, "task_id": "b"})
    assert not ended.all_done()  # b has not run: its message may be on its way to a worker
    retrying = events((h.ATTEMPT_START, "a", 1, None), (h.ATTEMPT_END, "a", 1, "RETRY"))
    assert not retrying.all_done()
    killed = events((h.ATTEMPT_START, "a", 1, None), (h.PROCESS_EXIT, "a", 1, None))
    assert not killed.all_done()
    redelivered = events((h.ATTEMPT_START, "a", 1, None), (h.ATTEMPT_START, "a", 2, None),
                         (h.ATTEMPT_END, "a", 1, "SUCCESS"))  # fmt: skip
    assert not redelivered.all_done()  # attempt 2 is still running
    redelivered.observe({"type": h.ATTEMPT_END, "task_id": "a", "attempt": 2, "state": "FAILURE"})
    assert redelivered.all_done()


SCENARIO = """
name: {name}
description: d
workload: [{{task: sample_tasks.tasks.work}}]
{extra}
"""


def scenario(name: str, extra: str = "") -> Scenario:
    return parse_scenario(yaml.safe_load(SCENARIO.format(name=name, extra=extra)), f"{name}.yaml")


def test_exclusive_is_validated() -> None:
    assert scenario("a", "exclusive: true").exclusive
    assert not scenario("b").exclusive
    with pytest.raises(ScenarioError, match="exclusive"):
        scenario("c", "exclusive: maybe")


def test_results_in_suite_order_and_exclusive_alone() -> None:
    suite = [scenario("slow"), scenario("alone", "exclusive: true"), scenario("fast")]
    together = threading.Barrier(2, timeout=10)  # slow and fast must run at the same time
    running: set[str] = set()
    alone_saw: list[set[str]] = []
    lock = threading.Lock()

    def run_one(s, log):  # noqa: ANN001, ANN202
        with lock:
            running.add(s.name)
        log(f"line of {s.name}")
        if s.exclusive:
            time.sleep(0.05)
            alone_saw.append(set(running))
        else:
            together.wait()
            time.sleep(0.2 if s.name == "slow" else 0.0)  # fast finishes first
        with lock:
            running.discard(s.name)
        return ScenarioResult(s, PASSED, 1, "local", None)  # type: ignore[arg-type]

    out: list[str] = []
    progress: list[tuple[str, str | None]] = []
    results = run_parallel(
        suite, run_one, 2, threading.Event(), out.append,
        lambda r: out.append(f"result {r.scenario.name}"),
        lambda name, line: progress.append((name, line)),
    )  # fmt: skip
    assert [r.scenario.name for r in results] == ["slow", "alone", "fast"]
    assert out == ["line of slow", "result slow", "line of alone", "result alone",
                   "line of fast", "result fast"]  # fmt: skip
    assert alone_saw == [{"alone"}]
    assert ("fast", None) in progress and ("slow", "line of slow") in progress


def test_an_interrupted_scenario_interrupts_the_suite() -> None:
    def run_one(s, log):  # noqa: ANN001, ANN202
        raise Interrupted("stop")

    with pytest.raises(KeyboardInterrupt):
        run_parallel([scenario("a"), scenario("b")], run_one, 2, threading.Event(),
                     print, None, None)  # fmt: skip


def test_live_lines_one_per_running_scenario_never_wrapped() -> None:
    from io import StringIO

    from celery_chaos.report.progress import LiveLines, live_progress
    from rich.console import Console

    lines = LiveLines()
    lines.update("first", "== first (backend local, seed 1)")
    lines.update("second", "   schedule: fault 0: " + "kill_child " * 30)
    lines.update("first", "[t=  0.57s] fault 0 kill_child: injected")
    screen = Console(file=StringIO(), width=60, force_terminal=True, color_system=None)
    screen.print(lines.render())
    shown = screen.file.getvalue().splitlines()
    assert len(shown) == 2 and all(len(line) <= 60 for line in shown)
    assert "first" in shown[0] and "fault 0 kill_child" in shown[0]  # its latest line
    assert "second" in shown[1] and shown[1].endswith("…")  # cut, not wrapped
    lines.update("first", None)  # finished: its line goes
    assert "first" not in str(lines.running)
    with live_progress(screen, enabled=False) as progress:
        assert progress is None  # off a terminal: no live lines at all
