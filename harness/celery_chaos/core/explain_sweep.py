"""Whether Kombu's restore sweep was due before a run ended, for a message left in Redis's
unacked set: the sweep runs once when a worker's consumer starts polling (before Celery's
``worker_ready``) and every ``unacked_restore_interval x unacked_restore_throttle`` after, and
restores only what was delivered more than ``visibility_timeout`` ago."""

from __future__ import annotations

from celery_chaos.core.explain_facts import GREEN_POOLS, Facts


def sweep_timing(restorable: float, facts: Facts) -> str:
    """The visibility timeout had passed before the end: was a sweep due before the end?"""
    sweep, clock = facts.sweep, facts.clock
    live = clock.live_workers()
    if not live:
        return f"it was restorable from {facts.at(restorable)}, but no worker was alive to sweep"
    if facts.settings.pool in GREEN_POOLS:
        return (
            f"a {facts.settings.pool} worker consumes with Celery's synchronous loop, where Kombu"
            " restores only when a poll comes back empty (broker_transport_options.polling_interval"
            " above Celery's 2 s drain timeout), not on the sweep timer"
        )
    windows = {
        worker: sweep.due_window(clock.launched_before(worker, ready), ready, restorable)
        for worker, ready in live.items()
    }
    assert clock.end is not None
    worker = min(windows, key=lambda w: windows[w][1])
    due = windows[worker][1]  # the latest the first sweep after it can have come
    if due > clock.end:
        return _outlasted(restorable, windows, live, facts)
    return (
        f"a sweep of {worker} was due at {facts.at(due)}, before {facts.run_end()}, yet the"
        f" message stayed{_blocked(facts)}"
    )


def _blocked(facts: Facts) -> str:
    """What the broker said about Kombu's restore mutex, if it was held at the end."""
    mutex = [note for note in facts.broker_notes if "mutex" in note]
    return f" ({mutex[0]})" if mutex else ""


def _outlasted(
    restorable: float,
    windows: dict[str, tuple[float, float]],
    live: dict[str, float],
    facts: Facts,
) -> str:
    """No live worker's sweep was surely due before the end: the run was too short. A worker's
    first sweep runs between its launch and ``worker_ready``; when the end fell inside that
    uncertainty, the message still being there says the sweep came too early."""
    clock = facts.clock
    worker = min(windows, key=lambda w: windows[w][0])
    earliest, latest = windows[worker]
    ready = live[worker]
    launched = clock.launched_before(worker, ready)
    if earliest > (clock.end or 0.0):
        due = f"was due at {facts.at(earliest)}, after {facts.run_end()}"
    else:
        due = (
            f"(its first sweep ran between its launch at {facts.at(launched)} and its"
            f" worker_ready at {facts.at(ready)}) was due between {facts.at(earliest)} and"
            f" {facts.at(latest)}; {facts.run_end()} and the message stayed, so that first sweep"
            f" came before it was restorable{_blocked(facts)}"
        )
    return (
        f"it was restorable from {facts.at(restorable)}, but the next sweep of a live worker"
        f" ({worker}, consuming since {facts.at(ready)}) {due}: the restore sweep outlasted the"
        f" run (a run longer than {facts.at(latest)} would have seen it restored)"
    )
