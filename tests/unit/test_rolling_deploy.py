"""The pure parts of ``rolling_deploy``: its options (bad input: one line naming the field), and
the nemesis carrying a deploy out batch by batch without blocking: new workers first, old ones
evicted only once the new ones are ready, the new version handed to the placement, a rollout
halted by a new worker that never gets ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.scenario_parts import Fault
from celery_chaos.faults import rolling_deploy
from celery_chaos.placements.base import Worker
from celery_chaos.run.nemesis import Nemesis

from tests.unit.fakes import Recorder
from tests.unit.inline_scenario import scenario


@dataclass
class Deployment:
    """The placement as a rolling deploy sees it: its workers, which are ready or exited, the
    signals sent, and the version new workers get."""

    workers: list[Worker]
    ready: set[str] = field(default_factory=set)
    exited: set[str] = field(default_factory=set)
    sent: list[tuple[str, str]] = field(default_factory=list)
    version: tuple[str | None, dict[str, str] | None] = (None, None)
    scenario: Any = field(default_factory=scenario)

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        return "exit:0" if worker is not None and worker.name in self.exited else None

    def worker_named(self, name: str | None) -> Worker | None:
        return next((w for w in self.workers if w.name == name), None)

    def worker_ready(self, worker: Worker) -> bool:
        return worker.name in self.ready

    def deploy_version(self, app: str | None, env: dict[str, str] | None) -> None:
        self.version = (app, env)

    def launch_worker(self) -> Worker:
        worker = Worker(len(self.workers), f"w{len(self.workers)}", None)
        self.workers.append(worker)
        return worker

    def signal_worker(self, worker: Worker, signame: str) -> str:
        self.sent.append((worker.name, signame))
        return f"{signame} to {worker.name}"

    def kill_worker(self, worker: Worker) -> str:
        self.sent.append((worker.name, "SIGKILL"))
        return f"SIGKILL {worker.name}"


def deployment(count: int) -> Deployment:
    workers = [Worker(i, f"w{i}", None) for i in range(count)]
    return Deployment(workers, ready={w.name for w in workers})


def nemesis(placement: Deployment, **options: Any) -> tuple[Nemesis, Recorder]:
    ledger = Recorder()
    fault = Fault.model_validate({"kind": "rolling_deploy", "when": {"at": 0}, **options})
    return Nemesis([fault], [], placement, ledger, seed=1, log=lambda _: None), ledger  # type: ignore[arg-type]


def spec(fault: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "deploy", "description": "unit test"}
    return data | {"workload": [{"task": "sample_tasks.tasks.work"}], "faults": [fault]}


def test_defaults_are_one_surge_and_kubernetes_grace() -> None:
    fault = parse_scenario(spec({"kind": "rolling_deploy", "when": {"at": 1}}), "x.yaml").faults[0]
    assert (fault.surge, fault.grace, fault.app, fault.env) == (1, 30.0, None, None)


@pytest.mark.parametrize(
    ("fault", "names"),
    [
        ({"kind": "rolling_deploy", "surge": 0}, "faults[0].surge"),
        ({"kind": "rolling_deploy", "app": ""}, "faults[0].app"),
        ({"kind": "rolling_deploy", "env": {"A": 1}}, "faults[0].env"),
        ({"kind": "evict", "surge": 2}, "surge: not an option"),
        ({"kind": "scale_down", "app": "x:app"}, "app: not an option"),
    ],
)
def test_bad_rolling_deploy_options_are_one_line(fault: dict[str, Any], names: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(spec(fault | {"when": {"at": 1}}), "deploy.yaml")
    message = str(caught.value)
    assert message.startswith("deploy.yaml") and names in message and "\n" not in message


def test_old_workers_are_evicted_only_once_their_replacements_are_ready() -> None:
    placement = deployment(2)
    chaos, ledger = nemesis(placement, grace=5, app="v2:app", env={"V": "2"})
    chaos.tick(0.0)
    assert [w.name for w in placement.workers] == ["w0", "w1", "w2"]  # the surge first
    assert placement.version == ("v2:app", {"V": "2"}) and placement.sent == []
    chaos.tick(0.5)
    chaos.tick(1.0)
    assert placement.sent == [] and not chaos.done  # w2 not ready: nobody is evicted
    placement.ready.add("w2")
    chaos.tick(1.1)
    assert placement.sent == [("w0", "SIGTERM")]
    chaos.tick(1.2)  # the next batch at once; w3 not ready yet
    assert placement.workers[-1].name == "w3" and placement.sent == [("w0", "SIGTERM")]
    placement.ready.add("w3")
    chaos.tick(1.3)
    chaos.tick(1.4)
    assert placement.sent == [("w0", "SIGTERM"), ("w1", "SIGTERM")]
    placement.exited |= {"w0", "w1"}  # both exit within their grace
    chaos.tick(7.0)
    assert len(placement.sent) == 2 and chaos.done
    assert [(e["worker"], e.get("stage"), e["blame"]) for e in ledger.events] == [
        ("w2", None, None),
        ("w0", "sigterm", "worker"),
        ("w3", "surge", None),
        ("w1", "sigterm", "worker"),
    ]


def test_surge_two_replaces_two_at_a_time_and_kills_past_grace() -> None:
    placement = deployment(2)
    chaos, _ = nemesis(placement, surge=2, grace=3)
    chaos.tick(0.0)
    placement.ready |= {"w2", "w3"}
    for now in (0.1, 0.2, 0.3):
        chaos.tick(now)
    assert placement.sent == [("w0", "SIGTERM"), ("w1", "SIGTERM")]
    assert len(placement.workers) == 4  # nothing left to replace: no third batch
    chaos.tick(3.1)
    chaos.tick(3.3)
    assert placement.sent[2:] == [("w0", "SIGKILL"), ("w1", "SIGKILL")] and chaos.done


def test_a_new_worker_never_ready_halts_the_rollout_with_a_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(rolling_deploy.time, "monotonic", lambda: clock[0])
    placement = deployment(1)
    chaos, ledger = nemesis(placement, grace=5)
    chaos.tick(0.0)
    chaos.tick(0.1)
    clock[0] += rolling_deploy.READY_DEADLINE + 1
    chaos.tick(0.2)
    assert placement.sent == [] and chaos.done  # the old worker keeps serving
    halted = ledger.events[-1]
    assert (halted["status"], halted["stage"]) == ("missed", "sigterm")
    assert "w1 not ready" in halted["detail"] and "rollout halted" in halted["detail"]


def test_with_no_live_worker_it_is_missed() -> None:
    placement = deployment(1)
    placement.exited.add("w0")
    chaos, ledger = nemesis(placement)
    chaos.tick(0.0)
    assert ledger.events[-1]["status"] == "missed" and len(placement.workers) == 1
