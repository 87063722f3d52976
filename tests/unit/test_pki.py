"""Dockyard's CA (core/pki.py): what it issues, whom a certificate identifies, what it refuses."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core import pki

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def authority() -> pki.Authority:
    return pki.create_authority(NOW)


def node_certificate(
    authority: pki.Authority, node_id: str = "node_a1", *, days: int = 30, hosts: tuple[str, ...] = ()
) -> x509.Certificate:
    csr = pki.make_csr(pki.generate_key(), "worker-1", ["127.0.0.11", "worker-1.lan"])
    return pki.issue_node_certificate(authority, csr, node_id, now=NOW, days=days, hosts=hosts)


def san(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


# --- the CA and what it issues -------------------------------------------------------------------


def test_the_authority_is_a_self_signed_ca_of_ten_years(authority: pki.Authority) -> None:
    ca = authority.certificate
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (constraints.critical, constraints.value.ca, constraints.value.path_length) == (True, True, 0)
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.subject == ca.issuer
    assert ca.subject.rfc4514_string().startswith("CN=Dockyard CA ")
    pki.verify_issued_by(ca, ca, NOW)
    assert ca.not_valid_after_utc == NOW + timedelta(days=pki.CA_DAYS)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert authority.fingerprint == "sha256:" + ca.fingerprint(hashes.SHA256()).hex()


def test_two_authorities_have_different_names() -> None:
    assert pki.create_authority(NOW).certificate.subject != pki.create_authority(NOW).certificate.subject


def test_a_node_certificate_names_the_node_and_its_addresses(authority: pki.Authority) -> None:
    certificate = node_certificate(authority, hosts=("10.0.0.5", "127.0.0.11"))

    assert certificate.subject.rfc4514_string() == "CN=node_a1"
    assert san(certificate).get_values_for_type(x509.UniformResourceIdentifier) == ["dockyard://node/node_a1"]
    assert san(certificate).get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.11"),
        ipaddress.ip_address("10.0.0.5"),
    ]
    assert san(certificate).get_values_for_type(x509.DNSName) == ["worker-1.lan"]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.not_valid_after_utc == NOW + timedelta(days=30)
    assert certificate.not_valid_before_utc == NOW - pki.CLOCK_SKEW
    pki.verify_issued_by(certificate, authority.certificate, NOW)


def test_the_csr_cannot_choose_the_identity(authority: pki.Authority) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard-control-plane")]))
        .sign(pki.generate_key(), hashes.SHA256())
    )
    certificate = pki.issue_node_certificate(authority, csr, "node_b2", now=NOW)
    assert certificate.subject.rfc4514_string() == "CN=node_b2"
    assert pki.identity_of(certificate) == "dockyard://node/node_b2"


def test_every_certificate_has_its_own_serial(authority: pki.Authority) -> None:
    serials = {node_certificate(authority).serial_number for _ in range(5)}
    assert len(serials) == 5


def test_validity_is_configurable_and_capped_by_the_ca(authority: pki.Authority) -> None:
    assert node_certificate(authority, days=7).not_valid_after_utc == NOW + timedelta(days=7)
    old_ca = pki.create_authority(NOW - timedelta(days=pki.CA_DAYS - 3))
    assert node_certificate(old_ca).not_valid_after_utc == old_ca.certificate.not_valid_after_utc


def test_the_control_plane_certificate(authority: pki.Authority) -> None:
    key = pki.generate_key()
    certificate = pki.issue_control_plane_certificate(authority, key.public_key(), now=NOW)
    assert pki.identity_of(certificate) == pki.CONTROL_PLANE_IDENTITY == "dockyard://control-plane"
    assert pki.node_id_of(certificate) is None
    assert pki.public_key_der(certificate) == pki.public_key_der(key)
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages


# --- identities ----------------------------------------------------------------------------------


def foreign_certificate(uris: list[str]) -> x509.Certificate:
    """Self-signed, with the URIs given: what someone else's CA might issue."""
    key = pki.generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node_a1")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    if uris:
        names = [x509.UniformResourceIdentifier(uri) for uri in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("uris", "identity"),
    [
        pytest.param([], None, id="no-san"),
        pytest.param(["https://example.com"], None, id="other-uri"),
        pytest.param(["dockyard://node/node_a1"], "dockyard://node/node_a1", id="node"),
        pytest.param(["dockyard://node/node_a1", "dockyard://node/node_b2"], None, id="two-identities"),
        pytest.param(["dockyard://control-plane"], "dockyard://control-plane", id="control-plane"),
    ],
)
def test_identity_of(uris: list[str], identity: str | None) -> None:
    assert pki.identity_of(foreign_certificate(uris)) == identity


def test_the_cn_alone_is_no_identity() -> None:
    assert pki.node_id_of(foreign_certificate([])) is None


def test_peer_problem(authority: pki.Authority) -> None:
    certificate = node_certificate(authority, "node_a1")
    serial = certificate.serial_number

    assert pki.peer_problem(certificate, "dockyard://node/node_a1") is None
    assert pki.peer_problem(certificate, "dockyard://node/node_a1", revoked_serials={serial + 1}) is None
    assert pki.peer_problem(certificate, "dockyard://node/node_b2") == (
        "expected dockyard://node/node_b2, but the certificate presented is for dockyard://node/node_a1"
    )
    assert pki.peer_problem(certificate, "dockyard://node/node_a1", revoked_serials={serial}) == (
        f"certificate {pki.serial_hex(serial)} of dockyard://node/node_a1 has been revoked"
    )
    assert pki.peer_problem(foreign_certificate([]), "dockyard://control-plane") == (
        "expected dockyard://control-plane, but the certificate presented is for no dockyard:// identity"
    )


def test_serials_round_trip_as_hex() -> None:
    serial = x509.random_serial_number()
    assert pki.parse_serial(pki.serial_hex(serial)) == serial
    assert len(pki.serial_hex(serial)) <= 40


# --- verification and expiry ---------------------------------------------------------------------


def test_a_certificate_of_another_ca_is_refused(authority: pki.Authority) -> None:
    other = pki.create_authority(NOW)
    issuer = r"CN=Dockyard CA [0-9a-f]{8},O=Dockyard"
    with pytest.raises(pki.CertificateProblem, match=f"was not issued by {issuer}"):
        pki.verify_issued_by(node_certificate(other), authority.certificate, NOW)


@pytest.mark.parametrize(
    ("moment", "valid"),
    [
        pytest.param(NOW, True, id="issued"),
        pytest.param(NOW - timedelta(minutes=4), True, id="clock-slightly-behind"),
        pytest.param(NOW - timedelta(minutes=6), False, id="not-yet-valid"),
        pytest.param(NOW + timedelta(days=29, hours=23), True, id="last-day"),
        pytest.param(NOW + timedelta(days=30, seconds=1), False, id="expired"),
    ],
)
def test_node_certificates_expire(authority: pki.Authority, moment: datetime, valid: bool) -> None:
    certificate = node_certificate(authority)
    if valid:
        pki.verify_issued_by(certificate, authority.certificate, moment)
    else:
        with pytest.raises(pki.CertificateProblem, match=r"the certificate is valid from .* not at"):
            pki.verify_issued_by(certificate, authority.certificate, moment)


# --- certificate signing requests ----------------------------------------------------------------


def csr_with(key: object, names: list[x509.GeneralName] | None = None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n")])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return pki.csr_pem(builder.sign(key, algorithm))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_key", "accepted"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), True, id="p256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), True, id="p384"),
        pytest.param(lambda: ed25519.Ed25519PrivateKey.generate(), True, id="ed25519"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), True, id="rsa-2048"),
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), False, id="rsa-1024"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), False, id="secp256k1"),
    ],
)
def test_accepted_keys(authority: pki.Authority, make_key: object, accepted: bool) -> None:
    pem = csr_with(make_key())  # type: ignore[operator]
    if accepted:
        csr = pki.load_csr(pem)
        certificate = pki.issue_node_certificate(authority, csr, "node_k1", now=NOW)
        pki.verify_issued_by(certificate, authority.certificate, NOW)
    else:
        with pytest.raises(pki.CertificateProblem, match=r"not accepted|too small"):
            pki.load_csr(pem)


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        pytest.param("hello", "not a PEM certificate signing request", id="garbage"),
        pytest.param(
            csr_with(pki.generate_key(), [x509.UniformResourceIdentifier("dockyard://control-plane")]),
            "only DNS names and IP addresses may be requested",
            id="requests-an-identity",
        ),
        pytest.param(
            csr_with(pki.generate_key(), [x509.DNSName(f"h{i}.lan") for i in range(33)]),
            "at most 32",
            id="too-many-names",
        ),
    ],
)
def test_refused_csrs(pem: str, reason: str) -> None:
    with pytest.raises(pki.CertificateProblem, match=reason):
        pki.load_csr(pem)


def test_a_csr_whose_signature_does_not_match_is_refused() -> None:
    signed = pki.make_csr(pki.generate_key(), "tampered-name").public_bytes(Encoding.DER)
    tampered = signed.replace(b"tampered-name", b"tampered-nbme")  # same length: still well-formed
    pem = x509.load_der_x509_csr(tampered).public_bytes(Encoding.PEM).decode()
    with pytest.raises(pki.CertificateProblem, match="signature does not match"):
        pki.load_csr(pem)


def test_make_csr_requests_the_hosts_given() -> None:
    csr = pki.load_csr(pki.csr_pem(pki.make_csr(pki.generate_key(), "w", ["127.0.0.11", "[::1]", "W.lan"])))
    assert pki.requested_hosts(csr) == ["127.0.0.11", "::1", "w.lan"]


# --- files ---------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_authority_creates_the_ca_once_with_private_keys(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    first = pki.ensure_authority(directory, NOW)
    files = pki.ControlPlaneFiles(directory)

    assert mode(directory) == 0o700
    assert (mode(files.ca_key), mode(files.key)) == (0o600, 0o600)
    assert (mode(files.ca_certificate), mode(files.certificate)) == (0o644, 0o644)
    control_plane = pki.load_certificate(files.certificate.read_bytes())
    assert pki.identity_of(control_plane) == pki.CONTROL_PLANE_IDENTITY
    pki.verify_issued_by(control_plane, first.certificate, NOW)
    assert pki.public_key_der(control_plane) == pki.public_key_der(
        pki.load_private_key(files.key.read_bytes())
    )

    again = pki.ensure_authority(directory, NOW + timedelta(days=1))
    assert again.fingerprint == first.fingerprint
    assert pki.load_certificate(files.certificate.read_bytes()) == control_plane


def test_ensure_authority_reissues_the_control_plane_certificate_late_in_its_life(tmp_path: Path) -> None:
    files = pki.ControlPlaneFiles(tmp_path)
    pki.ensure_authority(tmp_path, NOW)
    before = pki.load_certificate(files.certificate.read_bytes())

    pki.ensure_authority(tmp_path, NOW + timedelta(days=200))
    assert pki.load_certificate(files.certificate.read_bytes()) == before

    later = NOW + timedelta(days=300)
    pki.ensure_authority(tmp_path, later)
    after = pki.load_certificate(files.certificate.read_bytes())
    assert after.serial_number != before.serial_number
    assert after.not_valid_after_utc == later + timedelta(days=pki.CONTROL_PLANE_DAYS)
