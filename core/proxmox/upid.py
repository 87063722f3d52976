"""UPIDs: the ids PVE gives its asynchronous tasks (clone, start, stop, delete, resize, ...).

`UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:` with pid, pstart and starttime in upper-case
hex (8 digits; pstart may take 9), a trailing colon, so 9 fields when split on ':'. The node in a UPID is
where the task runs and where its status is read (`/nodes/<node>/tasks/<upid>/status`): for a clone to
another node that is the template's node, not the target.
"""

from __future__ import annotations

import re

from pydantic import Field

from core.contracts import Contract

# PVE::Tools::upid_decode, field by field.
_UPID = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r":(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<starttime>[0-9A-Fa-f]{8})"
    r":(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)


class Upid(Contract):
    node: str = Field(min_length=1)
    pid: int = Field(ge=0)
    pstart: int = Field(ge=0)
    starttime: int = Field(ge=0, description="UNIX time the task started")
    type: str = Field(min_length=1, description="qmclone, vzclone, qmstart, vzstart, qmdestroy, ...")
    id: str = Field(default="", description="usually the vmid the task is about (a clone's is the source)")
    user: str = Field(min_length=1, description="user@realm, or user@realm!tokenid")

    def __str__(self) -> str:
        return format_upid(self)


def parse_upid(text: str) -> Upid:
    """The fields of a UPID; ValueError naming the text when it is not one."""
    match = _UPID.match(text)
    if match is None:
        raise ValueError(f"not a PVE task id (UPID:node:pid:pstart:starttime:type:id:user:): {text!r}")
    return Upid(
        node=match["node"],
        pid=int(match["pid"], 16),
        pstart=int(match["pstart"], 16),
        starttime=int(match["starttime"], 16),
        type=match["type"],
        id=match["id"],
        user=match["user"],
    )


def format_upid(upid: Upid) -> str:
    return (
        f"UPID:{upid.node}:{upid.pid:08X}:{upid.pstart:08X}:{upid.starttime:08X}"
        f":{upid.type}:{upid.id}:{upid.user}:"
    )


def is_upid(value: object) -> bool:
    return isinstance(value, str) and _UPID.match(value) is not None
