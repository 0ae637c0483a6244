"""Network faults and green pools on the docker backend (issue 12), in real containers.

drop_connections and latency go through the harness's own proxy (the local backend's), listening
on the run's broker network's gateway only; partition is the engine's network disconnect. The
scenarios are the default suite's, with their written expectations.

``CHAOS_TEST_WORKER_IMAGE`` runs these tests on another worker image than the default (with the
project installed in it: the host's agent is not mounted), e.g. one built while iterating.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import load_file, parse_scenario
from celery_chaos.core.yaml_input import read_yaml
from celery_chaos.placements.base import Placement, Unsupported
from celery_chaos.placements.docker.images import DEFAULT_WORKER_IMAGE
from celery_chaos.placements.docker.network import BrokerProxies, gateway_address
from celery_chaos.placements.docker.placement import RUN_LABEL, docker_client
from celery_chaos.run.runner import RunOptions, run_scenario, run_suite

from tests.integration.docker_support import require_images, unavailable
from tests.integration.test_network_faults import CHAOS_ENV_RESET

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
WORKER_IMAGE = os.environ.get("CHAOS_TEST_WORKER_IMAGE", DEFAULT_WORKER_IMAGE)
pytestmark = [pytest.mark.docker, pytest.mark.integration]
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _images() -> None:
    require_images()


def options(tmp_path: Path, **more: object) -> RunOptions:
    image = {"worker_image": WORKER_IMAGE, "mount_agent": WORKER_IMAGE == DEFAULT_WORKER_IMAGE}
    return RunOptions(backend="docker", report_dir=tmp_path, backend_options=image, **more)


def listening() -> set[tuple[str, int]]:
    """The TCP addresses this (harness) process listens on."""
    sockets = psutil.Process().net_connections(kind="tcp")
    return {(c.laddr.ip, c.laddr.port) for c in sockets if c.status == psutil.CONN_LISTEN}


def run_checked(path: Path, tmp_path: Path) -> tuple[ScenarioResult, set[str]]:
    """Run a scenario; returns its result and the addresses of the listeners the run added
    (seen before teardown), asserting they were all on the run's broker network's gateway.
    Asserts too that nothing of the run is left: no container, network or listener."""
    before, during, gateway, run_id = listening(), set(), [], []

    def sample(backend: Placement) -> None:
        during.update(listening() - before)
        gateway.append(backend.proxies.gateway)  # type: ignore[attr-defined]
        run_id.append(backend.run_id)

    scenario = load_file(path)
    result = run_scenario(scenario, options(tmp_path, on_finish=sample), tmp_path, lambda _: None)
    assert result.verdicts is not None, result.reason
    assert listening() - before == set()
    client, label = docker_client(), {"label": f"{RUN_LABEL}={run_id[0]}"}  # this run's only
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
    assert {address for address, _ in during} == set(gateway)  # never 0.0.0.0 nor loopback
    return result, {f"{address}:{port}" for address, port in during}


def fault_details(result: ScenarioResult) -> list[str]:
    assert result.verdicts is not None
    return [fault["detail"] for fault in result.verdicts.faults if fault["status"] == "injected"]


@pytest.mark.parametrize(
    "name",
    [
        "22a-ack-late-drop-connections-mid-task.yaml",
        "22b-ack-late-drop-connections-cancel-on-loss.yaml",
        "23-broker-latency.yaml",
        "27-broker-bandwidth-starved.yaml",
    ],
)
def test_proxy_faults_meet_the_written_expectations(tmp_path: Path, name: str) -> None:
    result, added = run_checked(SCENARIOS / name, tmp_path)
    assert result.status == PASSED, (result.reason, result.expectations)
    assert len(fault_details(result)) == len(result.scenario.faults)  # every fault landed
    assert len(added) == 1  # one worker, one proxy, on the gateway (run_checked)


def test_partition_cuts_a_worker_behind_the_proxy(tmp_path: Path) -> None:
    """The docker-only partition scenario with its workers behind the proxy (a short latency
    fault after the heal declares it): a disconnected container still reaches the host's
    gateway through its ledger network, so the proxy is cut too, and the expectations hold."""
    data = read_yaml(SCENARIOS / "docker-only" / "10-partition-ack-late.yaml")
    data["faults"].append(
        {"kind": "latency", "when": {"after_fault": 1, "delay": 0}, "target": {"worker": 0},
         "latency": 0.001, "duration": 0.1}
    )  # fmt: skip
    path = tmp_path / "partition-behind-proxy.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    parse_scenario(data, str(path))  # the variant is a valid scenario
    result, added = run_checked(path, tmp_path)
    assert result.status == PASSED, (result.reason, result.expectations)
    assert len(fault_details(result)) == 3 and len(added) == 2  # two workers, two proxies


def test_a_gateway_the_harness_cannot_listen_on_is_not_runnable() -> None:
    """A rootless engine's gateway is not an address of this host: one-line reason."""
    proxies = BrokerProxies()
    proxies.listen_on("192.0.2.1", upstream_port=1)  # TEST-NET-1, never local
    try:
        with pytest.raises(Unsupported, match="cannot listen on the broker network's gateway"):
            proxies.open(0, "redis://:secret@broker:6379/0")
    finally:
        proxies.close()


def test_a_gateway_a_worker_cannot_reach_is_not_runnable() -> None:
    """The probe, against a real container that has no route to the gateway (as behind a host
    firewall): a one-line reason, never a run that passes without its fault."""
    client = docker_client()
    proxies = BrokerProxies()
    proxies.listen_on(gateway_address(client, "bridge"), upstream_port=1)
    container = client.containers.run(
        WORKER_IMAGE, ["sleep", "30"], network_mode="none", detach=True,
        labels={RUN_LABEL: "probe-test"},
    )  # fmt: skip
    try:
        proxies.open(0, "redis://:secret@broker:6379/0")
        with pytest.raises(Unsupported, match="worker containers cannot reach"):
            proxies.probe(container, 0)
    finally:
        container.remove(force=True)
        proxies.close()


def test_green_pools_meet_the_written_expectations(tmp_path: Path) -> None:
    """24a (gevent) and 24b (eventlet) side by side: both wait out their timeout."""
    client = docker_client()
    probe = "import gevent, eventlet"
    try:
        client.containers.run(WORKER_IMAGE, ["python", "-c", probe], remove=True)
    except Exception:
        unavailable(f"{WORKER_IMAGE} has no gevent/eventlet (rebuild: celery-chaos images build)")
    names = ["24a-gevent-kill-is-whole-worker.yaml", "24b-eventlet-kill-is-whole-worker.yaml"]
    scenarios = [load_file(SCENARIOS / name) for name in names]
    suite = run_suite(scenarios, options(tmp_path, jobs=2), log=lambda _: None)
    for result in suite.results:
        assert result.status == PASSED, (result.scenario.name, result.reason)
        assert result.verdicts is not None and result.verdicts.counts["pending"] == 4
        # the kill_child fault took the whole green worker down: the harness's doing, no crash
        assert result.verdicts.counts["worker_crashes"] == 0


def test_chaos_env_drops_connections_on_docker(pytester: pytest.Pytester) -> None:
    """The pytest plugin's declared drop_connections puts the worker container behind its proxy."""
    pytester.makepyfile(test_net=CHAOS_ENV_RESET)
    options = ("--chaos-backend", "docker", "--chaos-report-dir", "out")
    result = pytester.runpytest_subprocess(*options, timeout=240)
    result.assert_outcomes(passed=1)
