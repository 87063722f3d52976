"""Node pools through the REST API on both databases and a real Temporal (no worker polls the pools' task
queue, so a pool's workflow is started and signalled but provisions nothing): create, list, show, resize,
decommission one guest, delete; every refusal names the field and why. Proxmox is configured to a
loopback port nothing listens on: nothing the API decides about a pool asks PVE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.db import Database
from core.models import AuditEvent, Node, NodePool, PoolNode
from core.naming import pool_workflow_id
from core.pools import PoolNodeState, PoolPolicy
from core.proxmox.spec import NodePoolSpec
from core.settings import Settings
from domain.authentication import NO_CREDENTIAL
from tests.support.api import TOKEN, api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.process import free_port
from workflows.pools import RECONCILE_SIGNAL, NodePoolInput

SPEC: dict[str, Any] = {"name": "web", "kind": "lxc", "template_vmid": 9000, "max_size": 5}


def pool_settings(database: Database, tmp_path: Path, temporal_address: str) -> Settings:
    return api_settings(database, tmp_path, temporal_address).model_copy(
        update={
            "proxmox_hosts": [f"127.0.0.1:{free_port()}"],
            "proxmox_token_id": "dockyard@pve!pools",
            "pool_reconcile_interval_seconds": 7.0,
            "pool_replace_down_after_seconds": 120.0,
            "pool_enroll_timeout_seconds": 240.0,
        }
    )


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, temporal_client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with Proxmox configured; every pool's workflow it started is terminated afterwards."""
    async with running_api(pool_settings(database, tmp_path, temporal_server.address)) as client:
        try:
            yield client
        finally:
            async with database.session() as session:
                workflow_ids = list(await session.scalars(select(NodePool.workflow_id)))
            for workflow_id in workflow_ids:
                try:
                    await temporal_client.get_workflow_handle(workflow_id).terminate(reason="test over")
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, detail: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["detail"]) == (status, detail), response.text
    return response.json()  # type: ignore[no-any-return]


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    return ok(await api.post("/v1/node-pools", json=SPEC | fields), 201)  # type: ignore[no-any-return]


async def add_guest(
    database: Database, pool_id: str, node_id: str, state: PoolNodeState, vmid: int | None = None
) -> None:
    """A guest the pool's workflow would have recorded (no worker runs it here)."""
    async with database.transaction() as session:
        session.add(
            PoolNode(
                node_id=node_id,
                pool_id=pool_id,
                state=state.value,
                kind="lxc",
                pve_node="pve1" if vmid is not None else None,
                vmid=vmid,
                workflow_id=f"provision/{node_id}",
            )
        )


async def audit_actions(database: Database, target: str) -> list[str]:
    async with database.session() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.target == target).order_by(AuditEvent.id)
        )
        return [event.action for event in events]


async def history(temporal_client: Client, pool_id: str) -> list[HistoryEvent]:
    handle = temporal_client.get_workflow_handle(pool_workflow_id(pool_id))
    return list((await handle.fetch_history()).events)


def signals(events: list[HistoryEvent]) -> list[str]:
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in events
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]


def node_states(pool: dict[str, Any]) -> dict[str, str]:
    return {node["node_id"]: node["state"] for node in pool["nodes"]}


# --- create ----------------------------------------------------------------------------------------------


async def test_create_answers_the_spec_and_starts_the_pools_workflow_signalled(
    api: httpx.AsyncClient, temporal_client: Client, database: Database
) -> None:
    body = SPEC | {
        "kind": "qemu",
        "min_size": 1,
        "size": 2,
        "pve_nodes": ["pve1", "pve2"],
        "cores": 4,
        "memory_mib": 4096,
        "disk_gib": 32,
        "vlan_tag": 20,
        "tags": ["web", "prod", "web"],
        "linked_clone": False,
        "storage": "ceph-vm",
        "labels": {"zone": "a"},
        "vmid_range": [5000, 5099],
        "ciuser": "dockyard",
        "sshkeys": ["  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 ops@example  "],
    }

    pool = ok(await api.post("/v1/node-pools", json=body), 201)

    spec = NodePoolSpec.model_validate({k: v for k, v in body.items() if k != "size"})
    assert pool["spec"] == spec.model_dump(mode="json")
    assert pool["spec"]["tags"] == ["web", "prod"]  # made distinct
    assert pool["spec"]["sshkeys"] == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 ops@example"]
    assert pool["id"].startswith("pool_")
    assert {k: pool[k] for k in ("name", "kind", "template_vmid", "min_size", "max_size", "size")} == {
        "name": "web",
        "kind": "qemu",
        "template_vmid": 9000,
        "min_size": 1,
        "max_size": 5,
        "size": 2,
    }
    assert pool["workflow_id"] == f"pool/{pool['id']}"
    assert (pool["nodes"], pool["delete_requested_at"], pool["removed_at"]) == ([], None, None)

    handle = temporal_client.get_workflow_handle(pool["workflow_id"])
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.workflow_type == "NodePoolWorkflow"
    assert description.task_queue.startswith("api-tests-")
    events = await history(temporal_client, pool["id"])
    started = events[0].workflow_execution_started_event_attributes
    [workflow_input] = await temporal_client.data_converter.decode(started.input.payloads, [NodePoolInput])
    assert workflow_input == NodePoolInput(
        pool_id=pool["id"],
        policy=PoolPolicy(replace_down_after_seconds=120),
        reconcile_interval_seconds=7,
        enroll_timeout_seconds=240,
    )
    assert signals(events) == [RECONCILE_SIGNAL]
    assert await audit_actions(database, pool["id"]) == ["node_pool.create"]


async def test_size_defaults_to_min_size(api: httpx.AsyncClient) -> None:
    pool = await create(api, min_size=2)

    assert (pool["size"], pool["min_size"], pool["max_size"]) == (2, 2, 5)


async def test_list_and_get_show_the_pools_with_their_guests(
    api: httpx.AsyncClient, database: Database
) -> None:
    web = await create(api)
    batch = await create(api, name="batch", kind="qemu", template_vmid=9001)
    await add_guest(database, web["id"], "node_a", PoolNodeState.READY, vmid=101)
    await add_guest(database, web["id"], "node_b", PoolNodeState.DESTROYED, vmid=102)
    await add_guest(database, web["id"], "node_c", PoolNodeState.PROVISIONING)
    async with database.transaction() as session:  # node_a's agent enrolled, then went silent
        session.add(
            Node(
                id="node_a",
                name="dy-a",
                address="127.0.2.1:7801",
                state="DOWN",
                certificate="-",
                cert_serial="0a",
                cert_not_after=datetime.now(UTC),
            )
        )

    listed = ok(await api.get("/v1/node-pools"))
    assert [(p["id"], p["name"]) for p in listed] == [(web["id"], "web"), (batch["id"], "batch")]
    assert node_states(listed[0]) == {"node_a": "READY", "node_c": "PROVISIONING"}
    assert [node["node_state"] for node in listed[0]["nodes"]] == ["DOWN", None]  # node_c: not enrolled
    assert listed[1]["nodes"] == []

    shown = ok(await api.get(f"/v1/node-pools/{web['id']}", params={"include_destroyed": "true"}))
    assert node_states(shown) == {"node_a": "READY", "node_b": "DESTROYED", "node_c": "PROVISIONING"}
    [guest] = [node for node in shown["nodes"] if node["node_id"] == "node_a"]
    assert guest | {"created_at": ""} == {
        "node_id": "node_a",
        "state": "READY",
        "kind": "lxc",
        "pve_node": "pve1",
        "vmid": 101,
        "address": None,
        "message": None,
        "workflow_id": "provision/node_a",
        "node_state": "DOWN",
        "created_at": "",
        "ready_at": None,
        "finished_at": None,
    }
    without = ok(await api.get(f"/v1/node-pools/{web['id']}", params={"include_destroyed": "false"}))
    assert node_states(without) == {"node_a": "READY", "node_c": "PROVISIONING"}
    assert {k: v for k, v in without.items() if k != "nodes"} == {
        k: v for k, v in shown.items() if k != "nodes"
    }

    refused(await api.get("/v1/node-pools/pool_nope"), 404, "node pool 'pool_nope' not found")


async def test_a_removed_pool_is_listed_only_on_request_and_frees_its_name(
    api: httpx.AsyncClient, database: Database
) -> None:
    old = await create(api)
    async with database.transaction() as session:
        row = await session.get(NodePool, old["id"])
        assert row is not None
        row.removed_at = datetime.now(UTC)  # what the pool's workflow does once it has no guest left

    new = await create(api)

    assert [p["id"] for p in ok(await api.get("/v1/node-pools"))] == [new["id"]]
    listed = ok(await api.get("/v1/node-pools", params={"include_removed": "true"}))
    assert [p["id"] for p in listed] == [old["id"], new["id"]]


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        pytest.param({"kind": "docker"}, "kind", "Input should be 'lxc' or 'qemu'", id="bad-kind"),
        pytest.param(
            {"min_size": 3, "max_size": 2},
            "max_size",
            "Value error, must be at least min_size (3)",
            id="min-above-max",
        ),
        pytest.param(
            {"max_size": 2, "size": 3},
            "size",
            "must be between min_size (0) and max_size (2), got 3",
            id="size-above-max",
        ),
        pytest.param(
            {"min_size": 2, "size": 1},
            "size",
            "must be between min_size (2) and max_size (5), got 1",
            id="size-below-min",
        ),
        pytest.param(
            {"tags": ["web", "dockyard"]},
            "tags",
            "Value error, 'dockyard' is Dockyard's own tag (dockyard, dyn-<node id>)",
            id="reserved-tag",
        ),
        pytest.param(
            {"tags": ["DYN-node_1"]},
            "tags",
            "Value error, 'DYN-node_1' is Dockyard's own tag (dockyard, dyn-<node id>)",
            id="reserved-node-tag",
        ),
        pytest.param(
            {"storage": "ceph-vm"},
            "storage",
            "Value error, only for full clones (linked_clone false): a linked clone stays on the template's",
            id="storage-with-linked-clone",
        ),
        pytest.param(
            {"template_vmid": 99}, "template_vmid", "Input should be greater than or equal to 100", id="vmid"
        ),
        pytest.param(
            {"ciuser": "ops"},
            "ciuser",
            "Value error, only for qemu pools: LXC guests have no cloud-init",
            id="cloud-init-on-lxc",
        ),
        pytest.param({"name": "Web_1"}, "name", "String should match pattern", id="bad-name"),
        pytest.param({"flavor": "large"}, "flavor", "Extra inputs are not permitted", id="unknown-field"),
        pytest.param(
            {"min_size": 7, "max_size": 3},
            "max_size",
            "Value error, must be at least min_size (7)",
            id="max-below-min",
        ),
    ],
)
async def test_a_bad_spec_is_refused_naming_the_field_and_nothing_is_recorded(
    api: httpx.AsyncClient, fields: dict[str, Any], field: str, reason: str
) -> None:
    response = await api.post("/v1/node-pools", json=SPEC | fields)

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == field
    if field == "name":
        assert error["reason"].startswith(reason)
    else:
        assert error["reason"] == reason
        assert response.json()["detail"] == f"{field}: {reason}"
    assert ok(await api.get("/v1/node-pools")) == []


async def test_a_name_in_use_conflicts(api: httpx.AsyncClient) -> None:
    await create(api)

    refused(
        await api.post("/v1/node-pools", json=SPEC | {"kind": "qemu"}),
        409,
        "name: a node pool named 'web' exists already",
    )
    assert len(ok(await api.get("/v1/node-pools"))) == 1


async def test_without_proxmox_settings_a_pool_is_refused_with_what_to_set(
    database: Database, tmp_path: Path
) -> None:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
    async with running_api(settings) as api:
        refused(
            await api.post("/v1/node-pools", json=SPEC),
            409,
            "Proxmox is not configured: set DOCKYARD_PROXMOX_HOSTS and DOCKYARD_PROXMOX_TOKEN_ID and "
            "_TOKEN_SECRET (or _USER and _PASSWORD) for the API and the workers (infra/proxmox/README.md)",
        )
        assert ok(await api.get("/v1/node-pools")) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/node-pools"),
        ("GET", "/v1/node-pools"),
        ("GET", "/v1/node-pools/{id}"),
        ("PATCH", "/v1/node-pools/{id}"),
        ("DELETE", "/v1/node-pools/{id}"),
        ("POST", "/v1/node-pools/{id}/nodes/node_a/decommission"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
async def test_every_pool_route_requires_the_api_token(
    api: httpx.AsyncClient, database: Database, method: str, path: str, authorization: str | None
) -> None:
    pool = await create(api, min_size=1, size=2)
    await add_guest(database, pool["id"], "node_a", PoolNodeState.READY, vmid=101)
    before = ok(await api.get(f"/v1/node-pools/{pool['id']}"))
    body = {"size": 1} if method == "PATCH" else SPEC | {"name": "other"} if method == "POST" else None
    request = api.build_request(method, path.format(id=pool["id"]), json=body)
    del request.headers["Authorization"]
    if authorization is not None:
        request.headers["Authorization"] = authorization

    response = await api.send(request)

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == NO_CREDENTIAL
    assert ok(await api.get(f"/v1/node-pools/{pool['id']}")) == before
    assert [p["name"] for p in ok(await api.get("/v1/node-pools"))] == ["web"]
    assert await audit_actions(database, pool["id"]) == ["node_pool.create"]


# --- resize ----------------------------------------------------------------------------------------------


async def test_resize_within_the_bounds_signals_the_pool(
    api: httpx.AsyncClient, temporal_client: Client, database: Database
) -> None:
    pool = await create(api, min_size=1, size=2)

    grown = ok(await api.patch(f"/v1/node-pools/{pool['id']}", json={"size": 4}))
    assert (grown["size"], grown["min_size"], grown["max_size"]) == (4, 1, 5)
    # New bounds carry the size along with them.
    bounded = ok(await api.patch(f"/v1/node-pools/{pool['id']}", json={"max_size": 3}))
    assert (bounded["size"], bounded["min_size"], bounded["max_size"]) == (3, 1, 3)
    assert (bounded["spec"]["min_size"], bounded["spec"]["max_size"]) == (1, 3)
    raised = ok(
        await api.patch(f"/v1/node-pools/{pool['id']}", json={"min_size": 0, "max_size": 8, "size": 0})
    )
    assert (raised["size"], raised["min_size"], raised["max_size"]) == (0, 0, 8)

    assert ok(await api.get(f"/v1/node-pools/{pool['id']}")) == raised
    assert signals(await history(temporal_client, pool["id"])) == [RECONCILE_SIGNAL] * 4
    assert await audit_actions(database, pool["id"]) == ["node_pool.create"] + ["node_pool.resize"] * 3


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(
            {"size": 6}, "size: must be between min_size (1) and max_size (5), got 6", id="above-max"
        ),
        pytest.param(
            {"size": 0}, "size: must be between min_size (1) and max_size (5), got 0", id="below-min"
        ),
        pytest.param(
            {"min_size": 4, "max_size": 3},
            "max_size: must be at least min_size (4), got 3",
            id="min-above-max",
        ),
        pytest.param(
            {"min_size": 6}, "max_size: must be at least min_size (6), got 5", id="min-above-old-max"
        ),
        pytest.param({"max_size": 0}, "max_size: Input should be greater than or equal to 1", id="max-zero"),
        pytest.param({"size": -1}, "size: Input should be greater than or equal to 0", id="negative"),
        pytest.param({"name": "other"}, "name: Extra inputs are not permitted", id="not-resizable"),
    ],
)
async def test_resize_outside_the_bounds_is_refused_naming_the_field(
    api: httpx.AsyncClient, temporal_client: Client, change: dict[str, Any], detail: str
) -> None:
    pool = await create(api, min_size=1, size=2)

    body = refused(await api.patch(f"/v1/node-pools/{pool['id']}", json=change), 422, detail)

    field, _, reason = detail.partition(": ")
    assert body["errors"] == [{"field": field, "reason": reason}]
    assert ok(await api.get(f"/v1/node-pools/{pool['id']}")) == pool
    assert signals(await history(temporal_client, pool["id"])) == [RECONCILE_SIGNAL]


async def test_resize_of_an_unknown_pool_is_404(api: httpx.AsyncClient) -> None:
    refused(
        await api.patch("/v1/node-pools/pool_nope", json={"size": 1}), 404, "node pool 'pool_nope' not found"
    )


# --- decommission ----------------------------------------------------------------------------------------


async def test_decommission_takes_one_ready_guest_out_and_shrinks_the_pool(
    api: httpx.AsyncClient, temporal_client: Client, database: Database
) -> None:
    pool = await create(api, min_size=1, size=2)
    await add_guest(database, pool["id"], "node_a", PoolNodeState.READY, vmid=101)
    await add_guest(database, pool["id"], "node_b", PoolNodeState.READY, vmid=102)
    path = f"/v1/node-pools/{pool['id']}/nodes/{{}}/decommission"

    shrunk = ok(await api.post(path.format("node_b")), 202)
    assert shrunk["size"] == 1
    assert node_states(shrunk) == {"node_a": "READY", "node_b": "DECOMMISSIONING"}
    # Again (a retry after a 503, say): it is on its way out already; the pool is woken once more.
    assert ok(await api.post(path.format("node_b")), 202) == shrunk

    refused(
        await api.post(path.format("node_a")),
        409,
        "size: the pool would have 0 guests, below its min_size 1: lower min_size first (PATCH), or pass "
        "replace=true to put a new guest in its place",
    )
    replaced = ok(await api.post(path.format("node_a"), params={"replace": "true"}), 202)
    assert replaced["size"] == 1
    assert node_states(replaced) == {"node_a": "DECOMMISSIONING", "node_b": "DECOMMISSIONING"}

    assert signals(await history(temporal_client, pool["id"])) == [RECONCILE_SIGNAL] * 4
    assert await audit_actions(database, "node_b") == ["node_pool.decommission"]
    assert await audit_actions(database, "node_a") == ["node_pool.decommission"]


async def test_decommission_of_an_unknown_node_is_404(api: httpx.AsyncClient, database: Database) -> None:
    pool = await create(api, size=1)
    other = await create(api, name="other")
    await add_guest(database, other["id"], "node_x", PoolNodeState.READY, vmid=101)

    refused(
        await api.post(f"/v1/node-pools/{pool['id']}/nodes/node_nope/decommission"),
        404,
        "pool node 'node_nope' not found",
    )
    refused(  # another pool's guest
        await api.post(f"/v1/node-pools/{pool['id']}/nodes/node_x/decommission"),
        404,
        "pool node 'node_x' not found",
    )
    refused(
        await api.post("/v1/node-pools/pool_nope/nodes/node_x/decommission"),
        404,
        "node pool 'pool_nope' not found",
    )


@pytest.mark.parametrize(
    ("state", "vmid", "detail"),
    [
        pytest.param(
            PoolNodeState.PROVISIONING,
            None,
            "state: pool node node_a is PROVISIONING; only a READY guest (or a FAILED one that has a vmid) "
            "can be decommissioned; wait until it is READY",
            id="provisioning",
        ),
        pytest.param(
            PoolNodeState.FAILED,
            None,
            "state: pool node node_a is FAILED; only a READY guest (or a FAILED one that has a vmid) "
            "can be decommissioned",
            id="failed-without-guest",
        ),
    ],
)
async def test_decommission_of_a_guest_not_ready_is_refused(
    api: httpx.AsyncClient, database: Database, state: PoolNodeState, vmid: int | None, detail: str
) -> None:
    pool = await create(api, size=1)
    await add_guest(database, pool["id"], "node_a", state, vmid=vmid)

    refused(await api.post(f"/v1/node-pools/{pool['id']}/nodes/node_a/decommission"), 409, detail)


async def test_a_failed_guest_with_a_vmid_is_decommissioned_without_shrinking_the_pool(
    api: httpx.AsyncClient, database: Database
) -> None:
    pool = await create(api, min_size=1, size=1)
    await add_guest(database, pool["id"], "node_a", PoolNodeState.FAILED, vmid=101)

    cleaned = ok(await api.post(f"/v1/node-pools/{pool['id']}/nodes/node_a/decommission"), 202)

    assert (cleaned["size"], node_states(cleaned)) == (1, {"node_a": "DECOMMISSIONING"})


# --- delete ----------------------------------------------------------------------------------------------


async def test_delete_scales_the_pool_to_zero_and_signals_it(
    api: httpx.AsyncClient, temporal_client: Client, database: Database
) -> None:
    pool = await create(api, min_size=2, size=3)
    await add_guest(database, pool["id"], "node_a", PoolNodeState.READY, vmid=101)

    deleted = ok(await api.delete(f"/v1/node-pools/{pool['id']}"), 202)

    assert (deleted["size"], deleted["min_size"], deleted["max_size"]) == (0, 0, 5)
    assert deleted["spec"]["min_size"] == 0
    assert deleted["delete_requested_at"] is not None and deleted["removed_at"] is None
    assert node_states(deleted) == {"node_a": "READY"}  # the pool's workflow decommissions it
    assert ok(await api.get(f"/v1/node-pools/{pool['id']}")) == deleted
    # Again: nothing changes, the pool is woken once more.
    assert ok(await api.delete(f"/v1/node-pools/{pool['id']}"), 202) == deleted
    assert signals(await history(temporal_client, pool["id"])) == [RECONCILE_SIGNAL] * 3
    assert await audit_actions(database, pool["id"]) == ["node_pool.create", "node_pool.delete"]

    being_deleted = f"node pool {pool['id']} is being deleted or was removed"
    refused(await api.patch(f"/v1/node-pools/{pool['id']}", json={"size": 1}), 409, being_deleted)
    refused(await api.post(f"/v1/node-pools/{pool['id']}/nodes/node_a/decommission"), 409, being_deleted)
    refused(  # the name stays taken until the pool is removed
        await api.post("/v1/node-pools", json=SPEC), 409, "name: a node pool named 'web' exists already"
    )
    refused(await api.delete("/v1/node-pools/pool_nope"), 404, "node pool 'pool_nope' not found")


async def test_without_temporal_a_pool_is_not_created_and_the_call_can_be_retried(
    database: Database, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # no Temporal: the pool's workflow cannot start
    async with running_api(pool_settings(database, tmp_path, nowhere)) as api:
        response = await api.post("/v1/node-pools", json=SPEC)
        assert response.status_code == 503, response.text
        assert response.json()["detail"].endswith(": the pool was not created; retry the call")
        assert ok(await api.get("/v1/node-pools", params={"include_removed": True})) == []


async def test_a_bad_query_parameter_is_a_422_naming_it(api: httpx.AsyncClient, database: Database) -> None:
    pool = await create(api, size=1)
    await add_guest(database, pool["id"], "node_q", PoolNodeState.READY, vmid=102)
    response = await api.post(
        f"/v1/node-pools/{pool['id']}/nodes/node_q/decommission", params={"replace": "maybe"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "replace"
