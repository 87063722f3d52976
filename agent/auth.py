"""How the agent decides a caller may use /v1: the control plane's client certificate (enrolled
agents, mutual TLS), or a bearer token (the local `dockyard up` agent). /metrics also lets in
Prometheus: its own certificate (dockyard://prometheus), or the local agent's metrics token, neither
of which opens /v1."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import SecretStr
from starlette.requests import Request

from core import pki

REALM = "dockyard-agent"


class AuthenticationFailed(Exception):
    """The caller is not allowed in: 401 (no credentials, or wrong ones) or 403 (a known caller that
    is not the control plane). `challenge` becomes the WWW-Authenticate header of a 401."""

    def __init__(self, reason: str, challenge: str | None = None, status_code: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge
        self.status_code = status_code


class Authenticator(Protocol):
    def authenticate(self, request: Request) -> str:
        """Return the caller's identity, or raise AuthenticationFailed."""
        ...


class BearerTokenAuthenticator:
    """`Authorization: Bearer <token>` compared in constant time with the configured token(s); the
    first is required, the others (a metrics token not set) are skipped."""

    def __init__(self, token: SecretStr | str | None, *others: SecretStr | str | None) -> None:
        secret = _plain(token)
        if not secret:
            raise ValueError("the agent token must not be empty")
        self._tokens = [value.encode() for value in (secret, *map(_plain, others)) if value]

    def authenticate(self, request: Request) -> str:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationFailed("missing bearer token", f'Bearer realm="{REALM}"')
        given = credentials.strip().encode()
        # Every token compared, so the time taken says nothing of which one matched.
        if not sum(hmac.compare_digest(given, token) for token in self._tokens):
            raise AuthenticationFailed(
                "invalid bearer token", f'Bearer realm="{REALM}", error="invalid_token"'
            )
        return "bearer"


def _plain(token: SecretStr | str | None) -> str | None:
    return token.get_secret_value() if isinstance(token, SecretStr) else token


class ControlPlaneCertificateAuthenticator:
    """Mutual TLS. The TLS layer has already refused any client without a certificate from Dockyard's
    CA (agent/tls.py); this lets in only the one naming the control plane (and, for /metrics, the one
    naming Prometheus), so another node's certificate, although CA-signed, gets a 403."""

    def __init__(self, identities: frozenset[str] = frozenset({pki.CONTROL_PLANE_IDENTITY})) -> None:
        self.identities = identities

    def authenticate(self, request: Request) -> str:
        chain = client_certificate_chain(request.scope)
        if not chain:
            raise AuthenticationFailed(
                "no client certificate: this agent answers the control plane only, over mutual TLS"
            )
        identity = pki.identity_of(pki.load_certificate(chain[0]))
        if identity not in self.identities:
            raise AuthenticationFailed(
                f"the client certificate is for {identity or 'no dockyard:// identity'}; "
                f"only {' or '.join(sorted(self.identities))} may call this agent",
                status_code=403,
            )
        return identity


def metrics_certificate_authenticator() -> ControlPlaneCertificateAuthenticator:
    return ControlPlaneCertificateAuthenticator(
        frozenset({pki.CONTROL_PLANE_IDENTITY, pki.PROMETHEUS_IDENTITY})
    )


def client_certificate_chain(scope: Mapping[str, Any]) -> list[str]:
    """The verified client certificate chain (PEM, leaf first) of the ASGI TLS extension, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    return list(tls.get("client_cert_chain") or [])
