"""Business keys: the one place that says how workflows, replicas and hostnames are named."""

from __future__ import annotations


def service_workflow_id(service_id: str, environment_id: str) -> str:
    return f"service/{service_id}/{environment_id}"


def deploy_workflow_id(service_id: str, environment_id: str, deployment_id: str) -> str:
    return f"deploy/{service_id}/{environment_id}/{deployment_id}"


def scale_workflow_id(service_id: str, environment_id: str, deployment_id: str, replicas: int) -> str:
    return f"scale/{service_id}/{environment_id}/{deployment_id}/{replicas}"


def teardown_workflow_id(environment_id: str) -> str:
    return f"teardown/{environment_id}"


def autoscaler_workflow_id(service_id: str, environment_id: str) -> str:
    return f"autoscale/{service_id}/{environment_id}"


def pool_workflow_id(pool_id: str) -> str:
    return f"pool/{pool_id}"


def provision_workflow_id(node_id: str) -> str:
    return f"provision/{node_id}"


def decommission_workflow_id(node_id: str) -> str:
    return f"decommission/{node_id}"


# The one fleet watch of a control plane.
FLEET_WATCH_ID = "fleet-watch"


def replica_id(deployment_id: str, index: int) -> str:
    return f"{deployment_id.replace('_', '-')}-{index}"


def service_hostname(service_slug: str, environment_name: str, apps_domain: str) -> str:
    return f"{hostname_label(service_slug, environment_name)}.{apps_domain}"


def hostname_label(service_slug: str, environment_name: str) -> str:
    return f"{service_slug}-{environment_name}"


def label_owners(label: str) -> list[tuple[str, str]]:
    """Every (service slug, environment name) whose hostname label is `label`: the label cut at
    each hyphen. Slugs and environment names hold hyphens too, so `web` in `a-b` and `web-a` in
    `b` share `web-a-b`: two pairs of one label collide."""
    return [
        (label[:cut], label[cut + 1 :])
        for cut, char in enumerate(label)
        if char == "-" and 0 < cut < len(label) - 1
    ]


def service_slug_candidates(service_name: str, project_name: str, suffix: str) -> list[str]:
    """The hostname label of a service, in order of preference: its name; when another project
    already uses that, name and project; failing that, name and a random suffix. Each fits a
    DNS label with room for `-<environment>` (environment names are at most 20 characters)."""
    return [
        service_name,
        f"{service_name}-{project_name}"[:42].rstrip("-"),
        f"{service_name[:35]}-{suffix}",
    ]


def route_name(service_id: str, environment_id: str) -> str:
    """Traefik router/service name; Traefik names may not contain '@' or '/'."""
    return f"{service_id}-{environment_id}".replace("_", "-")
