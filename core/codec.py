"""Temporal payloads, encrypted: what Dockyard's workflows carry (deploy requests, join tokens, build output,
specs) is stored in Temporal's histories as AES-256-GCM ciphertext, readable only with the payload key.

Every payload the API and the workers send is encoded by `EncryptionCodec`; failure messages and stack
traces too (they may quote build output). Payloads written before encryption existed (no
`binary/encrypted` encoding) are decoded as they are, so older histories replay. The Temporal Web UI shows
them decoded through the codec endpoint (api/routes/codec.py) to the people allowed to see them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadCodec

from core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """A payload encrypted with another key than the one this process has."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, key: str) -> None:
        material = key.encode()
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"dockyard temporal payloads").derive(
                material
            )
        )
        self.key_id = hashlib.sha256(b"dockyard payload key id:" + material).hexdigest()[:16]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(payload) for payload in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()}, data=nonce + sealed)

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before payloads were encrypted
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        if key_id != self.key_id:
            raise PayloadKeyError(
                f"a Temporal payload is encrypted with key {key_id or '?'}, this process has {self.key_id}: "
                "every process needs the same DOCKYARD_PAYLOAD_KEY"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(self._aead.decrypt(nonce, sealed, key_id.encode()))


def new_payload_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def codec_for(settings: Settings) -> EncryptionCodec | None:
    return EncryptionCodec(settings.payload_key.get_secret_value()) if settings.payload_key else None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models in, encrypted payloads out (plain ones when no DOCKYARD_PAYLOAD_KEY is set)."""
    codec = codec_for(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=_EncodedFailures,
    )


class _EncodedFailures(DefaultFailureConverter):
    """Failure messages and stack traces travel as an encoded payload too (they may quote build output)."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)
