"""A node's identity: enrolled once with a join token, then kept in the agent's state directory.

    <state_dir>/node.key    the node's private key (0600): made here, never sent anywhere
    <state_dir>/node.pem    its certificate from Dockyard's CA (dockyard://node/<id>)
    <state_dir>/ca.pem      Dockyard's CA: the only issuer of clients the agent lets in
    <state_dir>/node.json   node id, name, the control plane it enrolled with, its agent gateway

`node.pem` is written last: a directory without it is not enrolled, whatever else it holds. An agent
that restarts finds its identity here and needs no token; a join token given then is not used.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from agent.settings import AgentSettings
from core import pki

ENROLL_TIMEOUT_SECONDS = 30


class EnrollmentError(Exception):
    """The agent cannot get or use an identity; the message says what to do."""


@dataclass(frozen=True)
class NodeIdentity:
    node_id: str
    directory: Path

    @property
    def key_file(self) -> Path:
        return self.directory / "node.key"

    @property
    def certificate_file(self) -> Path:
        return self.directory / "node.pem"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def info_file(self) -> Path:
        return self.directory / "node.json"

    @property
    def next_key_file(self) -> Path:
        return self.directory / "node.next.key"

    @property
    def next_certificate_file(self) -> Path:
        return self.directory / "node.next.pem"

    def info(self) -> dict[str, Any]:
        """What the enrollment recorded: the control plane, its agent gateway, the heartbeat interval."""
        return dict(json.loads(self.info_file.read_text()))


def is_enrolled(state_dir: Path) -> bool:
    return NodeIdentity("", state_dir).certificate_file.exists()


def ensure_identity(settings: AgentSettings, now: datetime | None = None) -> NodeIdentity | None:
    """The node's identity: the one in the state directory, or a new one from enrolling with the join
    token. None when there is neither (bearer mode)."""
    now = now or datetime.now(UTC)
    if is_enrolled(settings.state_dir):
        return load_identity(settings.state_dir, now)
    if settings.join_token is None:
        if settings.join_url:
            raise EnrollmentError("--join needs a join token: --token TOKEN or DOCKYARD_AGENT_JOIN_TOKEN")
        return None
    if not settings.join_url:
        raise EnrollmentError(
            "a join token needs the control plane's API URL: --join URL or DOCKYARD_AGENT_JOIN_URL"
        )
    return enroll(settings, now)


def finish_renewal(directory: Path) -> None:
    """Complete a swap of key and certificate that a crash cut short (agent/renewal.py writes
    node.next.key and node.next.pem, then moves the key, then the certificate)."""
    identity = NodeIdentity("", directory)
    if identity.next_certificate_file.exists():
        if identity.next_key_file.exists():
            os.replace(identity.next_key_file, identity.key_file)
        os.replace(identity.next_certificate_file, identity.certificate_file)
    elif identity.next_key_file.exists():  # the certificate never came: the current pair is still whole
        identity.next_key_file.unlink()


def load_identity(state_dir: Path, now: datetime) -> NodeIdentity:
    """The identity kept in `state_dir`, checked: key and certificate belong together, and the CA
    signed the certificate, which has not expired."""
    finish_renewal(state_dir)
    info_file = NodeIdentity("", state_dir).info_file
    try:
        identity = NodeIdentity(json.loads(info_file.read_text())["node_id"], state_dir)
        certificate = pki.load_certificate(identity.certificate_file.read_bytes())
        key = pki.load_private_key(identity.key_file.read_bytes())
        ca = pki.load_certificate(identity.ca_file.read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise EnrollmentError(f"the node identity in {state_dir} cannot be read: {exc}") from None
    if pki.public_key_der(certificate) != pki.public_key_der(key):
        raise EnrollmentError(f"{identity.certificate_file} does not belong to {identity.key_file}")
    if certificate.not_valid_after_utc < now:
        raise EnrollmentError(
            f"the certificate of node {identity.node_id} expired at "
            f"{certificate.not_valid_after_utc.isoformat()} (agents renew theirs through the agent "
            "gateway before a third of its lifetime is left: was the control plane away that long?): "
            f"remove the node (DELETE /v1/nodes/{identity.node_id}?force=true), delete {state_dir} and "
            "enroll again with a new join token"
        )
    try:
        pki.verify_issued_by(certificate, ca, now)
    except pki.CertificateProblem as exc:
        raise EnrollmentError(f"{identity.certificate_file}: {exc}") from None
    return identity


def enroll(settings: AgentSettings, now: datetime, http: httpx.Client | None = None) -> NodeIdentity:
    """Send a CSR with the join token; keep the key, the certificate and the CA that come back."""
    assert settings.join_url is not None and settings.join_token is not None
    key = pki.generate_key()
    csr = pki.make_csr(key, settings.node_name, settings.certificate_hosts())
    url = f"{settings.join_url.rstrip('/')}/v1/nodes/enroll"
    body = {
        "token": settings.join_token.get_secret_value(),
        "name": settings.node_name,
        "csr": pki.csr_pem(csr),
        "address": settings.api_address(),
        "labels": settings.labels,
        "capacity": node_capacity(settings.state_dir),
    }
    answer = _post(http, url, body)
    certificate = _check_answer(settings, answer, key, now)
    identity = NodeIdentity(answer["node_id"], settings.state_dir)
    pki.write_private(identity.key_file, pki.private_key_pem(key))
    pki.write_public(identity.ca_file, answer["ca_certificate"].encode())
    info = {
        "node_id": identity.node_id,
        "name": answer["name"],
        "control_plane": settings.join_url,
        "control_plane_identity": answer["control_plane_identity"],
        "gateway_url": answer.get("gateway_url"),
        "heartbeat_interval_seconds": answer.get("heartbeat_interval_seconds"),
        "enrolled_at": now.isoformat(),
    }
    pki.write_public(identity.info_file, json.dumps(info, indent=2).encode())
    pki.write_public(identity.certificate_file, pki.certificate_pem(certificate).encode())
    return identity


def _post(http: httpx.Client | None, url: str, body: dict[str, Any]) -> dict[str, Any]:
    client = http or httpx.Client(timeout=ENROLL_TIMEOUT_SECONDS)
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot reach the control plane at {url}: {exc}") from None
    finally:
        if http is None:
            client.close()
    if response.status_code != 201:
        raise EnrollmentError(f"the control plane refused the enrollment: {_detail(response)}")
    return response.json()  # type: ignore[no-any-return]


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"HTTP {response.status_code}: {response.text[:300]}"


def _check_answer(
    settings: AgentSettings, answer: dict[str, Any], key: pki.PrivateKey, now: datetime
) -> x509.Certificate:
    try:
        ca = pki.load_certificate(answer["ca_certificate"])
        certificate = pki.load_certificate(answer["certificate"])
        pinned = settings.join_ca_fingerprint
        if pinned and pki.fingerprint(ca) != pinned:
            raise pki.CertificateProblem(
                f"its CA is {pki.fingerprint(ca)}, not the pinned {pinned}: is something between this "
                "node and the control plane?"
            )
        pki.verify_issued_by(certificate, ca, now)
        if pki.public_key_der(certificate) != pki.public_key_der(key):
            raise pki.CertificateProblem("the certificate is not for this node's key")
        if pki.node_id_of(certificate) != answer["node_id"]:
            raise pki.CertificateProblem(f"the certificate is not for node {answer['node_id']}")
    except (KeyError, TypeError, pki.CertificateProblem) as exc:
        raise EnrollmentError(f"the control plane's enrollment answer is not usable: {exc}") from None
    return certificate


def node_capacity(path: Path) -> dict[str, int]:
    """What this machine offers: CPUs (millicores), memory and the disk holding `path` (MiB)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    return {
        "cpu_millis": cpus * 1000,
        "memory_mb": memory // 2**20,
        "disk_mb": shutil.disk_usage(existing).total // 2**20,
    }
