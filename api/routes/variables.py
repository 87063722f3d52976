"""A service's variables per environment (Railway's "Variables").

Changes are staged: nothing is redeployed; the next deployment of the service in the environment
(and of the environments inheriting from it) gives its replicas the new variables. Values go back
to the authenticated caller, as in Railway, but never into the audit trail or an error message.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.variables import VariablesRead, VariablesUpdate
from core.models import Environment, Service, Variable
from core.secrets import SecretBox, secret_box
from domain.audit import audit
from domain.authorization import Permission, service_in_environment
from domain.errors import Conflict
from domain.variables import invalid_variables, variable_layers

router = APIRouter(prefix="/v1/services/{service_id}/variables", tags=["variables"])


async def _read(
    session: SessionDep, box: SecretBox, service: Service, environment: Environment
) -> VariablesRead:
    layers = await variable_layers(session, box, service, environment)
    return VariablesRead(
        environment=environment.name, variables=dict(sorted(layers.own.items())), inherited=layers.inherited
    )


async def _stored(session: SessionDep, service: Service, environment: Environment) -> dict[str, Variable]:
    rows = await session.scalars(
        select(Variable).where(Variable.service_id == service.id, Variable.environment_id == environment.id)
    )
    return {row.name: row for row in rows}


@router.get("", operation_id="get_variables")
async def get_variables(
    service_id: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: str = "production",
) -> VariablesRead:
    """The service's variables in `environment`, and those it inherits from its base environments
    (their values: a project's viewers may not read them)."""
    service, env = await service_in_environment(
        session, actor, Permission.READ_SECRETS, service_id, environment
    )
    return await _read(session, secret_box(settings), service, env)


@router.put("", operation_id="update_variables")
async def update_variables(
    service_id: str,
    body: VariablesUpdate,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: str = "production",
) -> VariablesRead:
    """Set (`"NAME": "value"`) or delete (`"NAME": null`) variables; names left out are kept.

    Nothing is redeployed: the change is staged, and the next deployment picks it up.
    """
    if problems := invalid_variables(body.variables):
        raise RequestValidationError(
            [
                {"loc": ("body", "variables", name), "msg": reason, "type": "value_error"}
                for name, reason in problems.items()
            ]
        )
    service, env = await service_in_environment(
        session, actor, Permission.WRITE_VARIABLES, service_id, environment
    )
    box = secret_box(settings)
    stored = await _stored(session, service, env)
    written, deleted = [], []
    for name, value in sorted(body.variables.items()):
        row = stored.get(name)
        if value is None:
            if row is not None:
                await session.delete(row)
                deleted.append(name)
        elif row is None:
            session.add(
                Variable(service_id=service.id, environment_id=env.id, name=name, value=box.encrypt(value))
            )
            written.append(name)
        else:
            row.value = box.encrypt(value)
            written.append(name)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "variables: changed by another request at the same time; send the change again"
        ) from None
    # Read back before committing: a key that cannot decrypt what is stored leaves nothing half-done.
    result = await _read(session, box, service, env)
    audit(session, actor, "variables.update", service.id, environment=env.name, set=written, deleted=deleted)
    await session.commit()
    return result


@router.delete("/{name}", operation_id="delete_variable")
async def delete_variable(
    service_id: str,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: str = "production",
) -> VariablesRead:
    """Delete one variable of the environment (an inherited one is deleted in its own environment).

    Nothing is redeployed: the change is staged, and the next deployment picks it up.
    """
    service, env = await service_in_environment(
        session, actor, Permission.WRITE_VARIABLES, service_id, environment
    )
    row = (await _stored(session, service, env)).get(name)
    if row is None:
        raise HTTPException(404, f"variable {name!r} is not set in environment {env.name!r}")
    await session.delete(row)
    await session.flush()
    result = await _read(session, secret_box(settings), service, env)
    audit(session, actor, "variables.delete", service.id, environment=env.name, deleted=[name])
    await session.commit()
    return result
