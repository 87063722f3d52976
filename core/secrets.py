"""Secrets at rest: encrypted with the platform's key (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

if TYPE_CHECKING:
    from core.settings import Settings


class SecretKeyMissing(Exception):
    pass


class SecretBox:
    """Encrypts what the database must never hold in clear (repository credentials, variables)."""

    def __init__(self, key: str | None) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._require().encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._require().decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "secret cannot be decrypted: DOCKYARD_SECRET_KEY is not the key it was stored with"
            ) from None

    def _require(self) -> Fernet:
        if self._fernet is None:
            raise SecretKeyMissing("DOCKYARD_SECRET_KEY is not set: secrets cannot be stored or read")
        return self._fernet

    def seal(self, values: dict[str, str]) -> str:
        """A mapping as one token, for data that passes through places that keep it (Temporal's
        history): only a holder of the key reads it back with `unseal`."""
        return self.encrypt(json.dumps(values, sort_keys=True))

    def unseal(self, token: str) -> dict[str, str]:
        values: dict[str, str] = json.loads(self.decrypt(token))
        return values


def secret_box(settings: Settings) -> SecretBox:
    """The platform's box (DOCKYARD_SECRET_KEY); one without a key refuses to store or read."""
    return SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
