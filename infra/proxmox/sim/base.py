"""What every handler shares: PVE's error shapes, the request context, and the route table.

Errors are raised as `PveError` and rendered by the HTTP layer exactly as pveproxy renders them:

    400 Parameter verification failed.   {"data": null, "errors": {"param": "message"}}
    500 <message>                        {"data": null, "message": "<message>\\n"}
    401 No ticket                        (empty body)
    403 Permission check failed (/vms/100, VM.Allocate)
    501 Method 'GET /x' not implemented
    595 No route to host
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.proxmox.sim.app import Simulator

PARAMETER_VERIFICATION_FAILED = "Parameter verification failed."


class PveError(Exception):
    """An API failure: `status` and the reason phrase `message`; `errors` per parameter for a 400."""

    def __init__(
        self, status: int, message: str, errors: dict[str, str] | None = None, by_schema: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message.rstrip("\n")
        self.errors = errors
        self.by_schema = by_schema  # the request itself is invalid (not the handler refusing it)


def fail(message: str) -> PveError:
    """A handler failure (PVE's `die "...\\n"`): HTTP 500 with the message as reason phrase."""
    return PveError(500, message)


def parameter_error(errors: dict[str, str], by_schema: bool = False) -> PveError:
    """PVE's `raise_param_exc`: a 400 naming the parameters at fault."""
    return PveError(400, PARAMETER_VERIFICATION_FAILED, errors, by_schema)


def no_quorum() -> PveError:
    return fail("cluster not ready - no quorum?")


@dataclass
class Context:
    """One API call: the simulator, the authenticated user (`root@pam` or `root@pam!dockyard`), the
    validated parameters (path parameters included)."""

    sim: Simulator
    user: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return str(self.params["node"])

    @property
    def vmid(self) -> int:
        return int(self.params["vmid"])


Handler = Callable[[Context], Any]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler for a path of the schema (`/nodes/{node}/lxc/{vmid}/clone`)."""

    def register(handler: Handler) -> Handler:
        ROUTES[(method, path)] = handler
        return handler

    return register
