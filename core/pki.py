"""Dockyard's own certificate authority: node certificates issued from CSRs, the control plane's client
certificate, identities and revocation.

Identities are URIs in a certificate's subjectAltName, never names or addresses:

    dockyard://node/<node id>    a node agent (its TLS server certificate; also a client one, for later)
    dockyard://control-plane     the API and workers when they call agents

Every connection checks the chain to the CA (OpenSSL) and then the URI (Dockyard): an agent answers only
the control plane, and the control plane talks to a node only when the certificate names the node it
meant to call and its serial is not revoked. DNS/IP names are in node certificates for other tools.

Keys: EC P-256 everywhere (what every TLS stack, Python's ssl module and httpx included, accepts).
The CA's and the control plane's keys live in `<state dir>/pki` (directory 0700, key files 0600), not
encrypted: the key that would encrypt them (DOCKYARD_SECRET_KEY) is kept in the same state directory,
so encryption would add nothing there; protect the directory (an encrypted volume) instead. A node's key
is generated on the node and never leaves it (only its CSR does).

Validity: the CA 10 years; node certificates `node_certificate_days` (30 by default), not renewed yet
(renewal needs a call authenticated by the old certificate: a later step); the control plane's one
year, reissued by `ensure_authority` once two thirds of its life have passed.

Everything here is a pure function over `cryptography` objects and an injected clock, except the file
helpers at the end (`ensure_authority`, `write_private`), which are the one place keys touch disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NODE_IDENTITY_PREFIX = "dockyard://node/"
CONTROL_PLANE_IDENTITY = "dockyard://control-plane"
# Prometheus scrapes the agents' /metrics with a certificate of its own, which opens nothing else.
PROMETHEUS_IDENTITY = "dockyard://prometheus"

CA_DAYS = 3650
CONTROL_PLANE_DAYS = 365
NODE_DAYS = 30
# Certificates start a little in the past: a node whose clock is slightly behind still accepts them.
CLOCK_SKEW = timedelta(minutes=5)
MAX_HOSTS = 32

PrivateKey = ec.EllipticCurvePrivateKey
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)


class CertificateProblem(ValueError):
    """A CSR or certificate Dockyard does not accept; the message says why, for the person who sent it."""


def node_identity(node_id: str) -> str:
    return f"{NODE_IDENTITY_PREFIX}{node_id}"


def generate_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: PrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)


def create_authority(now: datetime, key: PrivateKey | None = None) -> Authority:
    """A new self-signed CA. Its name carries a random tag, so two installations' CAs never share one."""
    key = key or generate_key()
    tag = hashlib.sha256(key.public_key().public_bytes(*_SPKI)).hexdigest()[:8]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Dockyard CA {tag}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue_node_certificate(
    authority: Authority,
    csr: x509.CertificateSigningRequest,
    node_id: str,
    *,
    now: datetime,
    days: int = NODE_DAYS,
    hosts: Iterable[str] = (),
) -> x509.Certificate:
    """The certificate of node `node_id` for the key in `csr` (checked with `check_csr` first).

    The identity (CN and URI) is Dockyard's choice, never the CSR's; DNS and IP names are the CSR's
    requested ones plus `hosts` (the address the control plane was given)."""
    check_csr(csr)
    names = _host_names([*requested_hosts(csr), *hosts])
    return _issue(
        authority,
        csr.public_key(),
        common_name=node_id,
        names=[x509.UniformResourceIdentifier(node_identity(node_id)), *names],
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        now=now,
        days=days,
    )


def issue_control_plane_certificate(
    authority: Authority,
    public_key: CertificatePublicKeyTypes,
    *,
    now: datetime,
    days: int = CONTROL_PLANE_DAYS,
) -> x509.Certificate:
    return _issue(
        authority,
        public_key,
        common_name="dockyard-control-plane",
        names=[x509.UniformResourceIdentifier(CONTROL_PLANE_IDENTITY)],
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        now=now,
        days=days,
    )


def _issue(
    authority: Authority,
    public_key: CertificatePublicKeyTypes,
    *,
    common_name: str,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    now: datetime,
    days: int,
) -> x509.Certificate:
    not_after = min(now + timedelta(days=days), authority.certificate.not_valid_after_utc)
    issuer_ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=isinstance(public_key, rsa.RSAPublicKey)), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )


def _key_usage(*, key_cert_sign: bool = False, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# --- certificate signing requests ----------------------------------------------------------------


def make_csr(key: PrivateKey, name: str, hosts: Iterable[str] = ()) -> x509.CertificateSigningRequest:
    """What a node sends to enroll: its public key, its name, the DNS names and IPs it answers on."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    names = _host_names(hosts)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """A CSR Dockyard signs, from PEM; CertificateProblem says what is wrong with it."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CertificateProblem(
            "not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)"
        ) from None
    check_csr(csr)
    return csr


def check_csr(csr: x509.CertificateSigningRequest) -> None:
    if not csr.is_signature_valid:
        raise CertificateProblem("its signature does not match its public key")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ACCEPTED_CURVES):
            raise CertificateProblem(f"EC curve {key.curve.name} is not accepted: use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CertificateProblem(f"an RSA key of {key.key_size} bits is too small: at least 2048")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise CertificateProblem(f"{type(key).__name__} keys are not accepted: use EC P-256, RSA or Ed25519")
    requested_hosts(csr)


def requested_hosts(csr: x509.CertificateSigningRequest) -> list[str]:
    """The DNS names and IP addresses a CSR asks for. Any other kind of name is refused: the identity
    (a dockyard:// URI) is assigned by Dockyard, never requested."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts: list[str] = []
    for name in san:
        if isinstance(name, x509.DNSName):
            hosts.append(name.value)
        elif isinstance(name, x509.IPAddress):
            hosts.append(str(name.value))
        else:
            raise CertificateProblem(
                f"it requests the name {name.value!r}; only DNS names and IP addresses may be requested "
                "(Dockyard assigns the node's identity itself)"
            )
    if len(hosts) > MAX_HOSTS:
        raise CertificateProblem(f"it requests {len(hosts)} names; at most {MAX_HOSTS}")
    return hosts


def _host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(host.strip("[]").lower() for host in hosts if host):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


# --- identities and revocation -------------------------------------------------------------------


def identity_of(certificate: x509.Certificate) -> str | None:
    """The dockyard:// identity a certificate carries, or None."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith("dockyard://")
    ]
    return uris[0] if len(uris) == 1 else None


def node_id_of(certificate: x509.Certificate) -> str | None:
    identity = identity_of(certificate)
    if identity is None or not identity.startswith(NODE_IDENTITY_PREFIX):
        return None
    return identity.removeprefix(NODE_IDENTITY_PREFIX) or None


def peer_problem(
    certificate: x509.Certificate, expected_identity: str, revoked_serials: Collection[int] = ()
) -> str | None:
    """Why the peer presenting `certificate` (its chain already verified against the CA) is not the one
    expected, or None when it is."""
    identity = identity_of(certificate)
    if certificate.serial_number in revoked_serials:
        return f"certificate {serial_hex(certificate.serial_number)} of {identity} has been revoked"
    if identity != expected_identity:
        found = identity or "no dockyard:// identity"
        return f"expected {expected_identity}, but the certificate presented is for {found}"
    return None


def verify_issued_by(certificate: x509.Certificate, ca: x509.Certificate, now: datetime) -> None:
    """That `ca` signed `certificate` and that it is valid at `now`; CertificateProblem otherwise."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateProblem(f"the certificate was not issued by {ca.subject.rfc4514_string()}") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise CertificateProblem(
            f"the certificate is valid from {certificate.not_valid_before_utc.isoformat()} "
            f"until {certificate.not_valid_after_utc.isoformat()}, not at {now.isoformat()}"
        )


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial(value: str) -> int:
    return int(value, 16)


def fingerprint(certificate: x509.Certificate) -> str:
    return "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def public_key_der(holder: x509.Certificate | x509.CertificateSigningRequest | PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo of a certificate, CSR or key: equal bytes, same key pair."""
    return holder.public_key().public_bytes(*_SPKI)


# --- PEM -----------------------------------------------------------------------------------------

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def load_certificate(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError:
        raise CertificateProblem("not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateProblem(f"expected an EC private key, found {type(key).__name__}")
    return key


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# --- files ---------------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only (0600, in a 0700 directory), atomically: a reader sees
    the old file or the new one, never a half-written key."""
    _write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    _write(path, data, 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@dataclass(frozen=True)
class ControlPlaneFiles:
    """Where the control plane keeps Dockyard's CA and its own client certificate (`Settings.pki_dir`).

    Workers on other hosts need `ca.pem`, `control-plane.pem` and `control-plane.key`, never `ca.key`."""

    directory: Path

    @property
    def ca_certificate(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def certificate(self) -> Path:
        return self.directory / "control-plane.pem"

    @property
    def key(self) -> Path:
        return self.directory / "control-plane.key"

    @property
    def prometheus_certificate(self) -> Path:
        return self.directory / "prometheus.pem"

    @property
    def prometheus_key(self) -> Path:
        return self.directory / "prometheus.key"


def ensure_authority(directory: Path, now: datetime | None = None) -> Authority:
    """Dockyard's CA from `directory`, created the first time, with a current control-plane certificate
    beside it. Processes sharing the directory (API, workers) take turns through a lock file."""
    now = now or datetime.now(UTC)
    files = ControlPlaneFiles(directory)
    with _locked(directory):
        if files.ca_key.exists():
            authority = Authority(
                load_certificate(files.ca_certificate.read_bytes()),
                load_private_key(files.ca_key.read_bytes()),
            )
        else:
            authority = create_authority(now)
            write_private(files.ca_key, private_key_pem(authority.key))
            write_public(files.ca_certificate, certificate_pem(authority.certificate).encode())
        if _needs_certificate(files.certificate, files.key, authority, now):
            key = generate_key()
            certificate = issue_control_plane_certificate(authority, key.public_key(), now=now)
            write_private(files.key, private_key_pem(key))
            write_public(files.certificate, certificate_pem(certificate).encode())
    return authority


def ensure_prometheus_certificate(directory: Path, now: datetime | None = None) -> ControlPlaneFiles:
    """Prometheus's client certificate (dockyard://prometheus: the agents let it read /metrics and
    nothing else) beside the CA, made the first time and renewed with a third of its life left."""
    now = now or datetime.now(UTC)
    authority = ensure_authority(directory, now)
    files = ControlPlaneFiles(directory)
    with _locked(directory):
        if _needs_certificate(files.prometheus_certificate, files.prometheus_key, authority, now):
            key = generate_key()
            certificate = _issue(
                authority,
                key.public_key(),
                common_name="dockyard-prometheus",
                names=[x509.UniformResourceIdentifier(PROMETHEUS_IDENTITY)],
                usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
                now=now,
                days=CONTROL_PLANE_DAYS,
            )
            write_private(files.prometheus_key, private_key_pem(key))
            write_public(files.prometheus_certificate, certificate_pem(certificate).encode())
    return files


def _needs_certificate(certificate_path: Path, key_path: Path, authority: Authority, now: datetime) -> bool:
    if not (certificate_path.exists() and key_path.exists()):
        return True
    certificate = load_certificate(certificate_path.read_bytes())
    try:
        verify_issued_by(certificate, authority.certificate, now)
    except CertificateProblem:
        return True
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - now < lifetime / 3


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
