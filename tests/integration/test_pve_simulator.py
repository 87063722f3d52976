"""The PVE API simulator through the real proxmoxer (and raw httpx where the wire shape matters): auth,
PVE's error shapes and reason phrases, tasks, clone locks, digests, faults, and guests that boot a real
`dockyard agent` (each on an engine of its own) from the join data Dockyard gives them."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

from core import pki
from tests.support import missing_component
from tests.support import pve as pve_support
from tests.support.nodes import NodeEngine
from tests.support.pve import PveSimulator

pve_simulator = pve_support.pve_simulator  # fixtures: one simulator for the module, reset after each test
pve = pve_support.pve

AGENT_PORT = 7801


def wait_task(api: ProxmoxAPI, upid: str, timeout: float = 30) -> dict[str, Any]:
    """Poll a task to its end, through the short window where a new UPID is not found yet."""
    node = upid.split(":")[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = api.nodes(node).tasks(upid).status.get()
        except ResourceException as exc:
            assert exc.errors == {"upid": "no such task"}, exc
            status = {"status": "not yet"}
        if status["status"] == "stopped":
            return dict(status)
        time.sleep(0.05)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def refused(call: Any) -> ResourceException:
    with pytest.raises(ResourceException) as raised:
        call()
    return raised.value


def listening(address: str, port: int = AGENT_PORT) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


class Enrollments:
    """A stand-in control plane answering POST /v1/nodes/enroll as Dockyard's does (a certificate from its
    CA for the node's CSR), recording what each agent sent."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.authority = pki.create_authority(now)
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append(body)
                node_id = f"node_{uuid.uuid4().hex[:12]}"
                host = body["address"].rpartition(":")[0]
                certificate = pki.issue_node_certificate(
                    outer.authority, pki.load_csr(body["csr"]), node_id, now=datetime.now(UTC), hosts=[host]
                )
                answer = json.dumps(
                    {
                        "node_id": node_id,
                        "name": body["name"],
                        "certificate": pki.certificate_pem(certificate),
                        "ca_certificate": pki.certificate_pem(outer.authority.certificate),
                        "control_plane_identity": pki.CONTROL_PLANE_IDENTITY,
                        "cert_not_after": certificate.not_valid_after_utc.isoformat(),
                    }
                ).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def enrollments() -> Iterator[Enrollments]:
    if reason := NodeEngine.available():
        missing_component(reason)
    stub = Enrollments()
    yield stub
    stub.close()


def join_variables(url: str, token: str, name: str) -> dict[str, str]:
    return {
        "DOCKYARD_AGENT_JOIN_URL": url,
        "DOCKYARD_AGENT_JOIN_TOKEN": token,
        "DOCKYARD_AGENT_LABELS": json.dumps({"pool": "sim"}, separators=(",", ":")),
        "DOCKYARD_AGENT_NODE_NAME": name,
    }


# --- auth and wire shapes


def test_api_token_and_ticket_auth(pve: PveSimulator) -> None:
    assert pve.proxmox().version.get()["release"] == "9.1"
    with_ticket = pve.proxmox(password=True)
    upid = with_ticket.nodes("pve1").lxc(9000).clone.post(newid=120, hostname="ticket-ct")  # CSRF header sent
    assert wait_task(with_ticket, upid)["exitstatus"] == "OK"
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(
            f"{pve.host}:{pve.port}", user="root@pam", password="wrong", verify_ssl=pve.ca_file, timeout=30
        )
    with pve.http(authenticated=False) as http:
        anonymous = http.get("/api2/json/nodes")
        forged = http.get("/api2/json/nodes", headers={"Authorization": f"PVEAPIToken={pve.token_id}=nope"})
        ticket = http.post("/api2/json/access/ticket", data={"username": pve.user, "password": pve.password})
        cookie = {"Cookie": f"PVEAuthCookie={quote(ticket.json()['data']['ticket'])}"}
        read = http.get("/api2/json/cluster/status", headers=cookie)
        write = http.put("/api2/json/nodes/pve1/lxc/120/config", headers=cookie, data={"memory": "1024"})
    assert (anonymous.status_code, anonymous.reason_phrase, anonymous.content) == (401, "No ticket", b"")
    assert (forged.status_code, forged.reason_phrase) == (401, "Authentication failed!")
    assert "PVEAuthCookie=" in ticket.headers["set-cookie"]
    assert read.status_code == 200 and read.json()["data"][0]["quorate"] == 1
    assert (write.status_code, write.reason_phrase) == (401, "Permission denied - invalid csrf token")


def test_error_shapes_and_reason_phrases(pve: PveSimulator) -> None:
    api = pve.proxmox()
    with pve.deliberate():
        error = refused(lambda: api.nodes("pve1").lxc(9000).clone.post(newid=121, full=True))
    assert (error.status_code, error.content) == (400, "Parameter verification failed.")
    assert error.errors == {"full": "type check ('boolean') failed - got 'True'"}
    missing = refused(lambda: api.nodes("pve1").lxc(555).status.current.get())
    assert (missing.status_code, missing.content) == (
        500,
        "Configuration file 'nodes/pve1/lxc/555.conf' does not exist",
    )
    with pve.http() as http:
        body = http.get("/api2/json/nodes/pve1/lxc/555/config")
        with pve.deliberate():
            unknown = http.get("/api2/json/nodes/pve1/lxc/9000/frobnicate")
    assert body.json() == {
        "data": None,
        "message": "Configuration file 'nodes/pve1/lxc/555.conf' does not exist\n",
    }
    assert body.reason_phrase == "Configuration file 'nodes/pve1/lxc/555.conf' does not exist"
    assert (unknown.status_code, unknown.reason_phrase) == (
        501,
        "Method 'GET /nodes/pve1/lxc/9000/frobnicate' not implemented",
    )
    verdicts = {record["verdict"] for record in pve.requests() if record["path"].endswith("frobnicate")}
    assert verdicts <= {"not-implemented", "outside-subset"}


def test_contract_check_flags_rejected_requests(pve: PveSimulator) -> None:
    first = pve.last_sequence()
    with pve.deliberate():
        refused(lambda: pve.proxmox().nodes("pve1").qemu(9001).config.put(onboot=True))
    [record] = [r for r in pve.requests(first) if r["template"] == "/nodes/{node}/qemu/{vmid}/config"]
    assert record["verdict"] == "rejected" and record["errors"] == {
        "onboot": "type check ('boolean') failed - got 'True'"
    }
    assert pve.contract_violations(first) == []


def test_nextid_answers_a_string_and_refuses_a_taken_id(pve: PveSimulator) -> None:
    api = pve.proxmox()
    assert api.cluster.nextid.get() == "100"
    taken = refused(lambda: api.cluster.nextid.get(vmid=9000))
    assert (taken.status_code, taken.errors) == (400, {"vmid": "VM 9000 already exists"})
    assert api.cluster.nextid.get(vmid=4321) == "4321"


def test_a_new_task_is_briefly_not_found(pve: PveSimulator) -> None:
    api = pve.proxmox()
    upid = api.nodes("pve1").lxc(9000).clone.post(newid=122)
    assert upid.startswith("UPID:pve1:") and upid.endswith(":vzclone:9000:root@pam!dockyard:")
    assert len(upid.split(":")) == 9
    early = refused(lambda: api.nodes("pve1").tasks(upid).status.get())
    assert (early.status_code, early.errors) == (400, {"upid": "no such task"})
    status = wait_task(api, upid)
    assert status["exitstatus"] == "OK" and status["type"] == "vzclone"
    assert api.nodes("pve1").tasks(upid).log.get()[-1]["t"] == "TASK OK"
    assert upid in [task["upid"] for task in api.nodes("pve1").tasks.get(vmid=9000)]


# --- locks, digests, faults


def test_concurrent_lxc_clones_of_one_template(pve: PveSimulator) -> None:
    api = pve.proxmox()
    pve.set_faults(slow={"vzclone": 5})
    template = api.nodes("pve1").lxc(9000)
    upid = template.clone.post(newid=130, hostname="first", full=1, storage="local-lvm")
    second = refused(lambda: template.clone.post(newid=131, hostname="second"))
    assert (second.status_code, second.content) == (500, "CT is locked (disk)")
    assert template.config.get()["lock"] == "disk"
    assert api.nodes("pve1").lxc(130).config.get()["lock"] == "create"
    assert wait_task(api, upid)["exitstatus"] == "OK"
    assert "lock" not in template.config.get() and "lock" not in api.nodes("pve1").lxc(130).config.get()
    assert api.nodes("pve1").lxc(130).config.get()["rootfs"] == "local-lvm:vm-130-disk-0,size=8G"


def test_qemu_clones_of_a_template_run_in_parallel(pve: PveSimulator) -> None:
    api = pve.proxmox()
    template = api.nodes("pve1").qemu(9001)
    with ThreadPoolExecutor(2) as pool:
        upids = list(
            pool.map(
                lambda i: template.clone.post(newid=140 + i, name=f"vm-{i}", target=f"pve{i + 2}"), (0, 1)
            )
        )
    assert api.nodes("pve2").qemu(140).config.get()["lock"] == "clone"
    assert [wait_task(api, upid)["exitstatus"] for upid in upids] == ["OK", "OK"]
    config = api.nodes("pve3").qemu(141).config.get()
    assert "lock" not in config and config["scsi0"] == "ceph-vm:base-9001-disk-0/vm-141-disk-0,size=16G"


def test_config_digest_and_lock_contention(pve: PveSimulator) -> None:
    api = pve.proxmox()
    wait_task(api, api.nodes("pve1").lxc(9000).clone.post(newid=150))
    ct = api.nodes("pve1").lxc(150)
    digest = ct.config.get()["digest"]
    ct.config.put(memory=1024, digest=digest)
    stale = refused(lambda: ct.config.put(memory=4096, digest=digest))
    assert stale.content == "detected modified configuration - file changed by other user? Try again."
    pve.set_faults(lock_contention={"vmids": [150], "wait_seconds": 0.2})
    contended = refused(lambda: ct.config.put(memory=2048))
    assert contended.content == "can't lock file '/run/lock/lxc/pve-config-150.lock' - got timeout"
    started = wait_task(api, ct.status.start.post())
    assert started["exitstatus"] == "can't lock file '/run/lock/lxc/pve-config-150.lock' - got timeout"
    pve.set_faults(lock_contention={"vmids": []}, no_quorum=True)
    assert refused(lambda: ct.config.put(memory=2048)).content == "cluster not ready - no quorum?"
    assert api.nodes("pve1").lxc(150).config.get()["memory"] == 1024  # reads still work


def test_offline_node_answers_595(pve: PveSimulator) -> None:
    api = pve.proxmox()
    pve.set_faults(offline_nodes=["pve2"])
    down = refused(lambda: api.nodes("pve2").status.get())
    assert (down.status_code, down.content) == (595, "No route to host")
    nodes = {entry["node"]: entry["status"] for entry in api.cluster.resources.get(type="node")}
    assert nodes == {"pve1": "online", "pve2": "offline", "pve3": "online"}
    assert {node["name"]: node["online"] for node in api.cluster.status.get() if node["type"] == "node"}[
        "pve2"
    ] == 0
    assert api.nodes("pve1").status.get()["cpuinfo"]["cpus"] == 16


def test_disk_full_fails_the_clone_and_leaves_nothing(pve: PveSimulator) -> None:
    api = pve.proxmox()
    pve.set_faults(disk_full=["local-lvm"])
    upid = api.nodes("pve1").qemu(9001).clone.post(newid=160, name="big", full=1, storage="local-lvm")
    status = wait_task(api, upid)
    assert status["exitstatus"] == "clone failed: write error on 'local-lvm': No space left on device"
    assert api.nodes("pve1").tasks(upid).log.get()[-1]["t"] == f"TASK ERROR: {status['exitstatus']}"
    assert pve.guest(160) is None
    assert refused(lambda: api.nodes("pve1").qemu(160).config.get()).status_code == 500
    used = api.nodes("pve1").storage("local-lvm").status.get()["used"]
    assert used == 0


# --- guests that boot a real agent


def test_lxc_start_runs_the_agent_with_its_join_data_and_destroy_removes_it(
    pve: PveSimulator, enrollments: Enrollments
) -> None:
    api = pve.proxmox()
    wait_task(api, api.nodes("pve1").lxc(9000).clone.post(newid=170, hostname="lxc-node", target="pve3"))
    ct = api.nodes("pve3").lxc(170)
    variables = join_variables(enrollments.url, "join-lxc", "lxc-node")
    ct.config.put(
        env="\0".join(f"{key}={value}" for key, value in variables.items()), digest=ct.config.get()["digest"]
    )
    assert ct.interfaces.get() is None  # stopped
    assert wait_task(api, ct.status.start.post())["exitstatus"] == "OK"
    assert refused(lambda: ct.status.start.post()).content == "CT 170 already running"
    address = next(i["inet"] for i in ct.interfaces.get() if i["name"] == "eth0").split("/")[0]
    assert address.startswith("127.")
    enrolled = wait_until(lambda: enrollments.received, 60, "the agent enrolled")
    assert {k: enrolled[0][k] for k in ("token", "name", "labels", "address")} == {
        "token": "join-lxc",
        "name": "lxc-node",
        "labels": {"pool": "sim"},
        "address": f"{address}:{AGENT_PORT}",
    }
    wait_until(lambda: listening(address), 60, "the agent serves on the guest's address")
    guest = pve.guest(170)
    assert guest is not None
    agent = guest["agent"]
    engine = NodeEngine(int(agent["engine"].removeprefix("node")))
    assert agent["running"] and engine.leftovers() != []
    assert refused(lambda: ct.delete()).content == "CT 170 is running - destroy failed"
    assert wait_task(api, ct.delete(force=1, purge=1))["exitstatus"] == "OK"
    assert not listening(address) and engine.leftovers() == []
    assert pve.guest(170) is None


def test_vm_file_write_of_join_env_starts_the_agent(pve: PveSimulator, enrollments: Enrollments) -> None:
    api = pve.proxmox()
    wait_task(api, api.nodes("pve1").qemu(9001).clone.post(newid=180, name="vm-node"))
    vm = api.nodes("pve1").qemu(180)
    vm.config.put(
        ciuser="dockyard", sshkeys=quote("ssh-ed25519 AAAAC3Nz dockyard\n", safe=""), ipconfig0="ip=dhcp"
    )
    cloudinit = {entry["key"]: entry for entry in vm.cloudinit.get()}
    assert cloudinit["ciuser"]["pending"] == "dockyard" and "sshkeys" in cloudinit
    assert refused(lambda: vm.agent.ping.post()).content == "VM 180 is not running"
    wait_task(api, vm.status.start.post())
    assert refused(lambda: vm.agent.ping.post()).content == "QEMU guest agent is not running"
    wait_until(lambda: _pings(vm), 10, "the guest agent answers")
    assert {entry["key"]: entry.get("value") for entry in vm.cloudinit.get()}["ciuser"] == "dockyard"
    variables = join_variables(enrollments.url, "join-vm", "vm-node")
    vm.agent("file-write").post(
        file="/etc/dockyard/join.env", content="".join(f"{k}={v}\n" for k, v in variables.items())
    )
    result = vm.agent("network-get-interfaces").get()["result"]
    address = next(i for i in result if i["name"] == "eth0")["ip-addresses"][0]["ip-address"]
    enrolled = wait_until(lambda: enrollments.received, 60, "the agent enrolled")
    assert (enrolled[0]["token"], enrolled[0]["name"]) == ("join-vm", "vm-node")
    wait_until(lambda: listening(address), 60, "the agent serves on the VM's address")
    pid = vm.agent.exec.post(command=["cat", "/etc/dockyard/join.env"])["pid"]
    assert "DOCKYARD_AGENT_JOIN_TOKEN=join-vm" in vm.agent("exec-status").get(pid=pid)["out-data"]
    assert wait_task(api, vm.status.stop.post())["exitstatus"] == "OK"
    assert not listening(address)


def _pings(vm: Any) -> bool:
    try:
        vm.agent.ping.post()
    except ResourceException:
        return False
    return True
