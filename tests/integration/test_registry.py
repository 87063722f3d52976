"""resolve_image against a real Docker Distribution with htpasswd auth: tags resolve to the digest the
push reported, and every failure is an error a user can act on (and Temporal retries only what may heal)."""

from __future__ import annotations

import uuid
from typing import Any

import docker
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts import ResolvedImage
from activities.registry import RegistryActivities
from core.settings import Settings, load_settings
from tests.support.images import build_http_image
from tests.support.registry import PushedImage, Registry, free_port, push_image

pytestmark = pytest.mark.timeout(180)

REPOSITORY = "apps/registry-test"


@pytest.fixture(scope="module")
def pushed(docker_client: docker.DockerClient, registry: Registry) -> PushedImage:
    local = f"dockyard-test/registry-app:{uuid.uuid4().hex[:8]}"
    build_http_image(docker_client, local, "resolve me")
    try:
        return push_image(docker_client, registry, local, REPOSITORY, tag="v1")
    finally:
        docker_client.images.remove(local)


def settings_for(registry: Registry, **changes: Any) -> Settings:
    fields: dict[str, Any] = {
        "registry_host": registry.host,
        "registry_username": registry.username,
        "registry_password": registry.password,
    }
    return load_settings(**{**fields, **changes})


async def resolve(settings: Settings, image: str) -> ResolvedImage:
    resolved: ResolvedImage = await ActivityEnvironment().run(
        RegistryActivities(settings).resolve_image, image
    )
    return resolved


async def test_a_pushed_tag_resolves_to_the_digest_the_push_reported(
    registry: Registry, pushed: PushedImage
) -> None:
    resolved = await resolve(settings_for(registry), pushed.tagged)

    assert resolved.digest == pushed.digest
    assert resolved.pinned == f"{registry.host}/{REPOSITORY}@{pushed.digest}"


async def test_a_digest_reference_resolves_to_itself(registry: Registry, pushed: PushedImage) -> None:
    resolved = await resolve(settings_for(registry), pushed.ref)

    assert resolved == ResolvedImage(digest=pushed.digest, pinned=pushed.ref)


async def test_a_missing_tag_is_image_not_found(registry: Registry, pushed: PushedImage) -> None:
    image = f"{pushed.repository}:no-such-tag"

    with pytest.raises(ApplicationError) as error:
        await resolve(settings_for(registry), image)

    assert error.value.type == "ImageNotFound"
    assert error.value.non_retryable
    assert image in error.value.message
    assert "MANIFEST_UNKNOWN" in error.value.message


async def test_a_wrong_password_is_access_denied(registry: Registry, pushed: PushedImage) -> None:
    with pytest.raises(ApplicationError) as error:
        await resolve(settings_for(registry, registry_password="not-the-password"), pushed.tagged)

    assert error.value.type == "RegistryAccessDenied"
    assert error.value.non_retryable
    assert registry.host in error.value.message
    assert "401" in error.value.message


async def test_an_unreachable_registry_is_a_retryable_error(registry: Registry) -> None:
    closed = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there

    with pytest.raises(Exception) as error:
        await resolve(settings_for(registry, registry_host=closed), f"{closed}/{REPOSITORY}:v1")

    assert not (isinstance(error.value, ApplicationError) and error.value.non_retryable)
    assert f"registry {closed} unreachable" in str(error.value)


@pytest.mark.parametrize(
    "image",
    ["", "Apps/Upper:v1", "127.0.0.1:5000/apps/web@sha256:short", "apps/web:bad tag", "apps/web:-dash"],
    ids=["empty", "uppercase", "short-digest", "space", "tag-starting-with-dash"],
)
async def test_an_invalid_reference_is_invalid_image(registry: Registry, image: str) -> None:
    with pytest.raises(ApplicationError) as error:
        await resolve(settings_for(registry), image)

    assert error.value.type == "InvalidImage"
    assert error.value.non_retryable
    assert repr(image) in error.value.message
