"""Registry activities: resolve an image reference (tag) to the digest every replica is pinned to."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import ResolvedImage
from core.images import ImageReference, InvalidImageReference, parse_image_reference
from core.settings import Settings

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class RegistryActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn
    async def resolve_image(self, image: str) -> ResolvedImage:
        try:
            ref = parse_image_reference(image)
        except InvalidImageReference as exc:
            raise ApplicationError(str(exc), type="InvalidImage", non_retryable=True) from None
        async with httpx.AsyncClient(timeout=15, auth=self._auth_for(ref)) as http:
            url = f"{self._scheme_for(ref)}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
            try:
                response = await http.head(url, headers={"Accept": MANIFEST_TYPES})
                if response.status_code == 401 and "Bearer" in response.headers.get("www-authenticate", ""):
                    token = await _bearer_token(http, response.headers["www-authenticate"])
                    response = await http.head(
                        url, headers={"Accept": MANIFEST_TYPES, "Authorization": f"Bearer {token}"}
                    )
            except httpx.TransportError as exc:
                # Retryable: the registry may be restarting.
                raise RuntimeError(f"registry {ref.registry} unreachable: {exc!r}") from None
        if response.status_code in (401, 403):
            raise ApplicationError(
                f"registry {ref.registry} refused access to {image} (HTTP {response.status_code}): "
                "check the registry credentials",
                type="RegistryAccessDenied",
                non_retryable=True,
            )
        if response.status_code == 404:
            raise ApplicationError(
                f"image {image} not found: registry {ref.registry} answered 404 MANIFEST_UNKNOWN "
                f"for {ref.repository}:{ref.reference}",
                type="ImageNotFound",
                non_retryable=True,
            )
        if response.status_code >= 400:
            raise RuntimeError(f"registry {ref.registry} answered HTTP {response.status_code} for {image}")
        digest = response.headers.get("docker-content-digest")
        if not digest:
            raise ApplicationError(
                f"registry {ref.registry} returned no Docker-Content-Digest for {image}",
                type="RegistryProtocolError",
                non_retryable=True,
            )
        if ref.digest and digest != ref.digest:
            raise ApplicationError(
                f"registry {ref.registry} returned digest {digest} for {image}",
                type="DigestMismatch",
                non_retryable=True,
            )
        return ResolvedImage(digest=digest, pinned=ref.pinned(digest))

    @activity.defn
    async def delete_image(self, pinned: str) -> None:
        """Delete an image of Dockyard's own registry by digest (its blobs go with the registry's
        garbage collection). Idempotent: an image already gone is fine."""
        ref = parse_image_reference(pinned)
        if not self._is_own_registry(ref) or not ref.reference.startswith("sha256:"):
            raise ApplicationError(
                f"{pinned}: only images of Dockyard's registry, pinned by digest, are deleted",
                type="InvalidImage",
                non_retryable=True,
            )
        url = f"{self._scheme_for(ref)}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
        async with httpx.AsyncClient(timeout=15, auth=self._auth_for(ref)) as http:
            try:
                response = await http.delete(url)
            except httpx.TransportError as exc:
                raise RuntimeError(f"registry {ref.registry} unreachable: {exc!r}") from None
        if response.status_code not in (200, 202, 404):
            raise RuntimeError(
                f"registry {ref.registry} answered HTTP {response.status_code} deleting {pinned}: "
                f"{response.text[:200]}"
            )

    def _is_own_registry(self, ref: ImageReference) -> bool:
        return ref.registry == self.settings.registry_host

    def _scheme_for(self, ref: ImageReference) -> str:
        return self.settings.registry_scheme if self._is_own_registry(ref) else "https"

    def _auth_for(self, ref: ImageReference) -> httpx.BasicAuth | None:
        password = self.settings.registry_password
        if self._is_own_registry(ref) and password is not None:
            return httpx.BasicAuth(self.settings.registry_username, password.get_secret_value())
        return None


async def _bearer_token(http: httpx.AsyncClient, challenge: str) -> str:
    """The token flow public registries use: `Bearer realm="...",service="...",scope="..."`."""
    fields = dict(part.split("=", 1) for part in challenge.removeprefix("Bearer ").split(",") if "=" in part)
    params = {key: value.strip('"') for key, value in fields.items() if key != "realm"}
    response = await http.get(fields["realm"].strip('"'), params=params)
    response.raise_for_status()
    body = response.json()
    return str(body.get("token") or body.get("access_token"))
