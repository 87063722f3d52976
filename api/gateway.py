"""The agent gateway: the API process's second listener, where enrolled agents send their heartbeats.

HTTPS with mutual TLS: the gateway presents the control plane's certificate (dockyard://control-plane,
which agents require) and lets in only clients with a certificate from Dockyard's CA. A request is then
taken only from a current node presenting its current certificate: a removed node, a revoked or a
replaced certificate gets 403, whatever the CA signed once.

    POST /v1/heartbeats     the agent's Heartbeat → its state as the control plane sees it
    POST /v1/certificates   a CSR for a new key → the node's next certificate; the one that made the
                            call is revoked (renewal, before a third of its lifetime is left)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography import x509
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.gateway import CertificateRenewal, HeartbeatAck, RenewedCertificate
from core import mtls, pki
from core.contracts import Heartbeat
from core.db import Database
from core.fleet import mark_missing
from core.models import Node, Replica, RevokedCertificate
from core.scheduler import NodeState
from core.settings import Settings
from domain.audit import audit


def create_gateway_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()

    app = FastAPI(
        title="Dockyard agent gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )

    @app.post("/v1/heartbeats", operation_id="send_heartbeat")
    async def send_heartbeat(heartbeat: Heartbeat, node: CallingNode, request: Request) -> HeartbeatAck:
        """Record what the node reports: capacity, usage, the state of its replicas. A DOWN node that
        reports again comes back in the state it had (or the one an admin chose meanwhile)."""
        async with request.app.state.db.transaction() as session:
            state = await record_heartbeat(session, node, heartbeat, datetime.now(UTC))
        return HeartbeatAck(
            node_id=node.id, state=state, interval_seconds=settings.heartbeat_interval_seconds
        )

    @app.post("/v1/certificates", operation_id="renew_certificate")
    async def renew_certificate(
        body: CertificateRenewal, node: CallingNode, request: Request
    ) -> RenewedCertificate:
        """Issue the node's next certificate for the key in the CSR and revoke the one this request
        came with: from now on only the new one is the node's."""
        try:
            csr = pki.load_csr(body.csr)
        except pki.CertificateProblem as exc:
            raise HTTPException(422, f"csr: {exc}") from None
        authority = await asyncio.to_thread(pki.ensure_authority, settings.pki_dir)
        now = datetime.now(UTC)
        certificate = pki.issue_node_certificate(
            authority,
            csr,
            node.id,
            now=now,
            days=settings.node_certificate_days,
            hosts=[node.address.rpartition(":")[0]],
        )
        async with request.app.state.db.transaction() as session:
            await _replace_certificate(session, node, certificate, now)
        return RenewedCertificate(
            node_id=node.id,
            certificate=pki.certificate_pem(certificate),
            cert_not_after=certificate.not_valid_after_utc,
        )

    return app


async def _replace_certificate(
    session: AsyncSession, node: Node, certificate: x509.Certificate, now: datetime
) -> None:
    serial = pki.serial_hex(certificate.serial_number)
    # Conditional on the certificate the call came with: of two renewals at once, one wins.
    renewed = await session.execute(
        update(Node)
        .where(Node.id == node.id, Node.cert_serial == node.cert_serial, Node.removed_at.is_(None))
        .values(
            certificate=pki.certificate_pem(certificate),
            cert_serial=serial,
            cert_not_after=certificate.not_valid_after_utc,
        )
    )
    if not renewed.rowcount:  # type: ignore[attr-defined]
        raise HTTPException(409, f"node {node.id}: its certificate changed meanwhile; renew again")
    session.add(
        RevokedCertificate(
            serial=node.cert_serial,
            node_id=node.id,
            reason=f"renewed: superseded by {serial}",
            not_after=node.cert_not_after,
            revoked_at=now,
        )
    )
    audit(session, f"node:{node.id}", "node.renew", node.id, previous_serial=node.cert_serial, serial=serial)


async def calling_node(request: Request) -> Node:
    """The node whose current certificate made this request; 403 for anyone else."""
    certificate = mtls.peer_certificate(request.scope)
    node_id = pki.node_id_of(certificate) if certificate is not None else None
    if certificate is None or node_id is None:
        raise HTTPException(403, "only enrolled nodes may call the agent gateway, with their certificate")
    serial = pki.serial_hex(certificate.serial_number)
    async with request.app.state.db.session() as session:
        node = await session.get(Node, node_id)
        revoked = await session.scalar(
            select(RevokedCertificate.serial).where(RevokedCertificate.serial == serial)
        )
    if node is None or node.removed_at is not None or revoked is not None:
        raise HTTPException(403, f"node {node_id} was removed: its certificate {serial} is refused")
    if node.cert_serial != serial:
        raise HTTPException(403, f"certificate {serial} is not node {node_id}'s current certificate")
    return node


CallingNode = Annotated[Node, Depends(calling_node)]


async def record_heartbeat(session: AsyncSession, node: Node, heartbeat: Heartbeat, now: datetime) -> str:
    """Keep the heartbeat; answer the node's state after it."""
    changes: dict[str, Any] = {
        "last_heartbeat_at": now,
        "capacity": heartbeat.capacity.model_dump(),
        "usage": heartbeat.usage.model_dump(),
    }
    await session.execute(update(Node).where(Node.id == node.id).values(**changes))
    state = node.state
    if node.state == NodeState.DOWN.value:
        # Conditional: a concurrent admin change (drain) or heartbeat wins.
        state = node.state_before_down or NodeState.READY.value
        back = await session.execute(
            update(Node)
            .where(Node.id == node.id, Node.state == NodeState.DOWN.value)
            .values(state=state, state_before_down=None)
        )
        if not back.rowcount:  # type: ignore[attr-defined]
            state = str(await session.scalar(select(Node.state).where(Node.id == node.id)))
    for replica in heartbeat.replicas:
        # The replicas' states and addresses as the node reports them (a container that exited shows as
        # exited; one restarted by Docker is published on a new port, which the fleet watch then routes
        # to); rows the control plane already retired (removed, lost) stay retired.
        await session.execute(
            update(Replica)
            .where(
                Replica.id == replica.replica_id,
                Replica.node == node.id,
                Replica.state.not_in(("removed", "lost")),
                or_(
                    Replica.state != replica.state.value,
                    Replica.address.is_distinct_from(replica.address),
                ),
            )
            .values(state=replica.state.value, address=replica.address)
        )
    # The heartbeat lists every replica the node has: one it lacks was removed behind Dockyard's back,
    # and the fleet watch replaces it (activities/fleet.py).
    await session.execute(mark_missing(node.id, [r.replica_id for r in heartbeat.replicas], now))
    return state
