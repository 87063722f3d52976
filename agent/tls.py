"""How an enrolled agent serves its API with mutual TLS through uvicorn.

uvicorn does the handshake: `ssl_ca_certs` (Dockyard's CA) with `ssl_cert_reqs=CERT_REQUIRED` means a
client without a certificate signed by that CA never gets past TLS (an alert, no HTTP at all). It does
not tell the app whose certificate it was, though: uvicorn (0.54) does not implement the ASGI TLS
extension yet (Kludex/uvicorn#3132, #3133 are open). `ClientCertificateProtocol` is uvicorn's own h11
protocol that puts the verified client certificate into each request's scope exactly where that
extension specifies (`scope["extensions"]["tls"]["client_cert_chain"][0]`, PEM), so the authenticator
can tell the control plane from another node (403). When uvicorn fills the extension itself, this
module can go and the authenticator stays as it is.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.enrollment import NodeIdentity

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


def uvicorn_options(identity: NodeIdentity) -> dict[str, Any]:
    """What `uvicorn.run` needs to serve HTTPS as this node, to clients of Dockyard's CA only."""
    return {
        "ssl_certfile": str(identity.certificate_file),
        "ssl_keyfile": str(identity.key_file),
        "ssl_ca_certs": str(identity.ca_file),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "http": ClientCertificateProtocol,
    }
