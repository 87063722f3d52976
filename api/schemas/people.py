"""People: logging in, sessions, accounts, invitations and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, computed_field

from api.schemas.common import Body, Read
from domain.actors import ActorKind, PlatformRole, ProjectRole
from domain.passwords import PASSWORD_MAX_LENGTH

# Surrounding blanks (a pasted address) are dropped; case is the domain's business (kept lower-case).
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
]
PersonName = Annotated[str, Field(min_length=1, max_length=100)]
# The length rules of a new password are the domain's (domain/passwords.py): a 422 naming the field.
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
TokenName = Annotated[str, Field(min_length=1, max_length=100)]


class UserRead(Read):
    id: str
    email: str
    name: str
    role: PlatformRole
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None
    password_change_required: bool


class LoginRequest(Body):
    email: Email
    password: Password


class LoginAnswer(BaseModel):
    """The session itself travels in the HttpOnly cookie; `csrf_token` goes in X-CSRF-Token of writes."""

    user: UserRead
    session_id: str
    csrf_token: str
    password_change_required: bool


class PasswordChange(Body):
    current_password: Password
    new_password: Password


class Me(BaseModel):
    """Who the credential of the request is."""

    kind: ActorKind
    label: str
    role: PlatformRole | None
    user: UserRead | None = None
    project_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None


class SessionRead(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    address: str
    current: bool


class UserCreate(Body):
    email: Email
    name: PersonName
    role: PlatformRole = PlatformRole.MEMBER
    password: Password


class UserUpdate(Body):
    name: PersonName | None = None
    role: PlatformRole | None = None
    disabled: bool | None = Field(default=None, description="true: the account can no longer log in")


class InvitationCreate(Body):
    email: Email
    role: PlatformRole = PlatformRole.MEMBER
    project_id: str | None = Field(default=None, description="the new account joins this project")
    project_role: ProjectRole | None = Field(default=None, description="its role there (default developer)")


class InvitationCreated(BaseModel):
    """`token` (in `url` too) is answered this once: it is stored hashed."""

    id: str
    email: str
    role: PlatformRole
    project_id: str | None
    project_role: ProjectRole | None
    expires_at: datetime
    token: str
    url: str


class InvitationAccept(Body):
    token: str = Field(min_length=1, max_length=128)
    name: PersonName
    password: Password


class TokenCreate(Body):
    name: TokenName
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="none: never expires")


class TokenRead(Read):
    id: str
    name: str
    prefix: str = Field(description="the token's first characters, to tell it apart")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > datetime.now(self.created_at.tzinfo)
        )


class TokenCreated(TokenRead):
    """`token` is answered this once: it is stored hashed."""

    token: str


class MemberRead(BaseModel):
    user_id: str
    email: str
    name: str
    role: ProjectRole
    since: datetime


class MemberSet(Body):
    role: ProjectRole


class DeployTokenRead(TokenRead):
    project_id: str


class DeployTokenCreated(DeployTokenRead):
    """`token` is answered this once: it is stored hashed."""

    token: str


class AuditEventRead(Read):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    project_id: str | None
    address: str | None
    result: str
    detail: dict[str, Any]
