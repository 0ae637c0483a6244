"""What the scenarios of one suite may share: a RabbitMQ node (a local process or a container),
each scenario in a virtual host of its own (``local/rabbitmq_shared.py``,
``docker/rabbitmq_shared.py``; the vhost itself: ``brokers/rabbitmq_vhosts.py``).

A vhost isolates a scenario's queues, exchanges, bindings, policies, permissions, messages and
client connections; it cannot isolate the node. So a scenario that crashes or restarts the
broker (a fault kind with ``on_broker``), sets a node-wide option (``broker.consumer_timeout``)
or draws its faults at random (a storm, which may draw ``restart_broker``) gets a node of its
own.
"""

from __future__ import annotations

from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.registry import FAULTS


def can_share(scenario: Scenario) -> bool:
    """Whether ``scenario`` can run in a vhost of a shared RabbitMQ node: nothing it does
    reaches beyond its vhost."""
    if scenario.broker.kind != "rabbitmq" or scenario.broker.consumer_timeout is not None:
        return False
    if scenario.storm is not None:
        return False
    return not any(FAULTS[fault.kind].on_broker for fault in scenario.faults)
