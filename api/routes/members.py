"""A project's members and deploy tokens (the operations: domain/members.py)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentActor, SessionDep
from api.schemas.people import DeployTokenCreated, DeployTokenRead, MemberRead, MemberSet, TokenCreate
from core.models import Membership, User
from domain import members, users
from domain.actors import ProjectRole

router = APIRouter(prefix="/v1/projects/{project_id}", tags=["members"])


def _read(membership: Membership, user: User) -> MemberRead:
    return MemberRead(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=ProjectRole(membership.role),
        since=membership.created_at,
    )


@router.get("/members", operation_id="list_members")
async def list_members(project_id: str, actor: CurrentActor, session: SessionDep) -> list[MemberRead]:
    return [_read(membership, user) for membership, user in await members.members(session, actor, project_id)]


@router.put("/members/{user_id}", operation_id="set_member")
async def set_member(
    project_id: str, user_id: str, body: MemberSet, actor: CurrentActor, session: SessionDep
) -> MemberRead:
    """Add a person to the project with a role, or change their role (owners and admins)."""
    membership = await members.set_member(session, actor, project_id, user_id, body.role)
    return _read(membership, await users.get_user(session, user_id))


@router.delete("/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="remove_member")
async def remove_member(project_id: str, user_id: str, actor: CurrentActor, session: SessionDep) -> None:
    """The person loses access to the project (its last owner cannot be removed)."""
    await members.remove_member(session, actor, project_id, user_id)


@router.get("/deploy-tokens", operation_id="list_deploy_tokens")
async def list_deploy_tokens(
    project_id: str, actor: CurrentActor, session: SessionDep
) -> list[DeployTokenRead]:
    return [
        DeployTokenRead.model_validate(t) for t in await members.deploy_tokens(session, actor, project_id)
    ]


@router.post("/deploy-tokens", status_code=status.HTTP_201_CREATED, operation_id="create_deploy_token")
async def create_deploy_token(
    project_id: str, body: TokenCreate, actor: CurrentActor, session: SessionDep
) -> DeployTokenCreated:
    """A token for CI: it deploys and reads this project only. Answered this once."""
    secret, token = await members.create_deploy_token(
        session, actor, project_id, name=body.name, expires_in_days=body.expires_in_days
    )
    return DeployTokenCreated.model_validate(
        {**DeployTokenRead.model_validate(token).model_dump(), "token": secret}
    )


@router.delete("/deploy-tokens/{token_id}", operation_id="revoke_deploy_token")
async def revoke_deploy_token(
    project_id: str, token_id: str, actor: CurrentActor, session: SessionDep
) -> DeployTokenRead:
    return DeployTokenRead.model_validate(
        await members.revoke_deploy_token(session, actor, project_id, token_id)
    )
