"""When ``celery-chaos run`` may end on a redelivery loop instead of its timeout: the loop is
proven by deaths after the last fault (:class:`ProvenLoops`), and nothing else may still change
a verdict (:meth:`Loop.only_loops_left`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery_chaos.brokers.rabbitmq_queues import QueueCount, may_end_loops
from celery_chaos.core import history as h
from celery_chaos.run.loop import DoneTasks, DueTimes, Loop, ProvenLoops


def starts(loops: ProvenLoops, task_id: str, count: int) -> None:
    for _ in range(count):
        loops.observe({"type": h.ATTEMPT_START, "task_id": task_id})


def test_a_loop_is_proven_by_more_deaths_than_the_threshold_after_the_faults() -> None:
    loops = ProvenLoops(threshold=5)
    starts(loops, "a", 10)  # before every fault fired: a fault may have caused these deaths
    assert loops.looping() == set()
    loops.counting = True
    starts(loops, "a", 6)  # 5 died (each followed by another delivery), the 6th runs
    assert loops.looping() == set()
    starts(loops, "a", 1)
    assert loops.looping() == {"a"}


def test_any_end_of_an_attempt_disproves_the_loop() -> None:
    """A retry, a rejection or a failure is the task's own answer, not a death: its next
    delivery may go another way, so the run waits on."""
    loops = ProvenLoops(threshold=2)
    loops.counting = True
    starts(loops, "a", 5)
    starts(loops, "b", 5)
    loops.observe({"type": h.ATTEMPT_END, "task_id": "b", "attempt": 2, "state": "RETRY"})
    assert loops.looping() == {"a"}


def loop_with(looping: bool = True, **changes: Any) -> Loop:
    """A :class:`Loop` over a stand-in placement: task ``a`` loops (unless ``looping`` is
    False), task ``b`` ended SUCCESS; ``changes`` override the broker's or placement's answers."""
    broker = SimpleNamespace(
        may_end_loops=lambda queues: False, may_hold_besides=lambda ids, others: False
    )
    backend = SimpleNamespace(broker=broker, network_holds_data=lambda: False, workers=[])
    for name, value in changes.items():
        setattr(broker if hasattr(broker, name) else backend, name, value)
    loop = Loop.__new__(Loop)
    loop.backend, loop.exited, loop.dues = backend, set(), DueTimes()
    loop.dispatches = [SimpleNamespace(task_id="a"), SimpleNamespace(task_id="b")]
    loop.loops, loop.done_tasks = ProvenLoops(threshold=1), DoneTasks()
    loop.loops.counting = True
    seen = [(h.DISPATCH, "a", None), (h.DISPATCH, "b", None), (h.ATTEMPT_START, "b", None)]
    for kind, task_id, state in [*seen, (h.ATTEMPT_END, "b", "SUCCESS")]:
        loop.done_tasks.observe({"type": kind, "task_id": task_id, "attempt": 1, "state": state})
    if looping:
        starts(loop.loops, "a", 3)
    return loop


def test_only_loops_left_ends_the_run_when_nothing_else_can_change() -> None:
    assert loop_with().only_loops_left()
    assert not loop_with(looping=False).only_loops_left()  # nothing loops: wait for quiescence


def test_a_broker_that_can_end_a_loop_or_another_unfinished_task_keeps_the_run_going() -> None:
    assert not loop_with(may_end_loops=lambda queues: True).only_loops_left()  # limits, TTLs
    assert not loop_with(may_hold_besides=lambda ids, n: bool(ids)).only_loops_left()  # b's message
    assert not loop_with(network_holds_data=lambda: True).only_loops_left()  # a message in transit
    unfinished = loop_with()
    unfinished.done_tasks.observe({"type": h.DISPATCH, "task_id": "c"})
    assert not unfinished.only_loops_left()  # c has not run: it may still end any way


def test_rabbitmq_may_end_a_loop_unless_every_queue_is_a_plain_classic_one() -> None:
    def counts(**queue: Any) -> dict[str, QueueCount]:
        return {"celery": QueueCount(ready=0, unacked=1, **queue)}

    plain = frozenset({"celery"})
    assert not may_end_loops(plain, counts(), {})
    assert may_end_loops(plain, counts(kind="quorum"), {})  # delivery limit (20 from 4.0)
    assert may_end_loops(plain, counts(arguments={"x-message-ttl": 5000}), {})
    assert may_end_loops(plain, counts(policy="p"), {"p": {"dead-letter-exchange": "dlx"}})
    assert not may_end_loops(plain, counts(policy="p"), {"p": {"ha-mode": "all"}})
    assert may_end_loops(frozenset({"other", "celery"}), counts(), {})  # not found: may
    assert may_end_loops(frozenset({None}), counts(), {})  # the delivery named no queue
