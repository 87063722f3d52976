"""Business keys: the one place that says how workflows, replicas and hostnames are named."""

from __future__ import annotations


def service_workflow_id(service_id: str, environment_id: str) -> str:
    return f"service/{service_id}/{environment_id}"


def deploy_workflow_id(service_id: str, environment_id: str, deployment_id: str) -> str:
    return f"deploy/{service_id}/{environment_id}/{deployment_id}"


def replica_id(deployment_id: str, index: int) -> str:
    return f"{deployment_id.replace('_', '-')}-{index}"


def service_hostname(service_name: str, environment_name: str, apps_domain: str) -> str:
    return f"{service_name}-{environment_name}.{apps_domain}"


def route_name(service_id: str, environment_id: str) -> str:
    """Traefik router/service name; Traefik names may not contain '@' or '/'."""
    return f"{service_id}-{environment_id}".replace("_", "-")
