"""Builders fetch uploaded sources from the control plane, so they can run on other hosts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.sources import RepoCredential
from core.models import Service, SourceUpload
from core.secrets import secret_box
from domain.authorization import require_internal
from domain.errors import NotFound
from domain.repositories import credential_kind
from domain.store import get_or_404

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/sources/{upload_id}", operation_id="download_source", response_class=FileResponse)
async def download_source(
    upload_id: str, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> FileResponse:
    require_internal(actor, "builder")
    upload = await get_or_404(session, SourceUpload, upload_id)
    path = settings.sources_dir / f"{upload.id}.tar.gz"
    if not path.exists():
        raise NotFound("source archive", upload_id)
    return FileResponse(path, media_type="application/gzip", headers={"X-Content-SHA256": upload.sha256})


@router.get("/services/{service_id}/repo-credential", operation_id="get_repo_credential")
async def get_repo_credential(
    service_id: str, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> RepoCredential:
    """The decrypted repository credential, for the builder that clones the service's repository."""
    require_internal(actor, "builder")
    service = await get_or_404(session, Service, service_id)
    if service.repo_credential is None:
        raise NotFound("repository credential of service", service_id)
    secret = secret_box(settings).decrypt(service.repo_credential)
    return RepoCredential(kind=credential_kind(secret), token=secret)
