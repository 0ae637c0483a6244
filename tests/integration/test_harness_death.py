"""Nothing of a local-backend run outlives the harness, however the harness dies.

The harness is killed at moments drawn from a seeded RNG (during start-up, or while a task runs),
then everything it started (redis-servers, worker mains, pool children, cgroups, the watchdog)
must be gone within a short deadline, with no cleanup command. When the watchdog dies with the
harness, one ``celery-chaos cleanup`` removes the rest. Cleanup never kills a process whose start
time does not match the record, and never touches a run whose harness is alive.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from celery_chaos.placements.local import reaper
from celery_chaos.placements.local.cgroups import CgroupUnavailable, MemoryCgroup
from celery_chaos.placements.local.state import (
    REPORT_COPY,
    STATE_DIR_ENV,
    Group,
    Identity,
    RunState,
    state_dir,
)

from tests.integration.adhoc_support import run, work
from tests.integration.interrupts import as_from_a_terminal, signal_state
from tests.integration.scenario_support import wait_for_line

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED = 7_2026
GONE_DEADLINE = 20.0

SCENARIO = """
name: long-running
description: two workers, one busy with a long task, when the harness dies
celery: {{task_acks_late: true}}
workers: {{count: 2, concurrency: 2{limit}}}
workload:
  - {{task: sample_tasks.tasks.work, kwargs: {{seconds: 30, steps: 30}}}}
expect: {{ok: 1}}
timeout: 60
"""


def cgroups_usable() -> bool:
    try:
        MemoryCgroup.create("celery-chaos-test-probe").remove()
        return True
    except CgroupUnavailable:
        return False


def write_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "long.yaml"
    path.write_text(SCENARIO.format(limit=", memory_limit: 1G" if cgroups_usable() else ""))
    return path


def start_harness(tmp_path: Path, state_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(write_scenario(tmp_path)),
         "--report-dir", str(tmp_path / "reports"), "-v"],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)}, preexec_fn=as_from_a_terminal,
    )  # fmt: skip


def report_state(tmp_path: Path) -> RunState | None:
    """The run's record in its report folder (kept after the live state file is removed)."""
    copies = list((tmp_path / "reports").glob(f"*/*/{REPORT_COPY}"))
    return RunState.load(copies[0]) if copies else None


def assert_all_gone(tmp_path: Path, state_dir: Path, seen: list[psutil.Process]) -> None:
    """Within the deadline: every process seen alive before the kill and every process the
    run's record names is gone, its cgroups and folders are removed and no live state file is
    left."""
    _, alive = psutil.wait_procs(seen, timeout=GONE_DEADLINE)
    assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
    state = report_state(tmp_path)
    end = time.monotonic() + GONE_DEADLINE
    while time.monotonic() < end:
        left = reaper.leftovers(state) if state else {}
        made = (state.cgroups + state.folders) if state else []
        kept = [path for path in made if Path(path).exists()]
        if not left and not kept and not list(state_dir.glob("*.json")):
            return
        time.sleep(0.1)
    pytest.fail(f"left behind: {left}, {kept}, {list(state_dir.glob('*.json'))}")


@pytest.fixture(autouse=True)
def sweep_after_failure(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test left behind is removed (by the run's own record)."""
    yield
    for copy in (tmp_path / "reports").glob(f"**/{REPORT_COPY}"):
        reaper.remove(RunState.load(copy))


rng = random.Random(SEED)
# (signal, the output line after which it comes, extra delay): start-up and mid-task moments.
KILLS = [
    (signal.SIGKILL, "== long-running", round(rng.uniform(0.0, 1.5), 3)),
    (signal.SIGKILL, "attempt_start", round(rng.uniform(0.0, 1.0), 3)),
    (signal.SIGKILL, rng.choice(["== long-running", "attempt_start"]), round(rng.uniform(0, 1), 3)),
    (signal.SIGINT, "attempt_start", round(rng.uniform(0.0, 1.0), 3)),
    (signal.SIGTERM, "== long-running", round(rng.uniform(0.0, 1.5), 3)),
]


@pytest.mark.parametrize(
    ("sig", "after", "delay"),
    KILLS,
    ids=[f"{signal.Signals(s).name}-{a.strip('= ')}+{d}s" for s, a, d in KILLS],
)
def test_nothing_outlives_a_killed_harness(
    tmp_path: Path, sig: int, after: str, delay: float
) -> None:
    state_dir = tmp_path / "state"
    harness = start_harness(tmp_path, state_dir)
    try:
        wait_for_line(harness, after)
        time.sleep(delay)  # the kill moment drawn from the seeded RNG
        seen = psutil.Process(harness.pid).children(recursive=True)
        state = signal_state(harness.pid)
        harness.send_signal(sig)
        code = harness.wait(timeout=60)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130), state
    assert_all_gone(tmp_path, state_dir, seen)


def test_cleanup_removes_what_harness_and_watchdog_left(tmp_path: Path) -> None:
    """The harness and its watchdog both SIGKILLed (a whole job killed): the kernel takes the
    processes (PDEATHSIG; Celery's prefork children set their own), but the run's cgroups and
    state file stay until ``celery-chaos cleanup`` removes them, with any process still in
    them."""
    state_dir = tmp_path / "state"
    harness = start_harness(tmp_path, state_dir)
    wait_for_line(harness, "attempt_start")
    (live,) = state_dir.glob("*.json")
    state = RunState.load(live)
    assert state.watchdog is not None
    os.kill(state.watchdog.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(state.watchdog.pid)], timeout=10)
    seen = psutil.Process(harness.pid).children(recursive=True)
    harness.kill()
    harness.wait(timeout=10)
    assert live.exists()
    if cgroups_usable():
        assert [c for c in state.cgroups if Path(c).exists()], "no watchdog: cgroups stay"
    cleanup = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "cleanup", "--backend", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)},
    )  # fmt: skip
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"removed state file {live}" in cleanup.stdout
    assert_all_gone(tmp_path, state_dir, seen)


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_cleanup_spares_a_mismatched_start_time_and_a_live_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    stranger, ours, live_runs = sleeper(), sleeper(), sleeper()
    try:
        dead = Identity(pid=stranger.pid, started=0.0)  # a pid whose start time is not recorded
        stranger_id, ours_id = Identity.of(stranger.pid), Identity.of(ours.pid)
        assert stranger_id and ours_id
        RunState("dead1", dead, str(tmp_path), [Group("worker w0", Identity(stranger.pid, 1.0)),
                 Group("worker w1", ours_id)]).save()  # fmt: skip
        alive_harness = Identity.of(os.getpid())
        assert alive_harness
        running = Identity.of(live_runs.pid)
        RunState("live1", alive_harness, str(tmp_path), [Group("worker w0", running)]).save()
        removed, left_alone = reaper.cleanup_dead_runs()
        ours.wait(timeout=10)  # killed (psutil reaps our own child, so no return code)
        assert stranger.poll() is None and live_runs.poll() is None
        assert any("run live1 is still running" in line for line in left_alone)
        assert any(f"process {ours.pid}" in line for line in removed)
        assert [p.name for p in (tmp_path / "state").glob("*.json")] == ["live1.json"]
    finally:
        for process in (stranger, ours, live_runs):
            process.kill()
            process.wait()


EXITS_WITHOUT_CLOSING = """
import sys
from pathlib import Path
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.core.scenario import load_file

backend = LocalPlacement(load_file(Path(sys.argv[1])), Path(sys.argv[2]))
backend.start()
print("started", backend.state.path, flush=True)
sys.exit(0)  # a harness bug: it never closes the backend
"""


def test_a_harness_that_exits_without_closing_leaves_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    script = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_CLOSING, str(write_scenario(tmp_path)),
         str(tmp_path / "reports" / "run" / "adhoc")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)},
    )  # fmt: skip
    assert script.returncode == 0 and "started" in script.stdout, script.stderr
    assert_all_gone(tmp_path, state_dir, [])


def test_a_signal_between_a_workers_cgroup_and_its_record_leaves_no_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moment CI's SIGTERM once hit: worker w1's cgroup made and its process started, the
    signal arriving before the placement knows the worker. close() still empties and removes
    every cgroup the run recorded, and nothing of the half-started worker is left."""
    if not cgroups_usable():
        pytest.skip("no writable memory cgroup here")
    from celery_chaos.core.scenario import load_file
    from celery_chaos.placements.local import processes
    from celery_chaos.placements.local.placement import LocalPlacement

    real_spawn, started = processes.spawn, []

    def spawn_then_signal(cmd, log_path, *args, **kwargs):  # noqa: ANN001, ANN202
        process = real_spawn(cmd, log_path, *args, **kwargs)
        if log_path.name == "worker-w1.log":
            started.append(psutil.Process(process.pid))
            raise KeyboardInterrupt  # what the harness's SIGTERM handler raises
        return process

    monkeypatch.setattr(processes, "spawn", spawn_then_signal)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    placement = LocalPlacement(load_file(write_scenario(tmp_path)), tmp_path / "reports" / "r")
    with pytest.raises(KeyboardInterrupt):
        placement.start()
    placement.close()
    assert started, "the signal never came: the test proved nothing"
    _, alive = psutil.wait_procs(started, timeout=GONE_DEADLINE)
    assert alive == []
    assert placement.state.cgroups and not [c for c in placement.state.cgroups if Path(c).exists()]


def test_a_sigkilled_workers_temporary_folder_goes_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILLed ``celery worker`` leaves its multiprocessing folder (``pymp-*``, made when its
    prefork pool starts) in its temporary directory. The workers' ``TMPDIR`` is a folder of the
    run, so nothing is left in the user's once the run is over."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    result = run(
        tmp_path / "reports",
        workers={"count": 1},
        workload=[work(seconds=2, steps=4)],
        faults=[{"kind": "kill_worker", "when": {"task": 0, "checkpoint": "step-1"}}],
    )
    assert result.verdicts.counts["lost"] == 1  # killed mid-task (Celery's defaults: acked)
    state = RunState.load(result.report_dir / REPORT_COPY)
    assert state.folders != []
    assert all(Path(f).parent == private for f in state.folders), state.folders
    left = [p.name for p in private.iterdir() if p != state_dir()]  # the harness's own, kept
    assert left == [], "left in the user's temporary directory"


def test_a_cgroup_still_busy_at_close_is_left_to_the_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cgroup that cannot be removed when the run closes (here: a cgroup inside it, which
    makes rmdir fail as a process still being torn down does) keeps the run's state file and
    watchdog, so it is removed once the harness exits instead of being forgotten."""
    if not cgroups_usable():
        pytest.skip("no writable memory cgroup here")
    from celery_chaos.core.scenario import load_file
    from celery_chaos.placements.local.placement import LocalPlacement

    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    lines: list[str] = []
    placement = LocalPlacement(
        load_file(write_scenario(tmp_path)), tmp_path / "reports" / "r", log=lines.append
    )
    placement.start()
    busy = Path(placement.state.cgroups[0]) / "busy"
    busy.mkdir()
    placement.close()
    try:
        assert placement.state.path.exists(), "the state file went with a cgroup still there"
        assert placement.watchdog is not None and placement.watchdog.poll() is None
        assert any("left to the run's watchdog" in line for line in lines), lines
    finally:
        busy.rmdir()
        reaper.remove(placement.state)
        if placement.watchdog is not None:
            placement.watchdog.kill()
            placement.watchdog.wait(timeout=10)
    assert not [c for c in placement.state.cgroups if Path(c).exists()]
