"""How the agent decides a caller may use /v1. Pluggable: mutual TLS replaces the bearer token later."""

from __future__ import annotations

import hmac
from typing import Protocol

from pydantic import SecretStr
from starlette.requests import Request

REALM = "dockyard-agent"


class AuthenticationFailed(Exception):
    """The caller is not allowed in. `challenge` becomes the WWW-Authenticate header of the 401."""

    def __init__(self, reason: str, challenge: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge


class Authenticator(Protocol):
    def authenticate(self, request: Request) -> str:
        """Return the caller's identity, or raise AuthenticationFailed."""
        ...


class BearerTokenAuthenticator:
    """`Authorization: Bearer <token>` compared in constant time with the configured token."""

    def __init__(self, token: SecretStr | str) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not secret:
            raise ValueError("the agent token must not be empty")
        self._token = secret.encode()

    def authenticate(self, request: Request) -> str:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationFailed("missing bearer token", f'Bearer realm="{REALM}"')
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            raise AuthenticationFailed(
                "invalid bearer token", f'Bearer realm="{REALM}", error="invalid_token"'
            )
        return "bearer"
