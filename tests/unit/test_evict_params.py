"""The pure parts of deploy-style faults: ``evict``/``scale_down`` options and
``workers.entrypoint`` as a scenario states them (bad input: one line, exit 2), the worker command
each entrypoint gives, which workers a scale-down picks, and the nemesis carrying an evict's
SIGKILL out later without blocking (or not at all, once the worker exited on its own)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core import history as h
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.scenario_parts import Fault
from celery_chaos.faults.base import Aim
from celery_chaos.faults.scale_down import chosen
from celery_chaos.placements.base import Worker
from celery_chaos.placements.worker_command import DEAF_SHELL, entrypoint_command
from celery_chaos.run.nemesis import Nemesis
from celery_chaos.run.watcher import LiveAttempt

from tests.unit.fakes import Recorder
from tests.unit.inline_scenario import scenario


def spec(fault: dict[str, Any] | None = None, **workers: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "deploy", "description": "unit test"}
    data |= {"workers": workers, "workload": [{"task": "sample_tasks.tasks.work"}]}
    return data | {"faults": [fault]} if fault else data


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data, "deploy.yaml")
    return str(caught.value)


def test_evict_and_scale_down_defaults_are_kubernetes_defaults() -> None:
    evict = parse_scenario(spec({"kind": "evict", "when": {"at": 1}}), "x.yaml").faults[0]
    down = parse_scenario(spec({"kind": "scale_down", "when": {"at": 1}}), "x.yaml").faults[0]
    assert (evict.grace, down.grace, down.count) == (30.0, 30.0, 1)
    assert parse_scenario(spec(), "x.yaml").workers.entrypoint is None  # direct exec


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (spec(entrypoint="bash"), "workers.entrypoint"),
        (spec({"kind": "evict", "grace": -1, "when": {"at": 1}}), "faults[0].grace"),
        (spec({"kind": "kill_worker", "grace": 5, "when": {"at": 1}}), "grace: not an option"),
        (spec({"kind": "evict", "count": 2, "when": {"at": 1}}), "count: not an option"),
        (spec({"kind": "scale_down", "count": 0, "when": {"at": 1}}), "faults[0].count"),
    ],
)
def test_bad_deploy_options_are_one_line_naming_file_and_field(
    data: dict[str, Any], names: str
) -> None:
    message = refusal(data)
    assert message.startswith("deploy.yaml") and names in message and "\n" not in message


def test_a_bad_entrypoint_exits_2_with_that_line(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        "name: deploy\ndescription: d\nworkers: {entrypoint: bash}\n"
        "workload: [{task: sample_tasks.tasks.work}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if line]
    assert str(path) in line and "workers.entrypoint" in line


def test_each_entrypoint_gives_its_command() -> None:
    command = ["python", "-m", "celery", "-A", "app", "worker", "-n", "w0@x y"]
    assert entrypoint_command(command, None) == command
    assert entrypoint_command(command, "exec") == [
        "/bin/sh",
        "-c",
        "exec python -m celery -A app worker -n 'w0@x y'",
    ]
    shell = entrypoint_command(command, "shell")
    assert shell[:2] == ["/bin/sh", "-c"] and shell[2].startswith(DEAF_SHELL)
    assert shell[2].endswith("worker -n 'w0@x y'") and "exec" not in shell[2]


@dataclass
class Fleet:
    """The placement as a deploy fault sees it: its workers, which exited, the signals sent."""

    workers: list[Worker]
    exited: set[str] = field(default_factory=set)
    sent: list[tuple[str, str]] = field(default_factory=list)
    scenario: Any = field(default_factory=scenario)

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        return "exit:0" if worker is not None and worker.name in self.exited else None

    def worker_named(self, name: str | None) -> Worker | None:
        return next((w for w in self.workers if w.name == name), None)

    def signal_worker(self, worker: Worker, signame: str) -> str:
        self.sent.append((worker.name, signame))
        return f"{signame} to {worker.name}"

    def kill_worker(self, worker: Worker) -> str:
        self.sent.append((worker.name, "SIGKILL"))
        return f"SIGKILL {worker.name}"


def fleet(count: int) -> Fleet:
    return Fleet([Worker(i, f"w{i}", None) for i in range(count)])


def running(*workers: str) -> list[LiveAttempt]:
    return [LiveAttempt(f"t{i}", 1, name, 100 + i) for i, name in enumerate(workers)]


def test_scale_down_picks_the_busiest_then_the_newest_live_worker() -> None:
    placement = fleet(4)
    placement.exited.add("w3")  # gone already: never chosen
    aim = Aim(placement.workers[0], None, running=running("w1", "w1", "w0"))
    assert [w.name for w in chosen(placement, aim, 3, named=False)] == ["w1", "w0", "w2"]
    assert [w.name for w in chosen(placement, aim, 2, named=True)] == ["w0", "w1"]  # target
    assert [w.name for w in chosen(placement, Aim(None, None), 9, named=False)] == [
        "w2",
        "w1",
        "w0",
    ]


def nemesis(placement: Fleet, *faults: dict[str, Any]) -> tuple[Nemesis, Recorder]:
    ledger = Recorder()
    planned = [Fault.model_validate(f) for f in faults]
    return Nemesis(planned, [], placement, ledger, seed=1, log=lambda _: None), ledger  # type: ignore[arg-type]


def test_the_sigkill_comes_at_grace_and_the_loop_goes_on_meanwhile() -> None:
    placement = fleet(2)
    chaos, ledger = nemesis(
        placement,
        {"kind": "evict", "grace": 5, "when": {"at": 0}, "target": {"worker": 0}},
        {"kind": "terminate", "when": {"at": 1}, "target": {"worker": 1}},
    )
    chaos.tick(0.0)
    chaos.tick(1.0)  # the next fault fires inside the grace period
    assert placement.sent == [("w0", "SIGTERM"), ("w1", "SIGTERM")] and not chaos.done
    chaos.tick(4.9)
    assert len(placement.sent) == 2
    chaos.tick(5.0)
    assert placement.sent[-1] == ("w0", "SIGKILL") and chaos.done
    kill = ledger.events[-1]
    assert (kill["fault"], kill["kind"], kill["stage"], kill["blame"]) == (
        0,
        "evict",
        "sigkill",
        "worker",
    )
    assert kill["cause"] == "SIGKILL by evict fault (still running 5s after SIGTERM)"


def test_a_worker_that_exits_within_grace_is_not_killed() -> None:
    placement = fleet(1)
    chaos, ledger = nemesis(placement, {"kind": "evict", "grace": 5, "when": {"at": 0}})
    chaos.tick(0.0)
    chaos.observe({"type": h.WORKER_EXIT, "worker": "w0"}, 2.0)  # its exit is in the history
    assert chaos.done
    chaos.tick(6.0)
    assert placement.sent == [("w0", "SIGTERM")] and len(ledger.events) == 1


def test_an_exit_not_yet_recorded_still_spares_it_at_grace() -> None:
    placement = fleet(1)
    chaos, ledger = nemesis(placement, {"kind": "evict", "grace": 5, "when": {"at": 0}})
    chaos.tick(0.0)
    placement.exited.add("w0")  # exited, not reaped yet
    chaos.tick(5.0)
    assert placement.sent == [("w0", "SIGTERM")] and len(ledger.events) == 1 and chaos.done


def test_scale_down_evicts_each_worker_as_its_own_event() -> None:
    placement = fleet(3)
    chaos, ledger = nemesis(
        placement, {"kind": "scale_down", "count": 2, "grace": 3, "when": {"at": 0}}
    )
    chaos.tick(0.0, {("t0", 1): running("w0")[0]})
    chaos.tick(0.01)  # the second eviction, at once
    assert placement.sent == [("w0", "SIGTERM"), ("w2", "SIGTERM")]
    assert [(e["worker"], e.get("stage"), e["blame"]) for e in ledger.events] == [
        ("w0", None, "worker"),
        ("w2", "sigterm", "worker"),
    ]
    chaos.tick(3.0)
    chaos.tick(3.01)
    assert placement.sent[2:] == [("w0", "SIGKILL"), ("w2", "SIGKILL")] and chaos.done


def test_repro_offers_evict_with_its_grace() -> None:
    from celery_chaos.tools import repro
    from celery_chaos.tools.repro.spec import ReproSpec

    given = {"app": "sample_tasks.app", "task": "sample_tasks.tasks.work", "at": "seconds:1"}
    assert "evict" in repro.FAULTS
    built = repro.build_scenario(repro.merge(ReproSpec(), fault="evict", grace=4, **given))
    evict, replacement = built.faults
    assert (evict.kind, evict.grace, replacement.kind) == ("evict", 4, "start_worker")
    assert not replacement.wait_ready  # awaited in the loop, it would hold up the SIGKILL
    default = repro.build_scenario(repro.merge(ReproSpec(), fault="evict", **given))
    assert default.faults[0].grace == 30
