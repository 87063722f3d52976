"""An environment's variables."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import Body
from core import limits


class VariablesUpdate(Body):
    """Merged into the environment's variables, like Railway's raw editor: names left out are kept."""

    multiline = frozenset({"variables"})  # values may span lines (certificates, keys)

    variables: dict[str, str | None] = Field(
        description=(
            '{"NAME": "value"} sets NAME, {"NAME": null} deletes it. Names: letters, digits and _, '
            f"not starting with a digit, at most {limits.VARIABLE_NAME_MAX_LENGTH} characters; values at "
            f"most {limits.VARIABLE_VALUE_MAX_BYTES} bytes (UTF-8); "
            f"reserved: {', '.join(sorted(limits.RESERVED_VARIABLES))}."
        ),
        json_schema_extra={
            "propertyNames": {
                "pattern": limits.VARIABLE_NAME_PATTERN,
                "maxLength": limits.VARIABLE_NAME_MAX_LENGTH,
            }
        },
    )


class VariablesRead(BaseModel):
    environment: str
    variables: dict[str, str] = Field(description="set in this environment")
    inherited: dict[str, str] = Field(
        description="from the base environment chain (nearest wins); `variables` override them"
    )
