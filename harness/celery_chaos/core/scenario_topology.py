"""Scenario parts added for broker topologies and the faults that need one (kept apart from
``scenario_parts``, which is at the module size cap): ``broker.topology`` and the ``how`` and
``direction`` options of the ``failover`` and ``partition_one_way`` faults."""

from __future__ import annotations

from typing import Literal

from celery_chaos.core.scenario_base import Strict
from celery_chaos.pydantic_compat import Field, model_validator

# single: one broker server; sentinel (Redis only): a master, a replica and three Sentinels,
# the workers connecting through ``sentinel://`` (the topology the ``failover`` fault needs).
Topology = Literal["single", "sentinel"]


class BrokerTopology(Strict):
    """``broker.topology``: how many servers make the broker, and how clients find the master."""

    topology: Topology = "single"

    @model_validator(mode="after")
    def _sentinel_is_redis(self) -> BrokerTopology:
        if self.topology == "sentinel" and getattr(self, "kind", "redis") != "redis":
            raise ValueError("topology: sentinel is a Redis topology; set kind: redis")
        return self


class TopologyFaultOptions(Strict):
    """The options of the topology and one-direction network faults (flat YAML keys)."""

    how: Literal["kill", "sentinel"] = Field(
        default="kill", description="failover: SIGKILL the master, or SENTINEL FAILOVER"
    )
    direction: Literal["to_worker", "to_broker"] = Field(
        default="to_worker", description="partition_one_way: the direction held"
    )
