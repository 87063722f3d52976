"""Dockyard's mutual TLS, both ways: the control plane calling agents, and agents calling the control
plane's agent gateway (heartbeats).

A client context made here checks the peer's identity, not the name dialled: OpenSSL verifies the chain
to Dockyard's CA and the validity; the handshake then requires the identity that was meant (a URI SAN,
`dockyard://node/<id>` or `dockyard://control-plane`) and refuses revoked serials, before a single byte
of a request is sent. The identity is stronger than a host name, and a peer reached through NAT may be
dialled by an address its certificate does not list.

On the serving side, uvicorn does the handshake (`ssl_cert_reqs=CERT_REQUIRED` against the CA) but does
not tell the app whose certificate it was: uvicorn (0.54) does not implement the ASGI TLS extension yet
(Kludex/uvicorn#3132, #3133 are open). `ClientCertificateProtocol` is uvicorn's own h11 protocol that puts
the verified client certificate into each request's scope exactly where that extension specifies
(`scope["extensions"]["tls"]["client_cert_chain"][0]`, PEM). When uvicorn fills the extension itself,
the protocol can go and the code reading the scope stays as it is.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from core import pki


class PeerIdentityRejected(ssl.SSLCertVerificationError):
    """The peer's certificate is Dockyard's, but not the identity expected, or it is revoked."""

    def __str__(self) -> str:
        return str(self.args[0])


class _IdentityContext(ssl.SSLContext):
    """A client context that knows whom it is for and which serials are revoked."""

    expected_identity: str
    revoked_serials: frozenset[int]


def _check_peer(context: ssl.SSLContext, der: bytes | None) -> None:
    assert isinstance(context, _IdentityContext)
    if not der:
        raise PeerIdentityRejected("the peer presented no certificate")
    certificate = x509.load_der_x509_certificate(der)
    problem = pki.peer_problem(certificate, context.expected_identity, context.revoked_serials)
    if problem is not None:
        raise PeerIdentityRejected(problem)


class _CheckedObject(ssl.SSLObject):
    """What asyncio and anyio (httpx's async transport) handshake through."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_peer(self.context, self.getpeercert(binary_form=True))


class _CheckedSocket(ssl.SSLSocket):
    """What a blocking client (httpx.Client) handshakes through."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_peer(self.context, self.getpeercert(binary_form=True))


def client_context(
    ca_file: Path,
    certificate_file: Path,
    key_file: Path,
    expected_identity: str,
    revoked_serials: Iterable[int] = (),
) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting `certificate_file` and accepting only a peer of Dockyard's CA
    whose identity is `expected_identity`. Raises OSError or ssl.SSLError when the files cannot be loaded."""
    context = _IdentityContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # the identity is checked instead (see the module)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=ca_file)
    context.load_cert_chain(certificate_file, key_file)
    context.expected_identity = expected_identity
    context.revoked_serials = frozenset(revoked_serials)
    context.sslobject_class = _CheckedObject
    context.sslsocket_class = _CheckedSocket
    return context


# --- serving ----------------------------------------------------------------------------------------

# The ASGI TLS extension's tls_version values (the protocol's own numbers).
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of one connection, or None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension in every request of the connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extension = tls_extension(transport)
        if extension is not None:
            self.app = _with_tls(self.app, extension)


def _with_tls(app: Any, extension: dict[str, Any]) -> Any:
    async def app_with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": extension}}
        await app(scope, receive, send)

    return app_with_tls


def server_options(certificate_file: Path, key_file: Path, ca_file: Path) -> dict[str, Any]:
    """What uvicorn needs to serve HTTPS as `certificate_file`, to clients of Dockyard's CA only."""
    return {
        "ssl_certfile": str(certificate_file),
        "ssl_keyfile": str(key_file),
        "ssl_ca_certs": str(ca_file),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "http": ClientCertificateProtocol,
    }


def peer_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The verified client certificate of a request served through `ClientCertificateProtocol`."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    return pki.load_certificate(chain[0]) if chain else None
