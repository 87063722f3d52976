"""Registry activities: resolve an image reference (tag) to the digest every replica is pinned to."""

from __future__ import annotations

import re

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
                    token = await _bearer_token(http, response.headers["www-authenticate"], ref.registry)
                    response = await http.head(
                        url, headers={"Accept": MANIFEST_TYPES, "Authorization": f"Bearer {token}"}
                    )
            except httpx.TransportError as exc:
                # Retryable: the registry may be restarting.
                raise RuntimeError(f"registry {ref.registry} unreachable: {exc!r}") from None
            except httpx.HTTPError as exc:
                raise _protocol_error(ref.registry, f"cannot be asked for {image}: {exc}") from None
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
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise RuntimeError(f"registry {ref.registry} answered HTTP {response.status_code} for {image}")
        if response.status_code >= 400:
            raise _protocol_error(ref.registry, f"answered HTTP {response.status_code} for {image}")
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


# `key="quoted, maybe with commas"` or `key=token`, as RFC 7235 auth-params are written.
_AUTH_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def challenge_params(challenge: str) -> dict[str, str]:
    """The parameters of a `Bearer realm="...",service="...",scope="..."` challenge."""
    body = challenge.strip().removeprefix("Bearer").strip()
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _AUTH_PARAM.finditer(body)
    }


async def _bearer_token(http: httpx.AsyncClient, challenge: str, registry: str) -> str:
    """The token flow public registries use: `Bearer realm="...",service="...",scope="..."`.

    A registry that answers it in a way no retry will change (no realm, a realm that is no URL, a
    refusal, an answer that is not JSON or holds no token) is a non-retryable error naming the registry;
    an unreachable or failing (5xx) token service is retried."""
    params = challenge_params(challenge)
    realm = params.pop("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise _protocol_error(
            registry, f"its auth challenge names no token realm URL (WWW-Authenticate: {challenge[:200]})"
        )
    try:
        response = await http.get(realm, params=params)
    except httpx.TransportError as exc:
        raise RuntimeError(f"registry {registry}: token service {realm} unreachable: {exc!r}") from None
    except httpx.HTTPError as exc:
        raise _protocol_error(registry, f"its token realm {realm} cannot be asked: {exc}") from None
    if response.status_code in (401, 403):
        raise ApplicationError(
            f"registry {registry} refused a token (HTTP {response.status_code} from {realm}): "
            "check the registry credentials",
            type="RegistryAccessDenied",
            non_retryable=True,
        )
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise RuntimeError(f"registry {registry}: token service {realm} answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise _protocol_error(registry, f"its token service {realm} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise _protocol_error(
            registry, f"its token service {realm} answered with no JSON: {response.text[:100]!r}"
        ) from None
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise _protocol_error(registry, f"its token service {realm} answered with no token")
    return token


def _protocol_error(registry: str, what: str) -> ApplicationError:
    return ApplicationError(f"registry {registry}: {what}", type="RegistryProtocolError", non_retryable=True)
