"""Request bodies hold printable text: a control character in any field is a 422 naming it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from core import limits


def _printable(value: object, multiline: bool, path: tuple[str | int, ...] = ()) -> None:
    """Refuse a control character anywhere in a request field (strings inside lists and dicts,
    dict keys, secrets): the database, git and exec never see one. The error's `path` locates it
    inside the field (api.errors appends it to the field's name: `variables.NAME`, `tags.0`)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        if problem := limits.control_character(value, multiline=multiline):
            raise PydanticCustomError("control_character", "{problem}", {"problem": problem, "path": path})
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _printable(item, multiline, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key).encode("unicode_escape").decode()
            _printable(key, False, (*path, name))
            _printable(item, multiline, (*path, name))


class PrintableText(BaseModel):
    """Every string of a request body is one line of printable text, except in the fields named
    in `multiline` (which may hold tab, line feed and carriage return)."""

    multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        _printable(value, multiline=info.field_name in cls.multiline)
        return value
