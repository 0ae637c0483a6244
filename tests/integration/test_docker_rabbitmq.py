"""The docker backend's RabbitMQ broker container, read back from the engine and the node itself:
published on 127.0.0.1 at a port a crash keeps, its own user and no guest, connections closed
through the image's ``erl_call``, durable queues and persistent messages surviving a SIGKILL, its
version in the run's versions, a clear error for a missing image, and nothing left after a killed
harness once ``celery-chaos cleanup`` ran."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import amqp
import docker.errors
import pytest
from celery_chaos.brokers import rabbitmq_erl, rabbitmq_inspection
from celery_chaos.core.scenario import load_file
from celery_chaos.placements.base import BackendError
from celery_chaos.placements.docker.images import DEFAULT_RABBITMQ_IMAGE
from celery_chaos.placements.docker.placement import RUN_LABEL, DockerPlacement, docker_client
from celery_chaos.run import versions

from tests.integration.docker_rabbitmq_support import SUITE, require_rabbitmq_image
from tests.integration.scenario_support import wait_for_line

ROOT = SUITE.parent
NO_WORKERS = SUITE / "rabbitmq" / "24-rabbitmq-restart-transient.yaml"
CLOSE_CONNECTION = SUITE / "rabbitmq" / "26-rabbitmq-close-connection.yaml"
pytestmark = [pytest.mark.docker, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _images() -> None:
    require_rabbitmq_image()


def run_containers(run_id: str) -> list:
    return docker_client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


def publish(connection: amqp.Connection, queue: str, body: str, mode: int) -> None:
    """Publish and wait for the confirm: the broker acks a persistent message once it is on
    disk (``basic_publish`` after ``confirm_select`` would not wait for it)."""
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    channel.basic_publish_confirm(amqp.Message(body, delivery_mode=mode), routing_key=queue)


def test_broker_container_keeps_its_port_and_durable_messages_across_a_crash(
    tmp_path: Path,
) -> None:
    backend = DockerPlacement(load_file(NO_WORKERS), tmp_path)
    backend.check_runnable()
    with backend:
        backend.start()
        broker = backend.broker.access
        (container,) = [c for c in run_containers(backend.run_id) if c.name.endswith("-broker")]
        assert DEFAULT_RABBITMQ_IMAGE in container.image.tags
        (binding,) = container.attrs["HostConfig"]["PortBindings"]["5672/tcp"]
        assert (binding["HostIp"], int(binding["HostPort"])) == ("127.0.0.1", broker.host_port)
        users = rabbitmq_inspection.ctl_rows(broker, "list_users")
        assert [u["user"] for u in users] == [broker.user]  # no guest, ever
        assert versions.broker_version(backend)["broker"].startswith("rabbitmq 3.")
        held = broker.connection()  # the final inspection closes it through the image's erl_call
        held.channel()
        assert rabbitmq_erl.close_all_connections(broker, "/", "chaos-test") is True
        with pytest.raises(amqp.exceptions.ConnectionForced, match="chaos-test"):
            held.drain_events(timeout=5)
        held.collect()
        with broker.connection() as connection:
            publish(connection, "kept", "durable and persistent", mode=2)
            publish(connection, "dropped", "transient", mode=1)
        url = backend.broker.url
        # as the backend does once its workers declared their queues: without it, RabbitMQ 3.10
        # can lose the queue declared last in a crash within 2 s (flush_metadata_log)
        assert rabbitmq_inspection.flush_metadata_log(broker) == ""
        assert "restarted" in backend.restart_broker()
        assert backend.broker.url == url  # same port, user and password
        with broker.connection() as connection:
            channel = connection.channel()
            kept = channel.basic_get("kept", no_ack=True)
            assert kept is not None and kept.body == "durable and persistent"
            assert channel.basic_get("dropped", no_ack=True) is None
        volumes = [m["Name"] for m in container.attrs["Mounts"] if m.get("Type") == "volume"]
    assert run_containers(backend.run_id) == []
    for volume in volumes:  # the image's VOLUME goes with the container
        with pytest.raises(docker.errors.NotFound):
            docker_client().volumes.get(volume)


def test_missing_rabbitmq_image_is_named(tmp_path: Path) -> None:
    scenario = load_file(NO_WORKERS)
    broker = scenario.broker.model_copy(update={"image": "celery-chaos-test/no-such-rabbitmq:0"})
    scenario = scenario.model_copy(update={"broker": broker})
    with pytest.raises(BackendError, match="rabbitmq broker image celery-chaos-test/no-such"):
        DockerPlacement(scenario, tmp_path).check_runnable()


def test_killed_harness_leaves_a_rabbitmq_container_that_cleanup_removes(tmp_path: Path) -> None:
    """The run's broker is a vhost of the suite's shared container (joined to the run's broker
    network): ``cleanup`` of the run detaches it and removes the run's containers and networks,
    ``cleanup`` of the suite's label removes the container with its volumes."""
    harness = subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(CLOSE_CONNECTION),
         "--backend", "docker", "--report-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ | {"TESTCONTAINERS_RYUK_DISABLED": "true"},  # Ryuk would reap them too
    )  # fmt: skip
    try:
        line = wait_for_line(harness, "close_connection: injected", deadline=180)
    finally:
        harness.send_signal(signal.SIGKILL)  # no chance to clean up
        harness.wait(timeout=10)
    run_id = re.search(r"chaos-([0-9a-f]+)-w\d", line).group(1)
    assert run_containers(run_id), "the run's containers should be left"
    network = docker_client().networks.get(f"chaos-{run_id}-broker")
    attached = [docker_client().containers.get(c) for c in network.attrs["Containers"]]
    (broker,) = [c for c in attached if c.labels[RUN_LABEL].startswith("shared-")]
    assert DEFAULT_RABBITMQ_IMAGE in broker.image.tags
    volumes = [m["Name"] for m in broker.attrs["Mounts"] if m.get("Type") == "volume"]
    for leftovers, name in ((run_id, f"network chaos-{run_id}-broker"),
                            (broker.labels[RUN_LABEL], f"container {broker.name}")):  # fmt: skip
        removed = subprocess.run(
            [sys.executable, "-m", "celery_chaos.cli", "cleanup", "--run-id", leftovers],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert removed.returncode == 0, removed.stderr
        assert name in removed.stdout
        assert run_containers(leftovers) == []
        assert docker_client().networks.list(filters={"label": f"{RUN_LABEL}={leftovers}"}) == []
    for volume in volumes:
        with pytest.raises(docker.errors.NotFound):
            docker_client().volumes.get(volume)


def test_runs_share_a_container_each_on_its_network_and_vhost(tmp_path: Path) -> None:
    """Two runs lease vhosts of one shared container: it joins each run's broker network under
    that run's broker name, each vhost sees only its own queue, and a run that ends leaves its
    network and deletes its vhost; closing the suite removes the container and its network."""
    from celery_chaos.placements.docker.containers import RunNetwork
    from celery_chaos.placements.docker.rabbitmq_shared import SharedRabbitMQContainers

    client = docker_client()
    with SharedRabbitMQContainers() as shared:
        networks = [RunNetwork(f"chaos-share-{n}-broker", {RUN_LABEL: shared.id}) for n in "ab"]
        for network in networks:
            network.create()
        one, two = (shared.lease(f"run-{n}", DEFAULT_RABBITMQ_IMAGE, net)
                    for n, net in zip("ab", networks, strict=True))  # fmt: skip
        one.start()
        two.start()
        assert one.container is two.container
        container = client.containers.get(one.container.get_wrapped_container().id)
        endpoints = container.attrs["NetworkSettings"]["Networks"]
        assert "chaos-run-a-broker" in endpoints["chaos-share-a-broker"]["Aliases"]
        assert "chaos-run-b-broker" in endpoints["chaos-share-b-broker"]["Aliases"]
        connection = one.connection()
        connection.channel().queue_declare("only-in-a", durable=True, auto_delete=False)
        connection.close()
        assert "only-in-a" in rabbitmq_inspection.queue_counts(one)
        assert rabbitmq_inspection.queue_counts(two) == {}
        one.stop()
        container.reload()
        assert "chaos-share-a-broker" not in container.attrs["NetworkSettings"]["Networks"]
        assert "chaos-run-a" not in one.ctl("list_vhosts").split()
        two.stop()
        label = {"label": f"{RUN_LABEL}={shared.id}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
