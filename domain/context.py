"""What is known of the request being served, for the audit log: its address, its caller, the project it
acts in (noted as they become known: `begin` by the API, `note_actor` by authentication, `note_project`
by authorization). A context variable: each request, and each task, has its own."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from domain.actors import Actor


@dataclass
class RequestNotes:
    address: str | None = None
    actor: str | None = None
    project_id: str | None = None


_notes: ContextVar[RequestNotes | None] = ContextVar("dockyard_request_notes", default=None)


def begin(address: str | None) -> None:
    """A request begins: what it records is from `address`."""
    _notes.set(RequestNotes(address=address))


def note_actor(actor: Actor) -> None:
    if (notes := _notes.get()) is not None:
        notes.actor = str(actor)


def note_project(project_id: str) -> None:
    if (notes := _notes.get()) is not None:
        notes.project_id = project_id


def notes() -> RequestNotes:
    return _notes.get() or RequestNotes()
