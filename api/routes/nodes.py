"""Nodes: join tokens, enrollment, cordon / uncordon / drain and removal (the operations: domain/nodes.py).

Enrollment is the one route without the API token: the join token is the credential.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from sqlalchemy import select

from api.deps import AdminActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.common import ErrorBody
from api.schemas.nodes import JoinTokenCreate, JoinTokenCreated, NodeEnroll, NodeEnrolled, NodeRead
from core import pki
from core.models import Node
from core.node_states import NodeAction
from core.settings import Settings
from domain import nodes
from domain.store import get_or_404

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])

# How often the API looks at its control-plane certificate again (ensure_authority reissues it when due).
AUTHORITY_RECHECK_SECONDS = 3600


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


@router.post(
    "/join-tokens",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_join_token",
)
async def create_join_token(
    body: JoinTokenCreate,
    session: SessionDep,
    actor: AdminActor,
    settings: SettingsDep,
    authority: AuthorityDep,
) -> JoinTokenCreated:
    """A token that lets one new node enroll, within `ttl_seconds`. It is answered this once."""
    token, row = await nodes.create_join_token(session, actor, body.ttl_seconds)
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
    enrollment = nodes.Enrollment(
        token=body.token,
        csr=body.csr,
        name=body.name,
        address=body.address,
        labels=body.labels,
        capacity=body.capacity.model_dump() if body.capacity else {},
    )
    node = await nodes.enroll(session, settings, authority, enrollment)
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
async def list_nodes(session: SessionDep, actor: AdminActor, include_removed: bool = False) -> list[NodeRead]:
    query = select(Node).order_by(Node.created_at, Node.id)
    if not include_removed:
        query = query.where(Node.removed_at.is_(None))
    return [NodeRead.model_validate(node) for node in await session.scalars(query)]


@router.get("/{node_id}", operation_id="get_node")
async def get_node(node_id: str, session: SessionDep, actor: AdminActor) -> NodeRead:
    return NodeRead.model_validate(await get_or_404(session, Node, node_id))


@router.post("/{node_id}/cordon", operation_id="cordon_node")
async def cordon_node(node_id: str, session: SessionDep, actor: AdminActor) -> NodeRead:
    """No new replicas on this node; the ones it runs stay."""
    return NodeRead.model_validate(await nodes.change_state(session, node_id, NodeAction.CORDON, actor))


@router.post("/{node_id}/uncordon", operation_id="uncordon_node")
async def uncordon_node(node_id: str, session: SessionDep, actor: AdminActor) -> NodeRead:
    """The node takes new replicas again (and stops draining)."""
    return NodeRead.model_validate(await nodes.change_state(session, node_id, NodeAction.UNCORDON, actor))


@router.post("/{node_id}/drain", operation_id="drain_node")
async def drain_node(
    node_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, actor: AdminActor
) -> NodeRead:
    """No new replicas, and the ones it runs move elsewhere: every ACTIVE deployment with a replica
    here is redeployed, so its replicas start on other nodes before these drain and stop."""
    return NodeRead.model_validate(await nodes.drain(session, settings, temporal, node_id, actor))


@router.delete("/{node_id}", operation_id="remove_node")
async def remove_node(node_id: str, session: SessionDep, actor: AdminActor, force: bool = False) -> NodeRead:
    """Forget the node and revoke its certificate: the control plane refuses it from now on. A node
    that still runs replicas of active deployments is refused (409): drain it first, so they move
    without a failed request; `force=true` removes it anyway (its replicas are lost with it). Removing
    a removed node changes nothing."""
    return NodeRead.model_validate(await nodes.remove(session, node_id, actor, force=force))
