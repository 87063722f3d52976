"""Temporal's remote codec protocol (POST <endpoint>/encode and /decode), so that the Temporal Web UI shows
the encrypted payloads of Dockyard's histories (core/codec.py) decoded to the people allowed to see them:
admins (a history may belong to any project).

The API serves it at /v1/codec (`dockyard up` points its Temporal UI there); `dockyard codec-server`
serves it alone. The UI calls it from the browser: with "include cross-origin credentials" on in its codec
settings, the Dockyard session cookie authenticates the call (CORS allows the UI's origin only).
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from api.deps import AdminActor, SettingsDep
from core.codec import EncryptionCodec, codec_for
from domain.errors import Invalid, Unavailable

router = APIRouter(prefix="/v1/codec", tags=["codec"])
# The UI cannot send a CSRF token; these calls change nothing.
PATHS = frozenset({"/v1/codec/encode", "/v1/codec/decode"})


class JsonPayload(BaseModel):
    """A Payload in proto3 JSON: base64 metadata values and data."""

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class Payloads(BaseModel):
    payloads: list[JsonPayload]


def _codec(settings: SettingsDep) -> EncryptionCodec:
    codec = codec_for(settings)
    if codec is None:
        raise Unavailable("payloads are not encrypted here: DOCKYARD_PAYLOAD_KEY is not set")
    return codec


def _from_json(payloads: Payloads) -> list[Payload]:
    try:
        return [
            Payload(
                metadata={key: base64.b64decode(value) for key, value in p.metadata.items()},
                data=base64.b64decode(p.data),
            )
            for p in payloads.payloads
        ]
    except ValueError as exc:
        raise Invalid("payloads", f"not base64: {exc}") from None


def _to_json(payloads: list[Payload]) -> Payloads:
    return Payloads(
        payloads=[
            JsonPayload(
                metadata={key: base64.b64encode(value).decode() for key, value in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


@router.post("/encode", operation_id="codec_encode")
async def encode(body: Payloads, actor: AdminActor, settings: SettingsDep) -> Payloads:
    return _to_json(await _codec(settings).encode(_from_json(body)))


@router.post("/decode", operation_id="codec_decode")
async def decode(body: Payloads, actor: AdminActor, settings: SettingsDep) -> Payloads:
    try:
        return _to_json(await _codec(settings).decode(_from_json(body)))
    except (ValueError, InvalidTag) as exc:  # another key, or a damaged payload
        raise Invalid("payloads", str(exc) or "a payload does not decrypt: damaged, or another key") from None
