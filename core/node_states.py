"""What an admin may do to a node in each state (pure): cordon, uncordon, drain.

A state missing from an action's row refuses the action. A DOWN node stays DOWN until it answers
again; cordon and uncordon choose the state it comes back in (`state_when_back`)."""

from __future__ import annotations

from enum import StrEnum

from core.scheduler import NodeState


class NodeAction(StrEnum):
    CORDON = "cordon"
    UNCORDON = "uncordon"
    DRAIN = "drain"


TRANSITIONS: dict[NodeAction, dict[NodeState, NodeState]] = {
    NodeAction.CORDON: {
        NodeState.READY: NodeState.CORDONED,
        NodeState.CORDONED: NodeState.CORDONED,
        NodeState.DRAINING: NodeState.DRAINING,  # already takes no new replicas
    },
    NodeAction.UNCORDON: {
        NodeState.READY: NodeState.READY,
        NodeState.CORDONED: NodeState.READY,
        NodeState.DRAINING: NodeState.READY,  # stops draining
    },
    NodeAction.DRAIN: {
        NodeState.READY: NodeState.DRAINING,
        NodeState.CORDONED: NodeState.DRAINING,
        NodeState.DRAINING: NodeState.DRAINING,
        NodeState.DOWN: NodeState.DRAINING,  # its replicas are to be replaced elsewhere
    },
}


def applies_when_back(action: NodeAction, current: NodeState) -> bool:
    """Cordon and uncordon of a DOWN node: recorded for when it answers again."""
    return current is NodeState.DOWN and action in (NodeAction.CORDON, NodeAction.UNCORDON)


def state_when_back(action: NodeAction) -> NodeState:
    return NodeState.CORDONED if action is NodeAction.CORDON else NodeState.READY


def next_state(action: NodeAction, current: NodeState) -> NodeState | None:
    """The state `action` moves a node in `current` to; None when the action is not possible there."""
    return TRANSITIONS[action].get(current)
