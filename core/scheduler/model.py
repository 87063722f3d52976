"""What the scheduler takes and gives: immutable snapshots in, placements and reasons out."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from core.contracts import Contract
from core.scheduler.constraints import parse_constraint


class NodeState(StrEnum):
    READY = "READY"
    CORDONED = "CORDONED"
    DRAINING = "DRAINING"
    DOWN = "DOWN"


class Strategy(StrEnum):
    SPREAD = "spread"
    BINPACK = "binpack"


class Resources(Contract):
    cpu_millis: int = Field(ge=0, description="thousandths of a CPU core")
    memory_mb: int = Field(ge=0, description="MiB")


class NodeInfo(Contract):
    """One node as the scheduler sees it. `allocated` already includes the replicas running on it."""

    node_id: str = Field(min_length=1)
    state: NodeState
    capacity: Resources
    allocated: Resources = Resources(cpu_millis=0, memory_mb=0)
    labels: dict[str, str] = Field(default_factory=dict)


class ReplicaRequest(Contract):
    replica_id: str = Field(min_length=1)
    service_id: str = Field(min_length=1)
    resources: Resources
    constraints: list[str] = Field(
        default_factory=list, description='node labels required: "key=value" or "key!=value"'
    )
    spread_key: str | None = Field(
        default=None, description="replicas with the same key are spread across nodes; default: service_id"
    )

    @field_validator("constraints")
    @classmethod
    def _parseable(cls, constraints: list[str]) -> list[str]:
        for text in constraints:
            parse_constraint(text)
        return constraints

    @property
    def spread_group(self) -> str:
        return self.spread_key if self.spread_key is not None else self.service_id


class ExistingReplica(Contract):
    """A replica already running, so new ones spread relative to it (rolling update, replacement after node
    loss). Its resources are already in its node's `allocated`; a node not in the input is ignored."""

    node_id: str
    spread_key: str


class Placement(Contract):
    replica_id: str
    node_id: str


class Unplaced(Contract):
    replica_id: str
    reasons: dict[str, str] = Field(description="node_id → why the replica cannot go there")


class Schedule(Contract):
    placements: list[Placement] = Field(description="in the order the replicas were given")
    unplaced: list[Unplaced] = Field(default_factory=list, description="in the order the replicas were given")
