"""`dockyard pools create|list|show|resize|delete` against the real API served on loopback (both database
backends, a real Temporal with no worker on the pools' task queue), run with typer's CliRunner: what each
prints, and a refusal printed as the API's `field: reason` with exit code 1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import Database
from core.pools import PoolNodeState
from domain.authentication import NO_CREDENTIAL
from tests.integration.api.test_pools_api import add_guest, pool_settings
from tests.integration.test_cli_link import Served, cli_env, dockyard, serving
from tests.support.components import TemporalDevServer

LXC_WEB = ("pools", "create", "web", "--template", "9000", "--min", "1", "--max", "5", "--size", "2")


@pytest.fixture
async def served(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, temporal_client: Client
) -> AsyncIterator[Served]:
    """The API with Proxmox configured; the pools' workflows it started are terminated afterwards."""
    with serving(pool_settings(database, tmp_path, temporal_server.address)) as running:
        try:
            yield running
        finally:
            for pool in running.ok("GET", "/v1/node-pools", params={"include_removed": "true"}):
                try:
                    await temporal_client.get_workflow_handle(pool["workflow_id"]).terminate("test over")
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise


@pytest.fixture
def env(served: Served, tmp_path: Path) -> dict[str, str]:
    return cli_env(served, tmp_path)


def summary(name: str, pool_id: str, rest: str) -> str:
    return f"{name:<20} {pool_id:<18} {rest}"


async def test_create_list_show_resize_delete(
    served: Served, env: dict[str, str], database: Database
) -> None:
    assert dockyard(env, "pools", "list").output == (
        "no node pools yet: `dockyard pools create NAME --template VMID --size N --max N`\n"
    )

    created = dockyard(env, *LXC_WEB, "--memory", "1024", "--label", "zone=a", "--pve-node", "pve2")

    [pool] = served.ok("GET", "/v1/node-pools")
    assert created.output == summary("web", pool["id"], "lxc   template 9000   size 2 (1-5): no guests\n")
    assert (pool["spec"]["memory_mib"], pool["spec"]["labels"], pool["spec"]["pve_nodes"]) == (
        1024,
        {"zone": "a"},
        ["pve2"],
    )
    await add_guest(database, pool["id"], "node_a", PoolNodeState.READY, vmid=101)
    await add_guest(database, pool["id"], "node_b", PoolNodeState.PROVISIONING)
    dockyard(env, "pools", "create", "batch", "--kind", "qemu", "--template", "9001")
    batch = served.ok("GET", "/v1/node-pools")[1]

    assert dockyard(env, "pools", "list").output.splitlines() == [
        summary("web", pool["id"], "lxc   template 9000   size 2 (1-5): 1 PROVISIONING, 1 READY"),
        summary("batch", batch["id"], "qemu  template 9001   size 0 (0-1): no guests"),
    ]
    assert dockyard(env, "pools", "show", "web").output.splitlines() == [
        summary("web", pool["id"], "lxc   template 9000   size 2 (1-5): 1 PROVISIONING, 1 READY"),
        "  node_a             READY            pve1/101     -",
        "  node_b             PROVISIONING     -/-          -",
    ]
    assert dockyard(env, "pools", "show", batch["id"]).output.splitlines() == [
        summary("batch", batch["id"], "qemu  template 9001   size 0 (0-1): no guests"),
    ]

    resized = dockyard(env, "pools", "resize", "web", "--size", "4", "--max", "8")
    assert resized.output == summary(
        "web", pool["id"], "lxc   template 9000   size 4 (1-8): 1 PROVISIONING, 1 READY\n"
    )
    assert served.ok("GET", f"/v1/node-pools/{pool['id']}")["size"] == 4

    deleted = dockyard(env, "pools", "delete", "web")
    assert deleted.output == summary(
        "web", pool["id"], "lxc   template 9000   size 0 (0-8) (deleting): 1 PROVISIONING, 1 READY\n"
    )
    assert dockyard(env, "pools", "list").output.splitlines()[0] == summary(
        "web", pool["id"], "lxc   template 9000   size 0 (0-8) (deleting): 1 PROVISIONING, 1 READY"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--kind", "docker"),
            "cannot create the node pool: kind: Input should be 'lxc' or 'qemu' (HTTP 422)",
            id="kind",
        ),
        pytest.param(
            ("--min", "3", "--max", "2"),
            "cannot create the node pool: max_size: Value error, must be at least min_size (3) (HTTP 422)",
            id="min-above-max",
        ),
        pytest.param(
            ("--max", "2", "--size", "3"),
            "cannot create the node pool: size: must be between min_size (0) and max_size (2), got 3 "
            "(HTTP 422)",
            id="size-above-max",
        ),
        pytest.param(
            ("--spec", '{"tags": ["dockyard"]}'),
            "cannot create the node pool: tags: Value error, 'dockyard' is Dockyard's own tag "
            "(dockyard, dyn-<node id>) (HTTP 422)",
            id="reserved-tag",
        ),
        pytest.param(
            ("--spec", '{"storage": "ceph-vm"}'),
            "cannot create the node pool: storage: Value error, only for full clones (linked_clone false): "
            "a linked clone stays on the template's (HTTP 422)",
            id="storage-with-linked-clone",
        ),
    ],
)
def test_a_bad_field_is_reported_with_the_field_and_exit_code_1(
    served: Served, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = dockyard(env, "pools", "create", "web", "--template", "9000", *args, exit_code=1)

    assert (result.stdout, result.stderr) == ("", message + "\n")
    assert served.ok("GET", "/v1/node-pools") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--label", "zone"), "--label: 'zone' is not key=value"),
        (("--spec", "nope"), "--spec: not JSON (Expecting value: line 1 column 1 (char 0))"),
        (
            ("--spec", "[1]"),
            "--spec: a JSON object of spec fields, e.g. '{\"bridge\": \"vmbr1\"}' (got '[1]')",
        ),
    ],
    ids=["label-without-equals", "spec-not-json", "spec-not-an-object"],
)
def test_bad_options_are_reported_before_any_call(
    served: Served, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = dockyard(env, "pools", "create", "web", *args, exit_code=1)

    assert (result.stdout, result.stderr) == ("", message + "\n")
    assert served.ok("GET", "/v1/node-pools") == []


def test_a_name_in_use_is_reported(served: Served, env: dict[str, str]) -> None:
    dockyard(env, *LXC_WEB)

    result = dockyard(env, *LXC_WEB, exit_code=1)

    assert result.stderr == (
        "cannot create the node pool: name: a node pool named 'web' exists already (HTTP 409)\n"
    )


def test_resize_refusals_name_what_to_change(served: Served, env: dict[str, str]) -> None:
    dockyard(env, *LXC_WEB)
    [pool] = served.ok("GET", "/v1/node-pools")

    outside = dockyard(env, "pools", "resize", "web", "--size", "9", exit_code=1)
    assert outside.stderr == (
        "cannot resize: size: must be between min_size (1) and max_size (5), got 9 (HTTP 422)\n"
    )
    below = dockyard(env, "pools", "resize", "web", "--min", "6", exit_code=1)
    assert below.stderr == "cannot resize: max_size: must be at least min_size (6), got 5 (HTTP 422)\n"
    nothing = dockyard(env, "pools", "resize", "web", exit_code=1)
    assert nothing.stderr == "nothing to change: give --size, --min or --max\n"
    unknown = dockyard(env, "pools", "resize", "nope", "--size", "1", exit_code=1)
    assert unknown.stderr == f"no node pool 'nope'; node pools: web ({pool['id']})\n"
    assert served.ok("GET", f"/v1/node-pools/{pool['id']}")["size"] == 2


def test_show_and_delete_of_an_unknown_pool_list_the_pools(served: Served, env: dict[str, str]) -> None:
    assert dockyard(env, "pools", "show", "web", exit_code=1).stderr == (
        "no node pool 'web'; node pools: none\n"
    )
    assert dockyard(env, "pools", "delete", "web", exit_code=1).stderr == (
        "no node pool 'web'; node pools: none\n"
    )


def test_a_wrong_token_is_reported(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    result = dockyard(cli_env(served, tmp_path, DOCKYARD_API_TOKEN="wrong"), "pools", "list", exit_code=1)

    assert result.stderr == (
        f"the API at {served.url} refused the token ({NO_CREDENTIAL}): `dockyard login`, or set "
        "DOCKYARD_API_TOKEN (a local installation keeps it in secrets.env in its state directory)\n"
    )
