"""The one client of Dockyard's own API that activities use: builders, which may run on other hosts, fetch
an uploaded source and a service's repository credential through it, with the builders' service identity
(which can read nothing else). Every other activity calls the domain layer directly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from temporalio.exceptions import ApplicationError

from core.contracts import RepoCredential
from core.settings import Settings


class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def repo_credential(self, service_id: str) -> RepoCredential | None:
        """The service's repository credential (never in workflow payloads); None when it has none."""
        async with self._client(timeout=30) as http:
            response = await http.get(f"/internal/services/{service_id}/repo-credential")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return RepoCredential.model_validate(response.json())

    async def download_source(self, upload_id: str, archive: Path) -> None:
        """The uploaded source archive written to `archive`, checked against the digest the API recorded."""
        digest = hashlib.sha256()
        async with (
            self._client(timeout=60) as http,
            http.stream("GET", f"/internal/sources/{upload_id}") as response,
        ):
            if response.status_code == 404:
                raise ApplicationError(
                    f"source upload {upload_id} not found", type="SourceMissing", non_retryable=True
                )
            response.raise_for_status()
            with archive.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
            expected = response.headers.get("x-content-sha256")
        if expected and expected != digest.hexdigest():
            raise RuntimeError(f"source upload {upload_id} arrived damaged (sha256 mismatch)")

    def _client(self, timeout: float) -> httpx.AsyncClient:
        # The builders' service identity (an installation from before it existed: the API token).
        secret = self.settings.builder_token or self.settings.api_token
        headers = {"Authorization": f"Bearer {secret.get_secret_value() if secret else ''}"}
        return httpx.AsyncClient(base_url=self.settings.public_api_url, timeout=timeout, headers=headers)
