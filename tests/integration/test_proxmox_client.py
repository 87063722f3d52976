"""Dockyard's Proxmox adapter (activities/proxmox) against the PVE simulator through plain proxmoxer: a LXC
and a VM provisioned and decommissioned step by step, every step repeated as a retry would, and PVE's
failures (595, no quorum, lock timeouts, a full disk, a taken vmid, bad parameters) arriving as the
Temporal errors the workflows act on. The simulator fails any test whose requests a real PVE would refuse.

Booted guests run the default agent launcher (`dockyard agent` with the join data, on the host): the join
URL here leads nowhere, so they never enroll; enrollment end to end belongs to the provisioning workflow's
tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.proxmox import ProxmoxActivities, PveClient
from activities.proxmox.contracts import (
    GuestAllocationRequest,
    GuestConfigRequest,
    GuestDestroyRequest,
    GuestRef,
    GuestRequest,
    GuestStopRequest,
    JoinDataRequest,
    PveNodeRequest,
    PveTaskRequest,
)
from core.proxmox import params
from core.proxmox.errors import PveCallError, PveErrorKind
from core.proxmox.joindata import JoinData, join_env_file, parse_lxc_env
from core.proxmox.params import PveCall
from core.proxmox.spec import GuestKind, NodePoolSpec
from core.settings import load_settings
from tests.support.process import free_port
from tests.support.pve import PveSimulator, describe, pve  # noqa: F401  (the `pve` fixture)

# tests/support/pve.py's control client passes its CA as `verify=<path>`, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:`verify=<str>` is deprecated:DeprecationWarning")
T = TypeVar("T")
NODE_ID = "node_0a1b2c3d4e5f"
JOIN = JoinData(
    join_url="https://127.0.0.1:9/",
    join_token="djt_integration",
    node_name="dy-0a1b2c3d4e5f",
    labels={"zone": "a"},
)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx1fXQ5JxkL0q0bYk7QJ8u3c0fOa2V3cQn0mL4xS6e9 ops@example"
LXC = NodePoolSpec(name="workers", kind=GuestKind.LXC, template_vmid=9000, memory_mib=1024, disk_gib=12)
QEMU = NodePoolSpec(
    name="vms",
    kind=GuestKind.QEMU,
    template_vmid=9001,
    memory_mib=2048,
    disk_gib=20,
    ciuser="dockyard",
    sshkeys=[KEY],
)


@pytest.fixture(scope="module")
def pve_simulator() -> Iterator[PveSimulator]:
    """The `pve` fixture's simulator, with a 'no such task' window long enough to be met on every task."""
    with PveSimulator(hidden_task_seconds=0.5, guest_launcher=None) as simulator:
        yield simulator
        violations = simulator.contract_violations()
    if violations:
        pytest.fail(f"requests a real PVE would refuse:\n{describe(violations)}", pytrace=False)


def client_for(sim: PveSimulator, **overrides: Any) -> PveClient:
    settings = load_settings(
        proxmox_hosts=[f"{sim.host}:{sim.port}"],
        proxmox_token_id=sim.token_id,
        proxmox_token_secret=sim.token_secret,
        proxmox_ca_file=sim.ca_file,
    )
    client = PveClient.from_settings(settings)
    for name, value in overrides.items():
        setattr(client, name, value)
    return client


@pytest.fixture
def proxmox(pve: PveSimulator) -> ProxmoxActivities:  # noqa: F811
    return ProxmoxActivities(load_settings(), client_for(pve))


async def run(activity: Callable[[Any], Awaitable[T]], request: Any) -> T:
    return await ActivityEnvironment().run(activity, request)


async def until_ok(activity: Callable[[Any], Awaitable[T]], request: Any, seconds: float = 30) -> T:
    """Call as Temporal would retry it: again after each retryable failure, up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await run(activity, request)
        except ApplicationError as exc:
            if exc.non_retryable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def provision(proxmox: ProxmoxActivities, spec: NodePoolSpec, node_id: str = NODE_ID) -> GuestRef:
    choice = await run(proxmox.choose_pve_node, PveNodeRequest(spec=spec))
    allocation = await until_ok(
        proxmox.allocate_guest, GuestAllocationRequest(node_id=node_id, spec=spec, placement=choice)
    )
    assert allocation.created and allocation.upid is not None
    await run(proxmox.wait_pve_task, PveTaskRequest(upid=allocation.upid, guest=allocation.guest))
    return allocation.guest


async def test_a_container_from_clone_to_destroy(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    choice = await run(proxmox.choose_pve_node, PveNodeRequest(spec=LXC))
    assert (choice.template_node, choice.storage) == ("pve1", "ceph-vm")
    assert choice.node in ("pve1", "pve2", "pve3") and choice.reasons == {}
    request = GuestAllocationRequest(node_id=NODE_ID, spec=LXC, placement=choice)
    allocation = await run(proxmox.allocate_guest, request)
    assert allocation.created and allocation.upid and allocation.guest.pve_node == choice.node
    guest = allocation.guest
    result = await run(proxmox.wait_pve_task, PveTaskRequest(upid=allocation.upid, guest=guest))
    assert result.exitstatus.startswith(("OK", "WARNINGS"))
    polls = [
        r
        for r in pve.requests()
        if r["path"] == f"/nodes/{choice.template_node}/tasks/{allocation.upid}/status"
    ]
    first = polls[0]  # the new task's first moments: PVE does not know it yet
    assert first["status"] == 400 and "no such task" in f"{first['reason']} {first.get('errors')}"
    assert polls[-1]["status"] == 200
    again = await run(proxmox.allocate_guest, request)  # a retry finds the guest it made
    assert (again.guest, again.upid, again.created) == (guest, None, False)

    configure = GuestConfigRequest(node_id=NODE_ID, spec=LXC, guest=guest, join=JOIN)
    configured = await run(proxmox.configure_guest, configure)
    assert (configured.disk, configured.resized) == ("rootfs", True)
    assert (await run(proxmox.configure_guest, configure)).resized is False  # already 12 GiB
    config = proxmox.pve.call_sync(params.guest_config(GuestKind.LXC, guest.pve_node, guest.vmid))
    assert parse_lxc_env(config["env"]) == JOIN
    assert config["tags"] == "dockyard;dyn-node_0a1b2c3d4e5f"
    assert config["net0"].startswith("name=eth0,bridge=vmbr0,hwaddr=") and "ip=dhcp" in config["net0"]
    assert (config["cores"], config["memory"], config["hostname"]) == (2, 1024, "dy-0a1b2c3d4e5f")
    assert "size=12G" in config["rootfs"]

    assert (await run(proxmox.start_guest, GuestRequest(guest=guest))).changed is True
    assert (await run(proxmox.start_guest, GuestRequest(guest=guest))).changed is False
    assert (await run(proxmox.write_join_data, JoinDataRequest(guest=guest, join=JOIN))).path is None
    address = await until_ok(proxmox.guest_address, GuestRequest(guest=guest))
    assert address.address.startswith("127.0.")

    stop = GuestStopRequest(guest=guest, shutdown_timeout_seconds=5)
    assert (await run(proxmox.stop_guest, stop)).changed is True
    assert (await run(proxmox.stop_guest, stop)).changed is False
    destroy = GuestDestroyRequest(node_id=NODE_ID, guest=guest)
    assert (await run(proxmox.destroy_guest, destroy)).existed is True
    assert (await run(proxmox.destroy_guest, destroy)).existed is False
    assert pve.guest(guest.vmid) is None


async def test_a_vm_gets_cloud_init_and_its_join_file(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    guest = await provision(proxmox, QEMU)
    configured = await run(
        proxmox.configure_guest, GuestConfigRequest(node_id=NODE_ID, spec=QEMU, guest=guest, join=JOIN)
    )
    assert (configured.disk, configured.resized) == ("scsi0", True)
    config = proxmox.pve.call_sync(params.guest_config(GuestKind.QEMU, guest.pve_node, guest.vmid))
    assert (config["ciuser"], config["ipconfig0"], config["name"]) == (
        "dockyard",
        "ip=dhcp",
        "dy-0a1b2c3d4e5f",
    )
    assert config["net0"].startswith("virtio=") and "size=20G" in config["scsi0"]
    await run(proxmox.start_guest, GuestRequest(guest=guest))

    written = await until_ok(
        proxmox.write_join_data, JoinDataRequest(guest=guest, join=JOIN)
    )  # agent booting
    assert written.path == "/etc/dockyard/join.env"
    seen = pve.guest(guest.vmid)
    assert seen is not None and seen["files"] == ["/etc/dockyard/join.env"]
    assert seen["agent"] is not None  # the template's dockyard-join.path started the agent
    assert await read_file(proxmox, guest, "/etc/dockyard/join.env") == join_env_file(JOIN)
    address = await until_ok(proxmox.guest_address, GuestRequest(guest=guest))
    assert address.address.startswith("127.0.")
    # Running: the destroy stops it first (QEMU's delete has no force).
    assert (
        await run(proxmox.destroy_guest, GuestDestroyRequest(node_id=NODE_ID, guest=guest))
    ).existed is True
    assert pve.guest(guest.vmid) is None


async def read_file(proxmox: ProxmoxActivities, guest: GuestRef, path: str) -> str:
    """`cat` through the guest agent, as an operator would check what Dockyard wrote."""
    where: dict[str, str | int] = {"node": guest.pve_node, "vmid": guest.vmid}
    run_cat = PveCall(
        method="POST",
        template="/nodes/{node}/qemu/{vmid}/agent/exec",
        path_params=where,
        params={"command": f"cat {path}"},
    )
    pid = (await proxmox.pve.call(run_cat))["pid"]
    status = PveCall(
        method="GET",
        template="/nodes/{node}/qemu/{vmid}/agent/exec-status",
        path_params=where,
        params={"pid": pid},
    )
    for _ in range(50):
        answer = await proxmox.pve.call(status)
        if answer.get("exited"):
            return str(answer.get("out-data", ""))
        await asyncio.sleep(0.1)
    raise AssertionError(f"cat {path} did not finish")


async def test_a_vmid_taken_meanwhile_is_retryable(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    first = await provision(proxmox, LXC, "node_aaaaaaaaaaaa")
    clone = params.clone(LXC, "node_bbbbbbbbbbbb", "pve1", first.vmid, None)
    with pve.deliberate(), pytest.raises(PveCallError) as raised:
        proxmox.pve.call_sync(clone, action="clone")
    assert raised.value.error.kind is PveErrorKind.VMID_TAKEN and raised.value.error.retryable


async def test_two_clones_of_one_template_and_the_lock(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    """A LXC clone locks its template for its whole run: a second allocation at the same time fails as
    retryable (CT is locked), and succeeds once the first clone is done."""
    pve.set_faults(slow={"vzclone": 20})
    choice = await run(proxmox.choose_pve_node, PveNodeRequest(spec=LXC))
    first = await run(
        proxmox.allocate_guest,
        GuestAllocationRequest(node_id="node_111111111111", spec=LXC, placement=choice),
    )
    second_request = GuestAllocationRequest(node_id="node_222222222222", spec=LXC, placement=choice)
    with pytest.raises(ApplicationError) as raised:
        await run(proxmox.allocate_guest, second_request)
    assert raised.value.type == "PveTransient" and not raised.value.non_retryable
    assert "locked" in str(raised.value) and "PVE node pve1, vmid 9000" in str(raised.value)
    assert first.upid is not None
    await run(proxmox.wait_pve_task, PveTaskRequest(upid=first.upid, guest=first.guest))
    pve.clear_faults()
    second = await until_ok(proxmox.allocate_guest, second_request)
    assert second.created and second.guest.vmid != first.guest.vmid


@pytest.mark.parametrize(
    ("faults", "error_type", "retryable", "words"),
    [
        pytest.param({"no_quorum": True}, "PveTransient", True, "no quorum", id="no-quorum"),
        pytest.param({"lock_contention": {"vmids": "all", "wait_seconds": 0.2}}, "PveTransient", True,
                     "got timeout", id="lock-timeout"),
    ],
)  # fmt: skip
async def test_transient_failures_are_retryable(
    proxmox: ProxmoxActivities,
    pve: PveSimulator,  # noqa: F811
    faults: dict[str, Any],
    error_type: str,
    retryable: bool,
    words: str,
) -> None:
    guest = await provision(proxmox, LXC)
    pve.set_faults(**faults)
    with pytest.raises(ApplicationError) as raised:
        await run(
            proxmox.configure_guest, GuestConfigRequest(node_id=NODE_ID, spec=LXC, guest=guest, join=JOIN)
        )
    assert (raised.value.type, raised.value.non_retryable) == (error_type, not retryable)
    assert words in str(raised.value) and f"vmid {guest.vmid}" in str(raised.value)
    pve.clear_faults()
    await run(proxmox.configure_guest, GuestConfigRequest(node_id=NODE_ID, spec=LXC, guest=guest, join=JOIN))


async def test_an_offline_node(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    guest = await provision(proxmox, LXC.model_copy(update={"pve_nodes": ["pve2"]}))
    pve.set_faults(offline_nodes=["pve2"])
    with pytest.raises(ApplicationError) as raised:
        await run(proxmox.start_guest, GuestRequest(guest=guest))
    assert (raised.value.type, raised.value.non_retryable) == ("PveNodeUnavailable", True)
    assert "PVE node pve2" in str(raised.value) and "595" in str(raised.value)
    choice = await run(
        proxmox.choose_pve_node, PveNodeRequest(spec=LXC, unavailable={"pve3": "answered 595"})
    )
    assert choice.node == "pve1"
    assert choice.reasons == {"pve2": "node is offline", "pve3": "node is unavailable: answered 595"}
    with pytest.raises(ApplicationError) as none_fits:
        await run(
            proxmox.choose_pve_node, PveNodeRequest(spec=LXC.model_copy(update={"pve_nodes": ["pve2"]}))
        )
    assert none_fits.value.type == "NoPveNodeFits" and "pve2: node is offline" in str(none_fits.value)


async def test_a_full_disk_fails_the_clone(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    spec = LXC.model_copy(update={"linked_clone": False, "storage": "local-lvm", "pve_nodes": ["pve1"]})
    pve.set_faults(disk_full=["local-lvm"])
    with pytest.raises(ApplicationError) as raised:
        await provision(proxmox, spec)
    assert raised.value.non_retryable and raised.value.type in ("PveTaskFailed", "PvePermanent")
    assert "no space left" in str(raised.value).lower()


async def test_refusals_name_what_pve_said(proxmox: ProxmoxActivities, pve: PveSimulator) -> None:  # noqa: F811
    bad = PveCall(
        method="PUT",
        template="/nodes/{node}/lxc/{vmid}/config",
        path_params={"node": "pve1", "vmid": 9000},
        params={"net0": "name=eth0,vlan=3", "cores": 0},
    )
    with pve.deliberate(), pytest.raises(PveCallError) as raised:
        proxmox.pve.call_sync(bad, action="configuring")
    error = raised.value.error
    assert (error.kind, error.status, error.node, error.vmid) == (PveErrorKind.PERMANENT, 400, "pve1", 9000)
    assert set(error.field_errors) == {"net0", "cores"}
    with pytest.raises(ApplicationError) as not_ours:
        await run(
            proxmox.destroy_guest,
            GuestDestroyRequest(
                node_id=NODE_ID, guest=GuestRef(kind=GuestKind.LXC, pve_node="pve1", vmid=9000)
            ),
        )
    assert not_ours.value.type == "PveGuestNotOurs" and pve.guest(9000) is not None


async def test_ticket_auth_and_failover(pve: PveSimulator) -> None:  # noqa: F811
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = load_settings(
        proxmox_hosts=[dead, f"{pve.host}:{pve.port}"],
        proxmox_user=pve.user,
        proxmox_password=pve.password,
        proxmox_ca_file=pve.ca_file,
    )
    client = PveClient.from_settings(settings)
    rows = await client.call(params.cluster_resources())
    assert {row["node"] for row in rows if row["type"] == "node"} == {"pve1", "pve2", "pve3"}
    wrong = PveClient.from_settings(settings.model_copy(update={"proxmox_hosts": [f"{pve.host}:{pve.port}"]}))
    wrong._password = "not-the-password"
    with pve.deliberate(), pytest.raises(PveCallError) as raised:
        await wrong.call(params.cluster_resources())
    assert raised.value.error.kind is PveErrorKind.PERMANENT and raised.value.error.status == 401
    untrusted = client_for(pve)
    untrusted._verify = True  # the system's CAs do not know the simulator's
    with pytest.raises(PveCallError) as tls:
        await untrusted.call(params.cluster_resources())
    assert tls.value.error.kind is PveErrorKind.PERMANENT and "TLS" in tls.value.error.reason
