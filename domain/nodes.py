"""Nodes: single-use join tokens, enrollment (Dockyard's CA signs the node's CSR), cordon / uncordon /
drain (its replicas redeployed elsewhere) and removal (the certificate is revoked).

The API's routes (api/routes/nodes.py) and the node-pool activities (activities/pools.py) both do
these through here, so a pool decommissioning a guest does exactly what an admin's call does.

A join token is claimed with a conditional UPDATE (`used_at IS NULL AND expires_at > now`) as the first
statement of the enrollment's transaction, so of concurrent enrollments with one token exactly one wins,
on both databases, and a failure later in the transaction (a taken name) gives the token back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import pki
from core.fleet import active_deployments_on
from core.models import Deployment, Environment, JoinToken, Node, RevokedCertificate, Service, new_id, utcnow
from core.node_states import NodeAction, applies_when_back, next_state, state_when_back
from core.scheduler import NodeState
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.deployments import redeploy
from domain.errors import Conflict, Unauthenticated
from domain.store import get_or_404
from domain.temporal import TemporalConnection

JOIN_TOKEN_PREFIX = "dyj_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_join_token(
    now: datetime, ttl_seconds: int, reserved_node_id: str | None = None
) -> tuple[str, JoinToken]:
    """A token (answered once, stored only hashed) and its row, not yet added to a session."""
    token = JOIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = JoinToken(
        id=new_id("jtk"),
        token_hash=token_hash(token),
        expires_at=now + timedelta(seconds=ttl_seconds),
        reserved_node_id=reserved_node_id,
        created_at=now,
    )
    return token, row


async def create_join_token(session: AsyncSession, actor: Actor, ttl_seconds: int) -> tuple[str, JoinToken]:
    """A token that lets one new node enroll, within `ttl_seconds`; committed."""
    token, row = new_join_token(utcnow(), ttl_seconds)
    session.add(row)
    audit(session, actor, "join_token.create", row.id, expires_at=_at(row.expires_at))
    await session.commit()
    return token, row


@dataclass(frozen=True)
class Enrollment:
    """What a node sends to enroll: its join token, its key's CSR and how it is reached."""

    token: str
    csr: str
    name: str
    address: str
    labels: dict[str, str]
    capacity: dict[str, Any]


async def enroll(
    session: AsyncSession, settings: Settings, authority: pki.Authority, enrollment: Enrollment
) -> Node:
    """The enrolled node, its certificate signed for the CSR's key. The same token and key again
    answer the same node (an agent repeating a call whose answer it lost)."""
    now = utcnow()
    csr = pki.load_csr(enrollment.csr)
    # A token made for a node pool's guest carries the node id the guest was named and tagged with.
    claimed = await session.execute(
        update(JoinToken)
        .where(
            JoinToken.token_hash == token_hash(enrollment.token),
            JoinToken.used_at.is_(None),
            JoinToken.expires_at > now,
        )
        .values(used_at=now, used_by_node_id=func.coalesce(JoinToken.reserved_node_id, new_id("node")))
        .returning(JoinToken.id, JoinToken.used_by_node_id)
    )
    claim = claimed.one_or_none()
    if claim is None:
        await session.rollback()
        return await _earlier_enrollment(session, enrollment.token, csr)
    token_id, node_id = claim[0], str(claim[1])
    certificate = pki.issue_node_certificate(
        authority,
        csr,
        node_id,
        now=now,
        days=settings.node_certificate_days,
        hosts=[enrollment.address.rpartition(":")[0]],
    )
    node = Node(
        id=node_id,
        name=enrollment.name,
        address=enrollment.address,
        state=NodeState.READY.value,
        labels=enrollment.labels,
        capacity=enrollment.capacity,
        usage={},
        certificate=pki.certificate_pem(certificate),
        cert_serial=pki.serial_hex(certificate.serial_number),
        cert_not_after=certificate.not_valid_after_utc,
        created_at=now,
    )
    session.add(node)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()  # gives the token back
        if await session.get(Node, node_id) is not None:
            raise Conflict(
                f"node {node_id} is already enrolled: its join token cannot enroll it again"
            ) from None
        raise Conflict(await _name_taken(session, enrollment.name)) from None
    audit(
        session,
        f"join-token:{token_id}",
        "node.enroll",
        node.id,
        name=node.name,
        address=node.address,
        labels=node.labels,
        cert_serial=node.cert_serial,
    )
    await session.commit()
    return node


async def _earlier_enrollment(session: AsyncSession, token: str, csr: x509.CertificateSigningRequest) -> Node:
    """The node this token already enrolled, when the same key asks again; otherwise why the token
    is refused."""
    row = await session.scalar(select(JoinToken).where(JoinToken.token_hash == token_hash(token)))
    if row is None:
        raise Unauthenticated("unknown join token: create one with POST /v1/nodes/join-tokens")
    if row.used_at is not None:
        node = await session.get(Node, row.used_by_node_id) if row.used_by_node_id else None
        if node is not None and node.removed_at is None and _same_key(node, csr):
            return node
        raise Unauthenticated(f"join token already used by node {row.used_by_node_id} at {_at(row.used_at)}")
    raise Unauthenticated(f"join token expired at {_at(row.expires_at)}")


def _same_key(node: Node, csr: x509.CertificateSigningRequest) -> bool:
    return pki.public_key_der(pki.load_certificate(node.certificate)) == pki.public_key_der(csr)


async def _name_taken(session: AsyncSession, name: str) -> str:
    holder = await session.scalar(select(Node.id).where(Node.name == name, Node.removed_at.is_(None)))
    return (
        f"name: a node named {name!r} is already enrolled ({holder}); "
        f"remove it first (DELETE /v1/nodes/{holder}) or choose another name"
    )


async def change_state(session: AsyncSession, node_id: str, action: NodeAction, actor: Actor) -> Node:
    """Cordon or uncordon (or the state part of a drain) as core/node_states.py allows; committed."""
    node = await get_or_404(session, Node, node_id)
    if node.removed_at is not None:
        raise Conflict(f"node {node_id} was removed at {_at(node.removed_at)}")
    current = NodeState(node.state)
    if applies_when_back(action, current):
        return await _change_state_when_back(session, node, action, actor)
    target = next_state(action, current)
    if target is None:
        raise Conflict(f"state: node {node_id} is {current}; {action} is not possible in that state")
    if target is not current:
        # Conditional, like every later writer of `state` (heartbeats) must be: a concurrent change wins.
        changed = await session.execute(
            update(Node)
            .where(Node.id == node_id, Node.state == current.value, Node.removed_at.is_(None))
            .values(state=target.value)
            .returning(Node.id)
        )
        if changed.scalar_one_or_none() is None:
            await session.rollback()
            raise Conflict(f"node {node_id} changed while it was being {action}ed; try again")
        audit(session, actor, f"node.{action}", node_id, previous=current.value, state=target.value)
        await session.commit()
        await session.refresh(node)
    return node


async def _change_state_when_back(
    session: AsyncSession, node: Node, action: NodeAction, actor: Actor
) -> Node:
    """A DOWN node stays DOWN until it answers; cordon and uncordon choose the state it comes back in."""
    back = state_when_back(action)
    changed = await session.execute(
        update(Node)
        .where(Node.id == node.id, Node.state == NodeState.DOWN.value, Node.removed_at.is_(None))
        .values(state_before_down=back.value)
        .returning(Node.id)
    )
    if changed.scalar_one_or_none() is None:
        await session.rollback()
        raise Conflict(f"node {node.id} changed while it was being {action}ed; try again")
    audit(session, actor, f"node.{action}", node.id, state=NodeState.DOWN.value, back_as=back.value)
    await session.commit()
    await session.refresh(node)
    return node


async def drain(
    session: AsyncSession, settings: Settings, temporal: TemporalConnection, node_id: str, actor: Actor
) -> Node:
    """No new replicas, and the ones the node runs move elsewhere: every ACTIVE deployment with a
    replica there is redeployed, so its replicas start on other nodes before these drain and stop."""
    node = await change_state(session, node_id, NodeAction.DRAIN, actor)
    await redeploy_elsewhere(session, settings, temporal, actor, node_id, "deployment.drain")
    return node


async def redeploy_elsewhere(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    node_id: str,
    action: str,
) -> list[Deployment]:
    """Redeploy every ACTIVE deployment with a replica on the node: the scheduler places the new
    replicas on the other READY nodes, and they serve before the ones here are stopped."""
    affected = [
        deployment_id for deployment_id, _, _ in (await session.execute(active_deployments_on(node_id)))
    ]
    released = []
    for deployment_id in affected:
        deployment = await get_or_404(session, Deployment, deployment_id)
        service = await get_or_404(session, Service, deployment.service_id)
        environment = await get_or_404(session, Environment, deployment.environment_id)
        released.append(
            await redeploy(
                session, settings, temporal, actor, service, environment, deployment, action=action
            )
        )
    return released


async def remove(session: AsyncSession, node_id: str, actor: Actor, *, force: bool = False) -> Node:
    """Forget the node and revoke its certificate: the control plane refuses it from now on. A node
    that still runs replicas of active deployments is refused (Conflict): drain it first, so they move
    without a failed request; `force` removes it anyway (its replicas are lost with it). Removing a
    removed node changes nothing."""
    node = await get_or_404(session, Node, node_id)
    if node.removed_at is None and not force:
        serving = [row[0] for row in await session.execute(active_deployments_on(node_id))]
        if serving:
            raise Conflict(
                f"node {node_id} runs replicas of {len(serving)} active deployment(s) "
                f"({', '.join(sorted(serving)[:5])}): drain it first (POST /v1/nodes/{node_id}/drain), "
                "or remove it with force=true and lose them"
            )
    now = utcnow()
    removed = await session.execute(
        update(Node)
        .where(Node.id == node_id, Node.removed_at.is_(None))
        .values(removed_at=now)
        .returning(Node.id)
    )
    if removed.scalar_one_or_none() is not None:
        session.add(
            RevokedCertificate(
                serial=node.cert_serial,
                node_id=node.id,
                reason="node removed",
                not_after=node.cert_not_after,
                revoked_at=now,
            )
        )
        audit(
            session,
            actor,
            "node.remove",
            node_id,
            name=node.name,
            revoked_serial=node.cert_serial,
            force=force,
        )
    await session.commit()
    await session.refresh(node)
    return node


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
