"""What every resource's bodies share: the base classes, the error body, and the name and path types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.printable import PrintableText
from core import limits
from core.images import InvalidImageReference, parse_image_reference

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
ProjectName = Annotated[DnsLabel, Field(min_length=1, max_length=63)]
ServiceName = Annotated[DnsLabel, Field(min_length=1, max_length=40)]
EnvironmentName = Annotated[DnsLabel, Field(min_length=1, max_length=20)]
HealthPath = Annotated[str, Field(pattern=limits.HEALTH_PATH_PATTERN, max_length=limits.PATH_MAX_LENGTH)]
Command = Annotated[str, Field(max_length=limits.COMMAND_MAX_LENGTH)]


def valid_image(value: str) -> str:
    try:
        parse_image_reference(value)
    except InvalidImageReference as exc:
        raise ValueError(str(exc)) from None
    return value


class Body(PrintableText):
    model_config = ConfigDict(extra="forbid")


class Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorItem(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
