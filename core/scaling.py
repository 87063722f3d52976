"""Scaling a deployment in place (pure): which replicas to add, which to remove, which to keep.

The replicas a scale adds run the spec of the ones running (the deployment's own DeployRequest and
image); they take the next indexes. A scale down removes the highest indexes first, so that the
indexes stay 0..n-1 and the oldest replicas, warm and proven, keep serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.contracts import DeployRequest, ReplicaSpec
from core.naming import replica_id
from core.replica_specs import replica_specs


@dataclass(frozen=True)
class ScalePlan:
    keep: list[str]
    add: list[ReplicaSpec]
    remove: list[str]  # highest index first

    @property
    def no_change(self) -> bool:
        return not self.add and not self.remove


def replica_index(deployment_id: str, rid: str) -> int | None:
    """The index of a replica id of this deployment (core/naming.replica_id), None for another's."""
    prefix = replica_id(deployment_id, 0)[:-1]
    suffix = rid[len(prefix) :] if rid.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def plan_scale(request: DeployRequest, pinned_image: str, running: list[str], replicas: int) -> ScalePlan:
    """From the replica ids of the deployment running now to `replicas` of them."""
    indexed = sorted(
        ((index, rid) for rid in running if (index := replica_index(request.deployment_id, rid)) is not None),
        key=lambda pair: pair[0],
    )
    if len(indexed) >= replicas:
        keep = [rid for _, rid in indexed[:replicas]]
        remove = [rid for _, rid in reversed(indexed[replicas:])]
        return ScalePlan(keep=keep, add=[], remove=remove)
    first = indexed[-1][0] + 1 if indexed else 0
    count = replicas - len(indexed)
    # model_copy does not validate: the indexes may pass the replica limit after replicas were lost,
    # while the count stays within it.
    specs = replica_specs(request.model_copy(update={"replicas": first + count}), pinned_image)
    return ScalePlan(keep=[rid for _, rid in indexed], add=specs[first:], remove=[])
