"""Small builders for scheduler tests: nodes and replicas in one line each."""

from __future__ import annotations

from core.scheduler import NodeInfo, NodeState, ReplicaRequest, Resources, Schedule


def node(
    node_id: str,
    state: NodeState = NodeState.READY,
    cpu: int = 4_000,
    memory: int = 8_192,
    used_cpu: int = 0,
    used_memory: int = 0,
    **labels: str,
) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        state=state,
        capacity=Resources(cpu_millis=cpu, memory_mb=memory),
        allocated=Resources(cpu_millis=used_cpu, memory_mb=used_memory),
        labels=labels,
    )


def replica(
    replica_id: str,
    service: str = "web",
    cpu: int = 500,
    memory: int = 512,
    constraints: tuple[str, ...] = (),
    spread_key: str | None = None,
) -> ReplicaRequest:
    return ReplicaRequest(
        replica_id=replica_id,
        service_id=service,
        resources=Resources(cpu_millis=cpu, memory_mb=memory),
        constraints=list(constraints),
        spread_key=spread_key,
    )


def replicas(
    service: str, count: int, cpu: int = 500, memory: int = 512, constraints: tuple[str, ...] = ()
) -> list[ReplicaRequest]:
    return [replica(f"{service}-{number}", service, cpu, memory, constraints) for number in range(count)]


def placed_on(result: Schedule) -> dict[str, str]:
    return {placement.replica_id: placement.node_id for placement in result.placements}
