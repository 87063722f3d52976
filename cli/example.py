"""The bundled example service: built here with no network (busybox base), pushed to the local
registry, and deployed through the API like any other service."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import httpx

from cli.baseimage import ensure_busybox_base
from core.settings import Settings

EXAMPLE_DIR = Path(__file__).parent / "example"


def build_and_push(settings: Settings, client: docker.DockerClient, repository: str, tag: str) -> str:
    """Build the example image and push it; returns `registry/repository:tag`."""
    ensure_busybox_base(client)
    target = f"{settings.registry_host}/{repository}"
    client.images.build(path=str(EXAMPLE_DIR), tag=f"{target}:{tag}", rm=True, pull=False)
    password = settings.registry_password.get_secret_value() if settings.registry_password else ""
    auth = {"username": settings.registry_username, "password": password}
    for line in client.images.push(target, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {target}:{tag} failed: {line['error']}")
    return f"{target}:{tag}"


def deploy_example(settings: Settings) -> str:
    """Build, push and deploy the example; returns its URL once it serves."""
    client = docker.from_env()
    try:
        image = build_and_push(settings, client, "examples/hello", "1")
    finally:
        client.close()
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    with httpx.Client(base_url=settings.public_api_url, headers={"Authorization": f"Bearer {token}"}) as api:
        projects = {p["name"]: p for p in api.get("/v1/projects").raise_for_status().json()}
        project = projects.get("example") or api.post("/v1/projects", json={"name": "example"}).json()
        services = {s["name"]: s for s in api.get(f"/v1/projects/{project['id']}/services").json()}
        service = (
            services.get("hello")
            or api.post(
                f"/v1/projects/{project['id']}/services",
                json={"name": "hello", "image": image, "health_check_path": "/healthz"},
            )
            .raise_for_status()
            .json()
        )
        deployment = api.post(f"/v1/services/{service['id']}/deployments", json={}).raise_for_status().json()
        deadline = time.monotonic() + 120
        while deployment["status"] not in ("ACTIVE", "FAILED", "SUPERSEDED", "CANCELLED"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"example deployment {deployment['id']} still {deployment['status']}")
            time.sleep(0.3)
            deployment = api.get(f"/v1/deployments/{deployment['id']}").raise_for_status().json()
        if deployment["status"] != "ACTIVE":
            raise RuntimeError(f"example deployment {deployment['status']}: {deployment['message']}")
        url: str = api.get(f"/v1/services/{service['id']}/url").raise_for_status().json()["url"]
    return url
