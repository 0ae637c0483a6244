"""A private RabbitMQ node and real ``celery worker`` processes on it: isolation (loopback only,
random ports, no guest), a consumed task, the requeue of a killed worker's unacked message,
final inspection (ready vs unacked by task id), restart on the same ports and data, and a stop
that leaves no process behind. One node for the whole module: Erlang start-up is heavy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
import psutil
import pytest
from celery import Celery
from celery_chaos.agent import instrument as agent
from celery_chaos.brokers import rabbitmq_erl, rabbitmq_inspection
from celery_chaos.core import history as h
from celery_chaos.ledger import Ledger
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.rabbitmq_plugins import plugins_dir
from celery_chaos.placements.local.rabbitmq_server import (
    RabbitMQServer,
    RabbitMQUnavailable,
    find_rabbitmq,
)
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.worker_command import worker_arguments
from celery_chaos.run.workload import make_client

try:
    find_rabbitmq()
except RabbitMQUnavailable as missing:
    pytest.skip(str(missing), allow_module_level=True)

pytestmark = pytest.mark.integration
APP = "celery_chaos.sample_tasks.app"
INGEST = "sample_tasks.tasks.ingest_document"
ACK_LATE = {"task_acks_late": True, "task_reject_on_worker_lost": True}
ONE_AT_A_TIME = {"worker_prefetch_multiplier": 1}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rabbitmq")


@pytest.fixture(scope="module")
def rabbit(workdir: Path) -> Iterator[RabbitMQServer]:
    server = RabbitMQServer("broker", workdir)
    server.start()
    print(f"rabbitmq start-up: {server.startup_seconds:.2f}s")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ledger_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer("ledger", workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ledger(ledger_server: RedisServer) -> Ledger:
    return Ledger(ledger_server.client())


@pytest.fixture(scope="module")
def client(rabbit: RabbitMQServer) -> Iterator[Celery]:
    app = make_client(rabbit.url, {})
    yield app
    app.close()


@pytest.fixture
def empty_queue(rabbit: RabbitMQServer) -> Iterator[None]:
    yield
    with rabbit.connection() as connection:
        connection.channel().queue_purge("celery")


def start_worker(
    rabbit: RabbitMQServer,
    ledger_server: RedisServer,
    ledger: Ledger,
    workdir: Path,
    extra: tuple[str, ...] = (),
    **conf,
):
    """A real ``celery worker`` of the sample app on the node (Celery's defaults, then
    ``extra`` options); returns once it is consuming."""
    name = f"w{uuid.uuid4().hex[:6]}@chaos-test"
    env = dict(os.environ)
    env[agent.BROKER_URL_ENV] = rabbit.url
    env[agent.LEDGER_URL_ENV] = ledger_server.url
    env[agent.CELERY_CONFIG_ENV] = json.dumps(conf)
    env["TMPDIR"] = str(workdir)  # a killed worker's multiprocessing folder goes with the test
    cmd = [sys.executable, "-m", "celery", *worker_arguments(APP, name, "prefork", 1, extra)]
    since = ledger.length()
    worker = processes.spawn(cmd, workdir / f"{name}.log", env=env)
    wait_event(ledger, since, lambda e: e["type"] == h.WORKER_READY and e["worker"] == name)
    return worker


def wait_event(ledger: Ledger, since: int, matches, deadline: float = 60.0) -> dict:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for event in ledger.read_from(since):
            if matches(event):
                return event
        time.sleep(0.02)
    raise AssertionError(f"no matching ledger event within {deadline:.0f}s")


def send_ingest(client: Celery, steps: int, step_seconds: float) -> str:
    task_id = str(uuid.uuid4())
    client.send_task(
        INGEST, args=[task_id[:8]], kwargs={"steps": steps, "step_seconds": step_seconds},
        task_id=task_id,
    )  # fmt: skip
    return task_id


def ready_count(rabbit: RabbitMQServer, queue: str = "celery") -> int:
    """Ready messages of ``queue`` by a passive declare: cheap, no CLI VM, no side effect."""
    with rabbit.connection() as connection:
        return connection.channel().queue_declare(queue, passive=True).message_count


def wait_ready_count(rabbit: RabbitMQServer, expected: int, deadline: float = 10.0) -> None:
    """A publish without confirms reaches the queue shortly after send_task returns."""
    end = time.monotonic() + deadline
    while ready_count(rabbit) != expected:
        assert time.monotonic() < end, f"the queue never held {expected} ready messages"
        time.sleep(0.01)


def epmd_environ(process: psutil.Process) -> str:
    try:
        return " ".join(f"{k}={v}" for k, v in process.environ().items())
    except psutil.Error:
        return ""


def test_node_listens_on_loopback_only_on_its_own_ports(rabbit: RabbitMQServer) -> None:
    listening = set()
    for pid in rabbit.pids():
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                listening.add((conn.laddr.ip, conn.laddr.port))
    assert listening, "the node and its epmd listen on nothing?"
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}
    ports = {port for _, port in listening}
    assert {rabbit.port, rabbit.dist_port, rabbit.epmd_port} <= ports
    assert not ports & {5672, 25672, 4369}, "a default port: the node is not private"


def test_the_cli_listens_on_loopback_only_too(rabbit: RabbitMQServer) -> None:
    """rabbitmqctl is a short-lived distributed Erlang node: its listener is private as well."""
    sbin = find_rabbitmq()[0]
    cli = subprocess.Popen(
        [str(sbin / "rabbitmqctl"), "-n", rabbit.nodename, "eval", "timer:sleep(10000)."],
        env=rabbit.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        listening: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 30
        while not listening:
            assert time.monotonic() < deadline, "the CLI never listened"
            assert cli.poll() is None, "the CLI exited early"
            for conn in psutil.Process(cli.pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.add((conn.laddr.ip, conn.laddr.port))
            time.sleep(0.05)
        assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}
        assert {port for _, port in listening} <= set(range(rabbit.ctl_port, rabbit.ctl_port + 11))
    finally:
        cli.kill()
        cli.wait()


def test_guest_cannot_log_in_and_the_random_user_can(rabbit: RabbitMQServer) -> None:
    guest = amqp.Connection(f"127.0.0.1:{rabbit.port}", userid="guest", password="guest")
    with pytest.raises(amqp.exceptions.AccessRefused):
        guest.connect()
    with rabbit.connection() as connection:
        assert connection.connected
    assert rabbit.ctl("list_users").split()[2:] == [rabbit.user, "[administrator]"]


def test_a_real_worker_consumes_a_task(
    rabbit, ledger_server, ledger, client, workdir, empty_queue
) -> None:
    worker = start_worker(rabbit, ledger_server, ledger, workdir)
    try:
        since = ledger.length()
        task_id = send_ingest(client, steps=2, step_seconds=0.01)
        end = wait_event(
            ledger, since, lambda e: e["type"] == h.ATTEMPT_END and e["task_id"] == task_id
        )
        assert end["state"] == "SUCCESS"
        assert ready_count(rabbit) == 0
    finally:
        processes.stop(worker, sig=signal.SIGKILL)


def test_killed_worker_unacked_message_is_ready_again_at_once(
    rabbit, ledger_server, ledger, client, workdir, empty_queue
) -> None:
    """acks_late + SIGKILL of the whole worker: the kernel closes its socket and the broker
    requeues the message at once (on Redis it waits for the visibility timeout)."""
    worker = start_worker(rabbit, ledger_server, ledger, workdir, **ACK_LATE, **ONE_AT_A_TIME)
    since = ledger.length()
    task_id = send_ingest(client, steps=300, step_seconds=0.1)
    wait_event(ledger, since, lambda e: e["type"] == h.ATTEMPT_START and e["task_id"] == task_id)
    assert ready_count(rabbit) == 0
    killed = time.monotonic()
    processes.signal_group(worker, signal.SIGKILL)
    while ready_count(rabbit) == 0:
        assert time.monotonic() - killed < 5, "message not requeued 5s after the kill"
        time.sleep(0.005)
    delay = time.monotonic() - killed
    print(f"kill -> ready again: {delay * 1000:.0f} ms")
    processes.stop(worker, sig=signal.SIGKILL)
    found = rabbitmq_inspection.inspect(rabbit)
    assert found.problems == []
    assert found.state.locations == {task_id: ["queue:celery"]}


def test_a_frozen_worker_loses_its_unacked_message_after_missed_heartbeats(
    rabbit, ledger_server, ledger, client, workdir, empty_queue
) -> None:
    """A paused (SIGSTOPped) worker answers no AMQP heartbeat: after about two missed
    intervals the broker closes its connection and requeues its unacked message, while the
    task is still "running" in the frozen process (a duplicate when it thaws). Celery's
    default broker_heartbeat is 120 s; 1 s here."""
    conf = {**ACK_LATE, **ONE_AT_A_TIME, "broker_heartbeat": 1}
    # Without mingle: it blocks the worker for over a second before the event loop sends the
    # first AMQP heartbeat, so with a 1 s heartbeat RabbitMQ drops the connection during every
    # start-up and the worker never gets ready (measured; scenario 21 uses 2 s and starts).
    worker = start_worker(rabbit, ledger_server, ledger, workdir, ("--without-mingle",), **conf)
    try:
        since = ledger.length()
        task_id = send_ingest(client, steps=300, step_seconds=0.1)
        wait_event(
            ledger, since, lambda e: e["type"] == h.ATTEMPT_START and e["task_id"] == task_id
        )
        processes.signal_group(worker, signal.SIGSTOP)
        frozen = time.monotonic()
        wait_ready_count(rabbit, 1, deadline=30)
        print(f"freeze -> requeued (broker_heartbeat=1): {time.monotonic() - frozen:.2f}s")
    finally:
        processes.stop(worker, sig=signal.SIGKILL)


def test_inspection_tells_ready_from_unacked_on_a_frozen_worker(
    rabbit, ledger_server, ledger, client, workdir, empty_queue
) -> None:
    worker = start_worker(rabbit, ledger_server, ledger, workdir, **ACK_LATE, **ONE_AT_A_TIME)
    try:
        since = ledger.length()
        running = send_ingest(client, steps=300, step_seconds=0.1)
        wait_event(
            ledger, since, lambda e: e["type"] == h.ATTEMPT_START and e["task_id"] == running
        )
        waiting = send_ingest(client, steps=1, step_seconds=0.01)
        wait_ready_count(rabbit, 1)  # prefetch 1: the running task's message holds the slot
        processes.signal_group(worker, signal.SIGSTOP)  # what the harness's freeze does
        asked = time.monotonic()
        counts = rabbitmq_inspection.queue_counts(rabbit)
        print(f"rabbitmqctl list_queues: {time.monotonic() - asked:.2f}s")
        assert (counts["celery"].ready, counts["celery"].unacked) == (1, 1)
        asked = time.monotonic()
        found = rabbitmq_inspection.inspect(rabbit)
        print(f"final inspection: {time.monotonic() - asked:.2f}s")
        assert found.problems == []
        assert found.state.reachable
        assert found.state.locations == {running: ["unacked"], waiting: ["queue:celery"]}
        assert ready_count(rabbit) == 2, "inspection must leave every message in the broker"
    finally:
        processes.stop(worker, sig=signal.SIGKILL)


def test_live_inspection_names_ready_messages_and_closes_nothing(rabbit: RabbitMQServer) -> None:
    """A shared pytest environment goes on after a test's snapshot: the live reading leaves every
    connection open, names the ready messages and reports the unacked ones it cannot name."""
    with rabbit.connection() as holder:
        channel = holder.channel()
        channel.queue_declare("chaos-live", auto_delete=False)
        for task in ("live-held", "live-ready"):
            message = amqp.Message(b"[]", application_headers={"task": INGEST, "id": task})
            channel.basic_publish(message, "", "chaos-live")
        held = None
        while held is None:
            held = channel.basic_get("chaos-live", no_ack=False)
        try:
            found = rabbitmq_inspection.inspect_live(rabbit)
            assert found.state.reachable
            assert found.state.locations == {"live-ready": ["queue:chaos-live"]}
            assert found.problems == [
                "chaos-live: 1 unacked message(s) held by a live connection (not named)"
            ]
            channel.basic_ack(held.delivery_tag)  # still open: nothing was closed
            assert channel.queue_declare("chaos-live", passive=True).message_count == 1
        finally:
            channel.queue_delete("chaos-live")


def test_erl_call_lists_the_queues_exactly_as_rabbitmqctl_does(rabbit: RabbitMQServer) -> None:
    """The fast path (erl_call, milliseconds) and rabbitmqctl give the same rows: counts,
    consumers, type, typed arguments and the policy that applies."""
    columns = ("name", *rabbitmq_inspection.COUNT_COLUMNS, "policy")
    quorum = {"x-queue-type": "quorum", "x-delivery-limit": 4, "x-dead-letter-exchange": "dlx"}
    with rabbit.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("chaos-erl-q", durable=True, auto_delete=False, arguments=quorum)
        channel.queue_declare("chaos-erl-c", auto_delete=False, arguments={"x-max-length": 5})
        channel.basic_publish(amqp.Message(b"[]"), "", "chaos-erl-c")
        rabbit.ctl("set_policy", "chaos-erl", "^chaos-erl-c$", '{"max-length": 3}')
        try:
            fast = rabbitmq_erl.queue_rows(rabbit, "/", columns)
            slow = rabbitmq_inspection.ctl_rows(rabbit, "list_queues", "-p", "/", *columns)
            assert fast is not None, "erl_call did not answer"
            by_name = {row["name"]: row for row in fast}
            assert by_name == {row["name"]: row for row in slow}
            assert by_name["chaos-erl-c"]["policy"] == "chaos-erl"
            assert rabbitmq_erl.sync_metadata_log(rabbit) is True
        finally:
            rabbit.ctl("clear_policy", "chaos-erl")
            channel.queue_delete("chaos-erl-q")
            channel.queue_delete("chaos-erl-c")


def test_erl_call_closes_every_connection_as_rabbitmqctl_does(rabbit: RabbitMQServer) -> None:
    """The final inspection's close_all_connections through erl_call: the vhost's client
    connections are closed by the broker with the explanation, as the CLI closes them; another
    vhost's are left alone (here the module's Celery client, on ``/``)."""
    rabbit.ctl("add_vhost", "chaos-close")
    rabbit.ctl("set_permissions", "-p", "chaos-close", rabbit.user, ".*", ".*", ".*")
    login = {"userid": rabbit.user, "password": rabbit.password, "virtual_host": "chaos-close"}
    clients = [amqp.Connection(f"127.0.0.1:{rabbit.port}", **login) for _ in range(2)]
    try:
        for client in clients:
            client.connect()
            client.channel()
        elsewhere = len(rabbitmq_inspection.ctl_rows(rabbit, "list_connections", "name"))
        assert rabbitmq_erl.close_all_connections(rabbit, "chaos-close", "chaos-test reason")
        for client in clients:
            with pytest.raises(amqp.exceptions.ConnectionForced, match="chaos-test reason"):
                client.drain_events(timeout=5)
        end = time.monotonic() + 10  # the node untracks a closed connection asynchronously
        while len(rabbitmq_inspection.ctl_rows(rabbit, "list_connections", "name")) > elsewhere - 2:
            assert time.monotonic() < end, "the closed connections are still listed"
            time.sleep(0.1)
        assert not rabbitmq_erl.close_all_connections(rabbit, "/", 'say "hi"')  # not spliced
    finally:
        for client in clients:
            client.collect()
        rabbit.ctl("delete_vhost", "chaos-close")


def test_the_node_boots_with_only_the_applications_the_broker_needs(
    rabbit: RabbitMQServer,
) -> None:
    """The node reads our plugins directory (links to rabbit's dependency closure), not the
    package's ~70 entries, and serves AMQP from it (every other test here runs on it)."""
    assert rabbit.plugins_dir is not None
    used = rabbit.ctl("eval", "rabbit_plugins:plugins_dir().").strip().strip('"')
    assert used == str(rabbit.plugins_dir)
    names = {link.name.rsplit("-", 1)[0] for link in rabbit.plugins_dir.iterdir()}
    assert {"rabbit", "rabbit_common", "rabbitmq_prelaunch", "ra"} <= names
    assert not names & {"rabbitmq_management", "rabbitmq_mqtt", "rabbitmq_stomp"}
    package = plugins_dir(find_rabbitmq()[0])
    assert len(names) < len([d for d in package.iterdir() if d.is_dir()])


def test_a_dead_lettered_task_message_is_found_in_the_dead_letter_queue(
    rabbit: RabbitMQServer,
) -> None:
    """A message rejected without requeue goes to the queue's dead-letter exchange: inspection
    reports it there, as a dead letter (reason ``rejected``, from chaos-work), not lost: kept
    but parked (no worker consumes chaos-dead)."""
    with rabbit.connection() as connection:
        channel = connection.channel()
        channel.exchange_declare("chaos-dlx", "fanout", auto_delete=False)
        channel.queue_declare("chaos-dead", auto_delete=False)
        channel.queue_bind("chaos-dead", "chaos-dlx")
        arguments = {"x-dead-letter-exchange": "chaos-dlx"}
        channel.queue_declare("chaos-work", auto_delete=False, arguments=arguments)
        headers = {"task": INGEST, "id": "dead-1"}
        channel.basic_publish(amqp.Message(b"[]", application_headers=headers), "", "chaos-work")
        message = None
        while message is None:
            message = channel.basic_get("chaos-work", no_ack=False)
        channel.basic_reject(message.delivery_tag, requeue=False)
    try:
        found = rabbitmq_inspection.inspect(rabbit)
        assert found.problems == []
        assert found.state.locations == {"dead-1": ["dead_letter:chaos-dead:rejected:chaos-work"]}
    finally:
        with rabbit.connection() as cleanup:
            for queue in ("chaos-work", "chaos-dead"):
                cleanup.channel().queue_delete(queue)


def _reject_until_gone(channel: amqp.Channel, queue: str) -> int:
    """Deliver and requeue (``basic.reject``) a queue's message until the broker drops or
    dead-letters it; returns how many deliveries it allowed."""
    deliveries, deadline = 0, time.monotonic() + 10
    while time.monotonic() < deadline and deliveries < 10:
        message = channel.basic_get(queue, no_ack=False)
        if message is None:
            if channel.queue_declare(queue, passive=True).message_count == 0:
                return deliveries
            continue
        deliveries += 1
        channel.basic_reject(message.delivery_tag, requeue=True)
    return deliveries


def test_a_quorum_delivery_limit_dead_letters_after_limit_plus_one_deliveries(
    rabbit: RabbitMQServer,
) -> None:
    """On a real node: limit 1 allows 2 deliveries, then the message is dead-lettered with
    reason delivery_limit into the queue the harness declared (declare_queues); inspection
    locates it there, reads each quorum queue's limit (from its argument or its policy) and
    spends no more than one delivery of a ready message per inspection."""
    rabbitmq_inspection.declare_queues(rabbit, {"chaos-dlq": {"durable": True, "arguments": {}}})
    rabbit.ctl("set_policy", "--apply-to", "queues", "chaos-limit", "^chaos-by-policy$",
               '{"delivery-limit": 3}')  # fmt: skip
    work = {"x-queue-type": "quorum", "x-delivery-limit": 1, "x-dead-letter-exchange": ""}
    work["x-dead-letter-routing-key"] = "chaos-dlq"
    try:
        with rabbit.connection() as connection:
            channel = connection.channel()
            channel.queue_declare("chaos-limited", durable=True, auto_delete=False, arguments=work)
            by_policy = {"x-queue-type": "quorum"}
            channel.queue_declare("chaos-by-policy", durable=True, auto_delete=False,
                                  arguments=by_policy)  # fmt: skip
            headers = {"task": INGEST, "id": "limited-1"}
            message = amqp.Message(b"[]", application_headers=headers)
            channel.basic_publish(message, "", "chaos-limited")
            assert _reject_until_gone(channel, "chaos-limited") == 2
            waiting = amqp.Message(b"[]", application_headers={"task": INGEST, "id": "waiting-1"})
            channel.basic_publish(waiting, "", "chaos-limited")
            deadline = time.monotonic() + 10
            while rabbitmq_inspection.queue_counts(rabbit)["chaos-limited"].ready != 1:
                assert time.monotonic() < deadline, "the published message was never counted"
        for _ in range(2):  # a queue with nothing unacked is read once per inspection: limit 1
            found = rabbitmq_inspection.inspect(rabbit)  # allows two, so waiting-1 stays put
        assert found.problems == []
        assert found.state.locations == {
            "limited-1": ["dead_letter:chaos-dlq:delivery_limit:chaos-limited"],
            "waiting-1": ["queue:chaos-limited"],
        }
        assert found.state.delivery_limits == {"chaos-limited": 1, "chaos-by-policy": 3}
    finally:
        rabbit.ctl("clear_policy", "chaos-limit")
        with rabbit.connection() as cleanup:
            for queue in ("chaos-limited", "chaos-by-policy", "chaos-dlq"):
                cleanup.channel().queue_delete(queue)


def test_restart_keeps_ports_user_and_confirmed_persistent_messages(
    rabbit: RabbitMQServer, empty_queue: None
) -> None:
    """With publisher confirms the broker confirms a persistent message only once it is on
    disk, so it survives a SIGKILL of the node. (Without confirms, a message published just
    before the crash was lost here: the node had not written it yet.)"""
    confirming = make_client(rabbit.url, {"broker_transport_options": {"confirm_publish": True}})
    task_id = send_ingest(confirming, steps=1, step_seconds=0.01)
    confirming.close()
    port, user = rabbit.port, rabbit.user
    rabbit.restart()  # SIGKILL: a crash, then the same ports and data directory
    print(f"rabbitmq restart start-up: {rabbit.startup_seconds:.2f}s")
    assert (rabbit.port, rabbit.user) == (port, user)
    found = rabbitmq_inspection.inspect(rabbit)
    assert found.state.locations == {task_id: ["queue:celery"]}


def test_restart_without_data_loses_messages_but_keeps_the_user(
    rabbit: RabbitMQServer, client: Celery
) -> None:
    """The RabbitMQ twin of a Redis broker without persistence: everything queued is gone,
    and the node recreates the same random user at boot (guest still never exists)."""
    send_ingest(client, steps=1, step_seconds=0.01)
    wait_ready_count(rabbit, 1)
    rabbit.restart(keep_data=False)
    with rabbit.connection() as connection, pytest.raises(amqp.exceptions.NotFound):
        connection.channel().queue_declare("celery", passive=True)
    assert rabbit.ctl("list_users").split()[2:] == [rabbit.user, "[administrator]"]


def test_stop_leaves_no_process_of_the_node(rabbit: RabbitMQServer) -> None:
    pids = rabbit.pids()
    epmd_pid = rabbit.epmd.pid if rabbit.epmd else None
    assert epmd_pid in pids and len(pids) >= 3  # epmd, the start script, beam.smp
    rabbit.stop()
    assert [pid for pid in pids if processes.pid_alive(pid)] == []
    assert rabbitmq_inspection.held_messages(rabbit) is None, "an unreachable broker: no count"
    assert not [
        p
        for p in psutil.process_iter(["name"])
        if p.info["name"] == "epmd" and f"ERL_EPMD_PORT={rabbit.epmd_port}" in epmd_environ(p)
    ], "a CLI call left an epmd"
