"""Dockyard's replica scheduler: pure placement of replicas on nodes. See README.md."""

from core.scheduler.constraints import Constraint, parse_constraint
from core.scheduler.model import (
    ExistingReplica,
    NodeInfo,
    NodeState,
    Placement,
    ReplicaRequest,
    Resources,
    Schedule,
    Strategy,
    Unplaced,
)
from core.scheduler.schedule import schedule

__all__ = [
    "Constraint",
    "ExistingReplica",
    "NodeInfo",
    "NodeState",
    "Placement",
    "ReplicaRequest",
    "Resources",
    "Schedule",
    "Strategy",
    "Unplaced",
    "parse_constraint",
    "schedule",
]
