"""Builders fetch uploaded sources from the control plane, so they can run on other hosts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.errors import NotFound
from api.store import get_or_404
from core.models import SourceUpload

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/sources/{upload_id}", operation_id="download_source", response_class=FileResponse)
async def download_source(
    upload_id: str, session: SessionDep, settings: SettingsDep, _: CurrentActor
) -> FileResponse:
    upload = await get_or_404(session, SourceUpload, upload_id)
    path = settings.sources_dir / f"{upload.id}.tar.gz"
    if not path.exists():
        raise NotFound("source archive", upload_id)
    return FileResponse(path, media_type="application/gzip", headers={"X-Content-SHA256": upload.sha256})
