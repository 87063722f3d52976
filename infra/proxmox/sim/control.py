"""The test control API, outside /api2 (same API token as the PVE API, `Authorization: PVEAPIToken=...`):

GET    /_sim/guests              every guest: vmid, kind, node, status, lock, address, config, agent
GET    /_sim/requests?since=N    every /api2 request after sequence number N, with its verdict
GET    /_sim/faults              the fault knobs (see faults.py)
PUT    /_sim/faults              change some knobs: {"offline_nodes": ["pve2"]}
DELETE /_sim/faults              clear them all
POST   /_sim/reset               clear faults, destroy every guest but the templates (agents stopped)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from infra.proxmox.sim.base import PveError

if TYPE_CHECKING:
    from infra.proxmox.sim.app import Response, Simulator


def handle_control(
    sim: Simulator, method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> Response:
    from infra.proxmox.sim.app import _error, _json

    try:
        sim.principal_for_control(headers)
        return _json(200, "OK", {"data": _dispatch(sim, method, path.rstrip("/"), query, body)})
    except PveError as error:
        return _error(error)


def _dispatch(sim: Simulator, method: str, path: str, query: str, body: bytes) -> Any:
    if (method, path) == ("GET", "/_sim/guests"):
        return guests(sim)
    if (method, path) == ("GET", "/_sim/requests"):
        since = int(parse_qs(query).get("since", ["0"])[0])
        return [record for record in list(sim.requests) if record["seq"] > since]
    if path == "/_sim/faults":
        if method == "PUT":
            sim.faults.update(_body(body))
        elif method == "DELETE":
            sim.faults.clear()
        elif method != "GET":
            raise PveError(501, f"Method '{method} {path}' not implemented")
        return sim.faults.view()
    if (method, path) == ("POST", "/_sim/reset"):
        return reset(sim)
    raise PveError(501, f"Method '{method} {path}' not implemented")


def _body(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        raise PveError(400, "the body is not JSON") from None
    if not isinstance(decoded, dict):
        raise PveError(400, "the body is not a JSON object")
    return decoded


def guests(sim: Simulator) -> list[dict[str, Any]]:
    with sim.cluster.lock:
        listed = sorted(sim.cluster.guests.values(), key=lambda guest: guest.vmid)
        return [
            {
                "vmid": guest.vmid,
                "kind": guest.kind,
                "node": guest.node,
                "name": guest.name,
                "status": guest.status,
                "template": guest.template,
                "lock": guest.lock,
                "address": guest.address,
                "config": dict(guest.config),
                "files": sorted(guest.files),
                "agent_ready": guest.agent_ready_at is not None and guest.status == "running",
                "agent": sim.agents.view(guest.vmid),
            }
            for guest in listed
        ]


def reset(sim: Simulator) -> dict[str, Any]:
    """Back to the cluster as it started (tasks and recorded requests stay)."""
    sim.faults.clear()
    for task in sim.tasks.running():
        task.aborted.set()
    for task in sim.tasks.running():
        task.done.wait(10)
    with sim.cluster.lock:
        removed = [guest for guest in sim.cluster.guests.values() if not _is_initial(sim, guest.vmid)]
        for guest in removed:
            sim.cluster.guests.pop(guest.vmid)
            for volume in guest.disks().values():
                sim.cluster.remove_volume(guest.node, volume)
            if guest.address:
                sim.cluster.addresses.give_back(guest.address)
        for guest in sim.cluster.guests.values():
            guest.config.pop("lock", None)
    for guest in removed:
        sim.agents.destroy(guest.vmid)
    return {"removed": [guest.vmid for guest in removed]}


def _is_initial(sim: Simulator, vmid: int) -> bool:
    return any(int(template["vmid"]) == vmid for template in sim.cluster.spec["templates"])
