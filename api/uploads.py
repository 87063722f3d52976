"""Uploaded source tarballs: streamed to disk with a size limit, checked, kept for the builder."""

from __future__ import annotations

import asyncio
import hashlib
import os

from fastapi import Request
from starlette.exceptions import HTTPException

from core.models import SourceUpload, new_id
from core.settings import Settings
from core.sources import UnsafeArchive, inspect_archive


async def store_upload(request: Request, settings: Settings, service_id: str) -> SourceUpload:
    limit = settings.max_upload_mb * 1024 * 1024
    upload_id = new_id("upl")
    settings.sources_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = settings.sources_dir / f"{upload_id}.tar.gz"
    partial = path.with_suffix(".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"body: the upload exceeds {settings.max_upload_mb} MB")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise HTTPException(400, "body: empty upload; send the directory as a gzipped tarball")
        try:
            await asyncio.to_thread(inspect_archive, str(partial))
        except UnsafeArchive as exc:
            raise HTTPException(400, f"body: {exc}") from None
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return SourceUpload(id=upload_id, service_id=service_id, sha256=digest.hexdigest(), size=size)
