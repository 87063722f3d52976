"""What builders fetch from the control plane: a service's repository credential."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.services import CredentialKind


class RepoCredential(BaseModel):
    kind: CredentialKind = Field(description="how the builder uses it: HTTP basic auth, or an SSH key")
    token: str = Field(
        description="the secret: the token, or the deploy key's private key (named `token` for "
        "builders that predate deploy keys)"
    )
