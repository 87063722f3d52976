"""PVE's failures as values: what kind each is, and a message naming the PVE node, the vmid and PVE's reason.

The kinds decide what Dockyard does next (activities turn them into Temporal errors):

- TRANSIENT, retried: 5xx `can't lock file ... - got timeout`, `CT is locked (disk)`, `cluster not ready -
  no quorum?`, `QEMU guest agent is not running`, connection errors, and any 5xx not known to be permanent.
- NODE_UNAVAILABLE, not retried (choose another PVE node): 595, the node cannot be reached.
- VMID_TAKEN, retried with a new vmid: 400 `errors.vmid` on clone/create/nextid, `... already exists`.
- GUEST_MISSING: `Configuration file ... does not exist`; a destroy is then done, anything else fails.
- ALREADY_RUNNING / NOT_RUNNING: `CT 100 already running`, `VM 100 not running`; a start / stop is done.
- PERMANENT, not retried: 400 parameter verification (with the per-field errors), 401, 403, 501, other
  `does not exist`, no space left, local storage where shared is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field

from core.contracts import Contract


class PveErrorKind(StrEnum):
    TRANSIENT = "transient"
    NODE_UNAVAILABLE = "node-unavailable"
    VMID_TAKEN = "vmid-taken"
    GUEST_MISSING = "guest-missing"
    ALREADY_RUNNING = "already-running"
    NOT_RUNNING = "not-running"
    PERMANENT = "permanent"


RETRYABLE_KINDS = frozenset({PveErrorKind.TRANSIENT, PveErrorKind.VMID_TAKEN})

# Checked in order against the reason of a 5xx (or a failed task). The first match wins.
_GUEST_AGENT_DOWN = re.compile(r"guest agent is not running", re.I)
_REASON_KINDS: tuple[tuple[re.Pattern[str], PveErrorKind], ...] = (
    (_GUEST_AGENT_DOWN, PveErrorKind.TRANSIENT),
    (re.compile(r"\balready running\b", re.I), PveErrorKind.ALREADY_RUNNING),
    (re.compile(r"\bnot running\b", re.I), PveErrorKind.NOT_RUNNING),
    (re.compile(r"Configuration file '[^']*' does not exist|\bno such (VM|CT|guest)\b", re.I),
     PveErrorKind.GUEST_MISSING),
    (re.compile(r"\balready exists\b", re.I), PveErrorKind.VMID_TAKEN),
    (re.compile(r"can't lock file|\bis locked\b|got timeout|no quorum|cluster not ready|timeout", re.I),
     PveErrorKind.TRANSIENT),
    (re.compile(
        r"does not exist|not found|no space left|not enough (free )?space|out of space|uses local storage"
        r"|is not a template|not supported|unable to parse|permission|not allowed",
        re.I,
    ), PveErrorKind.PERMANENT),
)  # fmt: skip
# Requests whose `vmid`/`newid` parameter names the guest to make: a 400 on it means the id is taken.
ALLOCATING_ACTIONS = frozenset({"clone", "create", "nextid"})


class PveError(Contract):
    """One failed PVE call or task, classified. `str()` is the message users see."""

    kind: PveErrorKind
    reason: str = Field(description="PVE's own words: the reason phrase, the task's error line")
    status: int | None = Field(default=None, description="HTTP status; None for connection errors and tasks")
    field_errors: dict[str, str] = Field(default_factory=dict, description="400: parameter → message")
    action: str = Field(default="", description="what Dockyard was doing: clone, start, config, ...")
    node: str | None = Field(default=None, description="the PVE node the call was about")
    vmid: int | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"PVE node {self.node}" if self.node else "",
                f"vmid {self.vmid}" if self.vmid else "",
            )
            if part
        )
        status = f"{self.status} " if self.status is not None else ""
        fields = "".join(f"; {name}: {message}" for name, message in sorted(self.field_errors.items()))
        subject = f"{self.action or 'PVE call'} failed" + (f" on {where}" if where else "")
        return f"{subject}: {status}{self.reason}{fields}"


def classify(
    status: int | None,
    reason: str,
    field_errors: Mapping[str, Any] | None = None,
    *,
    action: str = "",
    node: str | None = None,
    vmid: int | None = None,
) -> PveError:
    """Classify a PVE answer; `status` None is a connection error."""
    errors = {str(name): str(message).strip() for name, message in (field_errors or {}).items()}
    kind = _kind(status, reason, errors, action)
    return PveError(
        kind=kind,
        reason=reason.strip(),
        status=status,
        field_errors=errors,
        action=action,
        node=node,
        vmid=vmid,
    )


def classify_task_failure(message: str, *, action: str = "", node: str | None = None,
                          vmid: int | None = None) -> PveError:  # fmt: skip
    """A task's failure (its exit status or `TASK ERROR:` line), kind read from the words alone."""
    return PveError(
        kind=_reason_kind(message) or PveErrorKind.PERMANENT,
        reason=message.strip(),
        action=action,
        node=node,
        vmid=vmid,
    )


def _kind(status: int | None, reason: str, errors: Mapping[str, str], action: str) -> PveErrorKind:
    if status is None:
        return PveErrorKind.TRANSIENT
    if status == 595:
        return PveErrorKind.NODE_UNAVAILABLE
    if status in (401, 403, 501):
        return PveErrorKind.PERMANENT
    if status == 400:
        taken_id = next((errors[name] for name in ("vmid", "newid") if name in errors), None)
        if taken_id is not None and (action in ALLOCATING_ACTIONS or "already exists" in taken_id):
            return PveErrorKind.VMID_TAKEN
        return PveErrorKind.PERMANENT
    if status >= 500:
        return _reason_kind(reason) or PveErrorKind.TRANSIENT
    if status == 404:
        return PveErrorKind.PERMANENT
    return _reason_kind(reason) or PveErrorKind.PERMANENT


def _reason_kind(reason: str) -> PveErrorKind | None:
    return next((kind for pattern, kind in _REASON_KINDS if pattern.search(reason)), None)


class PveCallError(Exception):
    """Raised by the I/O edge (activities/proxmox/client.py) with the classified error as its value."""

    def __init__(self, error: PveError) -> None:
        super().__init__(str(error))
        self.error = error
