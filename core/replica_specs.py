"""What one deploy runs: the replica specs of a deployment (pure; commands are data)."""

from __future__ import annotations

from core.contracts import DeployRequest, HealthCheck, ReplicaSpec
from core.naming import replica_id


def replica_specs(request: DeployRequest, pinned_image: str) -> list[ReplicaSpec]:
    env = {
        **request.env,
        "DOCKYARD_SERVICE_NAME": request.service_name,
        "DOCKYARD_ENVIRONMENT_NAME": request.environment_name,
        "DOCKYARD_DEPLOYMENT_ID": request.deployment_id,
    }
    return [
        ReplicaSpec(
            replica_id=replica_id(request.deployment_id, index),
            service_id=request.service_id,
            environment_id=request.environment_id,
            deployment_id=request.deployment_id,
            project_id=request.project_id,
            image=pinned_image,
            port=request.port,
            env=env,
            sealed_env=request.sealed_env,
            command=["/bin/sh", "-c", request.build.start_command] if request.build.start_command else None,
            health_check=HealthCheck(path=request.health_check_path),
            cpu_millis=request.placement.cpu_millis,
            memory_mb=request.placement.memory_mb,
            stop_grace_seconds=request.draining_seconds,
        )
        for index in range(request.replicas)
    ]
