"""Temporal payloads encrypted with the payload key: round trip, older plain payloads pass, another key
or a damaged payload is refused."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload

from core.codec import ENCODING, EncryptionCodec, PayloadKeyError, new_payload_key

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"hostname": "web-production.example.com"}')


async def test_a_payload_round_trips_and_its_stored_form_says_nothing() -> None:
    codec = EncryptionCodec(new_payload_key())
    [sealed] = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING
    assert b"web-production" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [PLAIN]
    [again] = await codec.encode([PLAIN])
    assert again.data != sealed.data  # a fresh nonce each time


async def test_payloads_written_before_encryption_decode_as_they_are() -> None:
    assert await EncryptionCodec(new_payload_key()).decode([PLAIN]) == [PLAIN]


async def test_another_key_or_a_damaged_payload_is_refused() -> None:
    [sealed] = await EncryptionCodec(new_payload_key()).encode([PLAIN])
    with pytest.raises(PayloadKeyError, match="DOCKYARD_PAYLOAD_KEY"):
        await EncryptionCodec(new_payload_key()).decode([sealed])
    key = new_payload_key()
    codec = EncryptionCodec(key)
    [sealed] = await codec.encode([PLAIN])
    damaged = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(InvalidTag):
        await codec.decode([damaged])
