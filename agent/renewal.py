"""Certificate renewal: before a third of its certificate's lifetime is left, an enrolled agent makes a
new key and asks the agent gateway for its next certificate (authenticated by the current one, which
the control plane then revokes). Both files are swapped so that a crash at any point leaves a usable
identity:

    node.next.key, node.next.pem   written first (each atomically)
    node.next.key → node.key       then the key
    node.next.pem → node.pem       then the certificate

`enrollment.finish_renewal` (run when the identity is loaded) completes a swap a crash cut short.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from cryptography import x509

from agent.enrollment import EnrollmentError, NodeIdentity, finish_renewal
from core import pki

RENEW_TIMEOUT_SECONDS = 30


def needs_renewal(certificate: x509.Certificate, now: datetime, fraction: float) -> bool:
    """Whether less than `fraction` of the certificate's lifetime is left."""
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - now < lifetime * fraction


async def renew(
    identity: NodeIdentity,
    http: httpx.AsyncClient,
    gateway_url: str,
    name: str,
    hosts: list[str],
    now: datetime,
) -> x509.Certificate:
    """Get the next certificate for a new key through `http` (which presents the current one) and make
    the pair the node's. Raises EnrollmentError naming what went wrong; the current pair stays then."""
    key = pki.generate_key()
    csr = pki.make_csr(key, name, hosts)
    url = f"{gateway_url.rstrip('/')}/v1/certificates"
    try:
        response = await http.post(url, json={"csr": pki.csr_pem(csr)}, timeout=RENEW_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot reach the agent gateway at {url}: {exc}") from None
    if response.status_code != 200:
        raise EnrollmentError(
            f"the control plane refused the renewal: HTTP {response.status_code}: {response.text[:300]}"
        )
    try:
        certificate = pki.load_certificate(response.json()["certificate"])
        pki.verify_issued_by(certificate, pki.load_certificate(identity.ca_file.read_bytes()), now)
        if pki.public_key_der(certificate) != pki.public_key_der(key):
            raise pki.CertificateProblem("the certificate is not for the new key")
        if pki.node_id_of(certificate) != identity.node_id:
            raise pki.CertificateProblem(f"the certificate is not for node {identity.node_id}")
    except (KeyError, ValueError, pki.CertificateProblem) as exc:
        raise EnrollmentError(f"the renewed certificate is not usable: {exc}") from None
    pki.write_private(identity.next_key_file, pki.private_key_pem(key))
    pki.write_public(identity.next_certificate_file, pki.certificate_pem(certificate).encode())
    finish_renewal(identity.directory)
    return certificate
