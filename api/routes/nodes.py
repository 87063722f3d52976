"""Nodes: single-use join tokens, enrollment (Dockyard's CA signs the node's CSR), cordon / uncordon /
drain (its replicas released again elsewhere) and removal (the certificate is revoked).

Enrollment is the one route without the API token: the join token is the credential. It is claimed
with a conditional UPDATE (`used_at IS NULL AND expires_at > now`) as the first statement of the
enrollment's transaction, so of concurrent enrollments with one token exactly one wins, on both
databases, and a failure later in the transaction (a taken name) gives the token back.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta
from typing import Annotated

from cryptography import x509
from fastapi import APIRouter, Depends, Request, status
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from api.deploys import release_again
from api.deps import CurrentActor, SessionDep, SettingsDep, TemporalDep
from api.errors import Conflict
from api.releases import TemporalConnection
from api.schemas import (
    ErrorBody,
    JoinTokenCreate,
    JoinTokenCreated,
    NodeEnroll,
    NodeEnrolled,
    NodeRead,
)
from api.store import audit, get_or_404
from core import pki
from core.fleet import active_deployments_on
from core.models import (
    Deployment,
    Environment,
    JoinToken,
    Node,
    RevokedCertificate,
    Service,
    new_id,
    utcnow,
)
from core.scheduler import NodeState
from core.settings import Settings

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])

TOKEN_PREFIX = "dyj_"
# How often the API looks at its control-plane certificate again (ensure_authority reissues it when due).
AUTHORITY_RECHECK_SECONDS = 3600

# What an admin may do to a node in each state; a state missing from an action's row is a 409.
TRANSITIONS: dict[str, dict[NodeState, NodeState]] = {
    "cordon": {
        NodeState.READY: NodeState.CORDONED,
        NodeState.CORDONED: NodeState.CORDONED,
        NodeState.DRAINING: NodeState.DRAINING,  # already takes no new replicas
    },
    "uncordon": {
        NodeState.READY: NodeState.READY,
        NodeState.CORDONED: NodeState.READY,
        NodeState.DRAINING: NodeState.READY,  # stops draining
    },
    "drain": {
        NodeState.READY: NodeState.DRAINING,
        NodeState.CORDONED: NodeState.DRAINING,
        NodeState.DRAINING: NodeState.DRAINING,
        NodeState.DOWN: NodeState.DRAINING,  # its replicas are to be replaced elsewhere
    },
}


def get_authority(request: Request) -> pki.Authority:
    """Dockyard's CA, created in the state directory on first use. A plain function: FastAPI runs it in
    a thread, so the file I/O and the lock never block the event loop."""
    state = request.app.state
    cached: tuple[pki.Authority, float] | None = getattr(state, "authority", None)
    if cached is None or time.monotonic() - cached[1] > AUTHORITY_RECHECK_SECONDS:
        settings: Settings = state.settings
        cached = (pki.ensure_authority(settings.pki_dir), time.monotonic())
        state.authority = cached
    return cached[0]


AuthorityDep = Annotated[pki.Authority, Depends(get_authority)]


class Unauthorized(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@router.post(
    "/join-tokens",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_join_token",
)
async def create_join_token(
    body: JoinTokenCreate,
    session: SessionDep,
    actor: CurrentActor,
    settings: SettingsDep,
    authority: AuthorityDep,
) -> JoinTokenCreated:
    """A token that lets one new node enroll, within `ttl_seconds`. It is answered this once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = JoinToken(
        id=new_id("jtk"),
        token_hash=token_hash(token),
        expires_at=now + timedelta(seconds=body.ttl_seconds),
        created_at=now,
    )
    session.add(row)
    audit(session, actor, "join_token.create", row.id, expires_at=_at(row.expires_at))
    await session.commit()
    command = (
        f"dockyard agent --join {settings.public_api_url} --token {token} "
        f"--ca-fingerprint {authority.fingerprint}"
    )
    return JoinTokenCreated(
        id=row.id,
        token=token,
        expires_at=row.expires_at,
        created_at=row.created_at,
        ca_fingerprint=authority.fingerprint,
        command=command,
    )


@router.post(
    "/enroll",
    status_code=status.HTTP_201_CREATED,
    operation_id="enroll_node",
    responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def enroll_node(
    body: NodeEnroll, session: SessionDep, settings: SettingsDep, authority: AuthorityDep
) -> NodeEnrolled:
    """Enroll a new node with a join token (no API token: the join token is the credential). The
    answer is the node's certificate for the key in `csr`, and the CA the agent is to trust. Repeating
    the call with the same token and key answers the same certificate."""
    now = utcnow()
    csr = pki.load_csr(body.csr)
    # A token made for a node pool's guest carries the node id the guest was named and tagged with.
    claimed = await session.execute(
        update(JoinToken)
        .where(
            JoinToken.token_hash == token_hash(body.token),
            JoinToken.used_at.is_(None),
            JoinToken.expires_at > now,
        )
        .values(used_at=now, used_by_node_id=func.coalesce(JoinToken.reserved_node_id, new_id("node")))
        .returning(JoinToken.id, JoinToken.used_by_node_id)
    )
    claim = claimed.one_or_none()
    if claim is None:
        await session.rollback()
        node = await _earlier_enrollment(session, body.token, csr)
        return _enrolled(node, authority, settings)
    token_id, node_id = claim[0], str(claim[1])
    certificate = pki.issue_node_certificate(
        authority,
        csr,
        node_id,
        now=now,
        days=settings.node_certificate_days,
        hosts=[body.address.rpartition(":")[0]],
    )
    node = Node(
        id=node_id,
        name=body.name,
        address=body.address,
        state=NodeState.READY.value,
        labels=body.labels,
        capacity=body.capacity.model_dump() if body.capacity else {},
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
        raise Conflict(await _name_taken(session, body.name)) from None
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
    return _enrolled(node, authority, settings)


async def _earlier_enrollment(session: AsyncSession, token: str, csr: x509.CertificateSigningRequest) -> Node:
    """The node this token already enrolled, when the same key asks again (an agent repeating a call
    whose answer it lost); otherwise the reason the token is refused, as a 401."""
    row = await session.scalar(select(JoinToken).where(JoinToken.token_hash == token_hash(token)))
    if row is None:
        raise Unauthorized("unknown join token: create one with POST /v1/nodes/join-tokens")
    if row.used_at is not None:
        node = await session.get(Node, row.used_by_node_id) if row.used_by_node_id else None
        if node is not None and node.removed_at is None and _same_key(node, csr):
            return node
        raise Unauthorized(f"join token already used by node {row.used_by_node_id} at {_at(row.used_at)}")
    raise Unauthorized(f"join token expired at {_at(row.expires_at)}")


def _same_key(node: Node, csr: x509.CertificateSigningRequest) -> bool:
    return pki.public_key_der(pki.load_certificate(node.certificate)) == pki.public_key_der(csr)


async def _name_taken(session: AsyncSession, name: str) -> str:
    holder = await session.scalar(select(Node.id).where(Node.name == name, Node.removed_at.is_(None)))
    return (
        f"name: a node named {name!r} is already enrolled ({holder}); "
        f"remove it first (DELETE /v1/nodes/{holder}) or choose another name"
    )


def _enrolled(node: Node, authority: pki.Authority, settings: Settings) -> NodeEnrolled:
    return NodeEnrolled(
        node_id=node.id,
        name=node.name,
        certificate=node.certificate,
        ca_certificate=pki.certificate_pem(authority.certificate),
        control_plane_identity=pki.CONTROL_PLANE_IDENTITY,
        cert_not_after=node.cert_not_after,
        gateway_url=settings.public_agent_gateway_url,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
    )


@router.get("", operation_id="list_nodes")
async def list_nodes(session: SessionDep, _: CurrentActor, include_removed: bool = False) -> list[NodeRead]:
    query = select(Node).order_by(Node.created_at, Node.id)
    if not include_removed:
        query = query.where(Node.removed_at.is_(None))
    return [NodeRead.model_validate(node) for node in await session.scalars(query)]


@router.get("/{node_id}", operation_id="get_node")
async def get_node(node_id: str, session: SessionDep, _: CurrentActor) -> NodeRead:
    return NodeRead.model_validate(await get_or_404(session, Node, node_id))


@router.post("/{node_id}/cordon", operation_id="cordon_node")
async def cordon_node(node_id: str, session: SessionDep, actor: CurrentActor) -> NodeRead:
    """No new replicas on this node; the ones it runs stay."""
    return await _change_state(session, node_id, "cordon", actor)


@router.post("/{node_id}/uncordon", operation_id="uncordon_node")
async def uncordon_node(node_id: str, session: SessionDep, actor: CurrentActor) -> NodeRead:
    """The node takes new replicas again (and stops draining)."""
    return await _change_state(session, node_id, "uncordon", actor)


@router.post("/{node_id}/drain", operation_id="drain_node")
async def drain_node(
    node_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, actor: CurrentActor
) -> NodeRead:
    """No new replicas, and the ones it runs move elsewhere: every ACTIVE deployment with a replica
    here is released again, so its replicas start on other nodes before these drain and stop."""
    node = await _change_state(session, node_id, "drain", actor)
    await _release_elsewhere(session, settings, temporal, actor, node_id, "deployment.drain")
    return node


async def _release_elsewhere(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: str,
    node_id: str,
    action: str,
) -> None:
    """Release again every ACTIVE deployment with a replica on the node: the scheduler places the new
    replicas on the other READY nodes, and they serve before the ones here are stopped."""
    affected = [
        deployment_id for deployment_id, _, _ in (await session.execute(active_deployments_on(node_id)))
    ]
    for deployment_id in affected:
        deployment = await get_or_404(session, Deployment, deployment_id)
        service = await get_or_404(session, Service, deployment.service_id)
        environment = await get_or_404(session, Environment, deployment.environment_id)
        await release_again(
            session, settings, temporal, actor, service, environment, deployment, action=action
        )


async def _change_state(session: AsyncSession, node_id: str, action: str, actor: str) -> NodeRead:
    node = await get_or_404(session, Node, node_id)
    if node.removed_at is not None:
        raise Conflict(f"node {node_id} was removed at {_at(node.removed_at)}")
    current = NodeState(node.state)
    if current is NodeState.DOWN and action in ("cordon", "uncordon"):
        return await _change_state_when_back(session, node, action, actor)
    target = TRANSITIONS[action].get(current)
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
    return NodeRead.model_validate(node)


async def _change_state_when_back(session: AsyncSession, node: Node, action: str, actor: str) -> NodeRead:
    """A DOWN node stays DOWN until it answers; cordon and uncordon choose the state it comes back in."""
    back = NodeState.CORDONED if action == "cordon" else NodeState.READY
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
    return NodeRead.model_validate(node)


@router.delete("/{node_id}", operation_id="remove_node")
async def remove_node(
    node_id: str, session: SessionDep, actor: CurrentActor, force: bool = False
) -> NodeRead:
    """Forget the node and revoke its certificate: the control plane refuses it from now on. A node
    that still runs replicas of active deployments is refused (409): drain it first, so they move
    without a failed request; `force=true` removes it anyway (its replicas are lost with it). Removing
    a removed node changes nothing."""
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
    return NodeRead.model_validate(node)
