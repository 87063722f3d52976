"""A service's variables per environment: what its replicas get, and the part its builds see.

An environment inherits the variables of its base environment (a preview `pr-<n>` those of the
environment it was opened against), which inherits from its own base, and so on; the nearest
environment wins. Values are stored encrypted (core.secrets.SecretBox) and decrypted only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.limits import (
    RESERVED_VARIABLES,
    VARIABLE_NAME_MAX_LENGTH,
    VARIABLE_NAME_PATTERN,
    VARIABLE_VALUE_MAX_BYTES,
)
from core.models import Environment, Service, Variable
from core.planner.environment import PREFIX as PLANNER_PREFIX
from core.secrets import SecretBox
from domain.errors import Unavailable

# production ← staging ← pr-12 is two levels; a longer chain is a misconfiguration, not a reason
# to walk the table.
MAX_BASE_LEVELS = 4

_NAME = re.compile(VARIABLE_NAME_PATTERN)


class VariableLayers(NamedTuple):
    own: dict[str, str]  # set in the environment itself
    inherited: dict[str, str]  # from its base environment chain, nearest first

    def effective(self) -> dict[str, str]:
        return {**self.inherited, **self.own}


async def effective_variables(
    session: AsyncSession, box: SecretBox, service: Service, environment: Environment
) -> dict[str, str]:
    """What a deploy of `service` in `environment` gives its replicas, decrypted."""
    return (await variable_layers(session, box, service, environment)).effective()


def build_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """The variables a build sees: the planner reads `NIXPACKS_*` only (core/planner/environment.py);
    the rest are runtime variables and stay out of build logs and image layers."""
    return {name: value for name, value in variables.items() if name.startswith(PLANNER_PREFIX)}


async def variable_layers(
    session: AsyncSession, box: SecretBox, service: Service, environment: Environment
) -> VariableLayers:
    chain = await environment_chain(session, environment)
    rows = await session.scalars(
        select(Variable).where(
            Variable.service_id == service.id, Variable.environment_id.in_([env.id for env in chain])
        )
    )
    by_environment: dict[str, dict[str, str]] = {env.id: {} for env in chain}
    for row in rows:
        by_environment[row.environment_id][row.name] = _decrypt(box, row)
    inherited: dict[str, str] = {}
    for base in reversed(chain[1:]):
        inherited.update(by_environment[base.id])
    return VariableLayers(own=by_environment[environment.id], inherited=inherited)


async def environment_chain(session: AsyncSession, environment: Environment) -> list[Environment]:
    """`environment`, then the environments it inherits from, nearest first: at most
    MAX_BASE_LEVELS bases, none twice (a cycle ends the chain), none of another project."""
    chain = [environment]
    while len(chain) <= MAX_BASE_LEVELS and (base_id := chain[-1].base_environment_id):
        base = await session.get(Environment, base_id)
        if base is None or base.project_id != environment.project_id or base in chain:
            break
        chain.append(base)
    return chain


def invalid_variables(changes: Mapping[str, str | None]) -> dict[str, str]:
    """Why each unacceptable change is refused, by name (empty when all are acceptable).
    Never quotes a value: the reasons reach the caller and may be logged by a proxy."""
    problems = {}
    for name, value in changes.items():
        if reason := _invalid_name(name) or _invalid_value(value):
            problems[name] = reason
    return problems


def _invalid_name(name: str) -> str | None:
    if len(name) > VARIABLE_NAME_MAX_LENGTH:
        return f"name longer than {VARIABLE_NAME_MAX_LENGTH} characters"
    if not _NAME.fullmatch(name):  # `$` alone would let "A\n" through
        return "not a valid variable name (letters, digits and _, not starting with a digit)"
    if name in RESERVED_VARIABLES:
        return f"reserved: {RESERVED_VARIABLES[name]}"
    return None


def _invalid_value(value: str | None) -> str | None:
    if value is None:
        return None
    if (size := len(value.encode())) > VARIABLE_VALUE_MAX_BYTES:
        return f"value is {size} bytes; at most {VARIABLE_VALUE_MAX_BYTES} are allowed"
    if "\0" in value:
        return "value contains a NUL character, which no process environment can hold"
    return None


def _decrypt(box: SecretBox, row: Variable) -> str:
    try:
        return box.decrypt(row.value)
    except ValueError as exc:  # stored with another key: the operator must restore the key
        raise Unavailable(f"variables.{row.name}: {exc}") from None
