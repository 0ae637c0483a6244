"""The pure half of RabbitMQ inspection: which messages are task messages, and how the two reads
(held ready messages, then everything after the unacked ones were released) become locations."""

from __future__ import annotations

import json

import amqp
import pytest
from celery_chaos.brokers.rabbitmq_inspection import (
    QueueCount,
    _locate,
    death,
    delivery_limits,
    is_task_queue,
    parking_queues,
    task_id,
)
from celery_chaos.placements.local import rabbitmq_server


def test_task_id_from_protocol_2_headers() -> None:
    message = amqp.Message(b"[[], {}, {}]", application_headers={"task": "t", "id": "abc"})
    assert task_id(message) == "abc"


def test_task_id_from_a_protocol_1_body() -> None:
    message = amqp.Message(json.dumps({"task": "t", "id": "abc", "args": []}).encode())
    assert task_id(message) == "abc"


def test_a_result_message_is_no_task_message() -> None:
    """rpc:// results carry the task id as correlation id; they must not count as pending."""
    result = amqp.Message(json.dumps({"status": "SUCCESS"}).encode(), correlation_id="abc")
    assert task_id(result) is None


def test_celery_broadcast_queues_are_not_task_queues() -> None:
    assert is_task_queue("celery")
    assert not is_task_queue("w0@chaos-1.celery.pidbox")
    assert not is_task_queue("celeryev.5d2c")


def test_ready_and_released_messages_become_queue_and_unacked_locations() -> None:
    before = {"celery": QueueCount(ready=1, unacked=2), "dlq": QueueCount(ready=1, unacked=0)}
    after = {"celery": QueueCount(ready=3, unacked=0), "dlq": QueueCount(ready=1, unacked=0)}
    ready = {"celery": ["a"], "dlq": ["d"]}
    everything = {"celery": ["b", "a", "c"], "dlq": ["d"]}
    found = _locate(before, after, ready, everything)
    assert found.problems == []
    assert found.state.locations == {
        "a": ["queue:celery"],
        "b": ["unacked"],
        "c": ["unacked"],
        "d": ["queue:dlq"],
    }


def test_a_duplicate_ready_and_unacked_copy_is_reported_twice() -> None:
    before = {"celery": QueueCount(ready=1, unacked=1)}
    after = {"celery": QueueCount(ready=2, unacked=0)}
    found = _locate(before, after, {"celery": ["a"]}, {"celery": ["a", "a"]})
    assert found.state.locations == {"a": ["queue:celery", "unacked"]}


def test_counts_that_do_not_match_the_reads_are_reported() -> None:
    """A worker that was not frozen (or a late publish) changes the queue between the reads:
    the inspection says so instead of returning a silently wrong snapshot."""
    before = {"celery": QueueCount(ready=2, unacked=1)}
    after = {"celery": QueueCount(ready=1, unacked=1)}
    found = _locate(before, after, {"celery": ["a"]}, {"celery": ["a"]})
    assert found.problems == [
        "celery: 2 ready counted, 1 read",
        "celery: 2+1 counted, 1 read after release",
        "celery: 1 still unacked after release",
    ]


def test_a_missing_rabbitmq_names_the_package_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(rabbitmq_server, "DEBIAN_SBIN", str(tmp_path))
    monkeypatch.delenv(rabbitmq_server.SBIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        rabbitmq_server.RabbitMQUnavailable, match="apt-get install rabbitmq-server"
    ):
        rabbitmq_server.find_rabbitmq()


def test_a_queue_that_vanished_keeps_its_ready_messages_and_is_reported() -> None:
    """An auto-delete queue disappears when inspection closes its consumers' connections: what
    was read while it existed still counts, and the inspection says it could not finish."""
    before = {"auto": QueueCount(ready=1, unacked=1)}
    found = _locate(before, {}, {"auto": ["a"]}, {})
    assert found.state.locations == {"a": ["queue:auto"]}
    assert found.problems[0] == "auto: could not be read (deleted or exclusive)"


def dead_letter(reason: str = "delivery_limit", died_in: str = "celery") -> amqp.Message:
    """A task message as RabbitMQ 3.10 dead-letters it (headers as read from a real node)."""
    x_death = [{"count": 1, "reason": reason, "queue": died_in, "exchange": ""}]
    headers = {"task": "t", "id": "a", "x-death": x_death, "x-first-death-reason": reason}
    return amqp.Message(b"[]", application_headers=headers)


def test_a_dead_letter_names_its_newest_death() -> None:
    assert death(dead_letter("rejected", "work")) == ("rejected", "work")
    plain = amqp.Message(b"[]", application_headers={"task": "t", "id": "a"})
    assert death(plain) is None


def test_a_dead_letter_in_a_queue_nobody_consumes_is_located_as_parked() -> None:
    before = {
        "celery": QueueCount(ready=0, unacked=0, consumers=1),
        "dead": QueueCount(ready=1, unacked=0, consumers=0),
    }
    deaths = {("dead", "a"): ("delivery_limit", "celery")}
    found = _locate(before, before, {"celery": [], "dead": ["a"]}, {"celery": [], "dead": ["a"]},
                    deaths)  # fmt: skip
    assert found.problems == []
    assert found.state.locations == {"a": ["dead_letter:dead:delivery_limit:celery"]}


@pytest.mark.parametrize(
    ("queue", "parked"),
    [
        (QueueCount(1, 0, consumers=1), False),  # a worker consumes it: ready work
        (QueueCount(1, 0, arguments={"x-message-ttl": 500, "x-dead-letter-exchange": ""}), False),
        (QueueCount(1, 0, arguments={"x-dead-letter-exchange": ""}), True),
        (QueueCount(1, 0, arguments={"x-message-ttl": 500}), True),
        (QueueCount(1, 0, policy="wait"), False),  # the policy makes it a waiting room
    ],
)
def test_only_a_queue_where_messages_stay_parks_them(queue: QueueCount, parked: bool) -> None:
    policies = {"wait": {"message-ttl": 500, "dead-letter-exchange": "retry"}}
    assert (parking_queues({"q": queue}, policies) == {"q"}) is parked


def test_the_effective_delivery_limit_is_the_lower_of_argument_and_policy() -> None:
    """Measured on RabbitMQ 3.10.8: argument 2 + policy 5 allowed 3 deliveries (limit 2),
    argument 4 + policy 1 allowed 2 (limit 1). Classic queues have no delivery limit."""
    counts = {
        "arg": QueueCount(0, 0, kind="quorum", arguments={"x-delivery-limit": 2}),
        "both": QueueCount(0, 0, kind="quorum", arguments={"x-delivery-limit": 4}, policy="p1"),
        "policy": QueueCount(0, 0, kind="quorum", policy="p5"),
        "none": QueueCount(0, 0, kind="quorum"),
        "classic": QueueCount(0, 0, arguments={"x-delivery-limit": 2}),
    }
    policies = {"p1": {"delivery-limit": 1}, "p5": {"delivery-limit": 5}}
    assert delivery_limits(counts, policies) == {"arg": 2, "both": 1, "policy": 5}
