"""Simulated nodes for multi-node tests: one Docker Engine per node, each with its own data root, exec root,
socket, managed containerd, cgroup parent and Linux bridge. Losing a node really loses its containers, and
every node really pulls its images from the registry.

with Fleet(3) as fleet:                 # node1..node3, or the next free names when another run holds them
    node = fleet.nodes[0]
    node.docker_host                    # "unix:///tmp/dockyard-nodes/node1/docker.sock"
    node.address                        # "127.0.0.11": the node's agent address (a value: 127/8 is all lo)
    node.subnet, node.gateway           # "10.21.0.0/24", "10.21.0.1": its containers' bridge, dy-node1
    node.kill()                         # dies as a VM does: every process at once, its containers with it

Isolation. Each dockerd runs with `--iptables=false`: several engines with iptables on rewrite the DOCKER
chains the machine's main engine owns. It gets `--bridge dy-nodeN`, a bridge made here (`--bridge none`
deletes the host's docker0), and the node's own pool 10.(20+N).0.0/16 for that bridge and for networks an
agent creates. Its containerd is the one dockerd starts itself, with root and state under the node's data and
exec roots. Without Docker's rules the host's FORWARD policy (DROP; bridged traffic passes iptables) would
cut a node's containers off each other, so one rule of ours accepts traffic within the node's pool, as
docker0's ICC rule does. The host reaches containers by their bridge IP directly (no forwarding), published
ports work through docker-proxy, and nothing masquerades: containers cannot reach the internet.

A name is claimed with an abstract unix socket (`@dockyard-node-<name>`) for the engine's life: another
claimant, in this process or another test run, gets `NodeInUse`. A killed engine's claim passes to the next
engine of that name in the same process; a claim vanishes with its process. Every start first clears whatever
a killed or crashed engine of its name left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

import docker
import docker.errors
from docker.models.containers import Container

NODES_DIR = Path("/tmp/dockyard-nodes")  # short: unix socket paths are limited to 107 bytes
MAX_INDEX = 99  # addresses 127.0.0.11-109, pools 10.21-119.0.0/16
SYSTEM_CONTAINERD = Path("/run/containerd/containerd.sock")  # dockerd 20.10 prefers it to its own
SHIM_SOCKETS = Path("/run/containerd/s")
CGROUPS = Path("/sys/fs/cgroup")
START_TIMEOUT_SECONDS = 30
KILL_TIMEOUT_SECONDS = 15


class NodeEngineError(RuntimeError):
    pass


class NodeInUse(NodeEngineError):
    pass


def dockerd_command(root: Path, bridge: str, address_pool: str, cgroup_parent: str) -> list[str]:
    """The dockerd of one node; `--config-file` keeps the host's /etc/docker/daemon.json out."""
    return [
        "dockerd",
        *("--config-file", f"{root}/daemon.json", "--host", f"unix://{root}/docker.sock"),
        *("--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "--pidfile", f"{root}/dockerd.pid"),
        *("--bridge", bridge, "--iptables=false", "--ip-masq=false"),
        *("--default-address-pool", f"base={address_pool},size=24", "--cgroup-parent", cgroup_parent),
    ]


_killed_claims: dict[str, socket.socket] = {}  # by name, for the next start or stop of that name


class NodeEngine:
    """The Docker Engine of simulated node `node<index>`: `start`, then `kill` and/or `stop` (idempotent)."""

    def __init__(self, index: int) -> None:
        if not 1 <= index <= MAX_INDEX:
            raise ValueError(f"node index {index} is outside 1..{MAX_INDEX}")
        self.index = index
        self.name = f"node{index}"
        self.root = NODES_DIR / self.name
        self.bridge = f"dy-{self.name}"
        self.cgroup_parent = f"dockyard-node-{self.name}"
        self.address = f"127.0.0.{10 + index}"
        self.address_pool = f"10.{20 + index}.0.0/16"
        self.subnet = f"10.{20 + index}.0.0/24"
        self.gateway = f"10.{20 + index}.0.1"
        self._claim: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    @property
    def containerd_address(self) -> Path:
        return self.root / "exec" / "containerd" / "containerd.sock"

    @staticmethod
    def available() -> str | None:
        """Why node engines cannot run here, or None."""
        if os.geteuid() != 0:
            return "node engines need root (bridges, mounts, cgroups)"
        for binary, package in (("dockerd", "docker.io"), ("ip", "iproute2"), ("iptables", "iptables")):
            if shutil.which(binary) is None:
                return f"{binary} is not installed (apt-get install {package})"
        if SYSTEM_CONTAINERD.exists():
            return f"a system containerd listens on {SYSTEM_CONTAINERD}: every engine would share it"
        return None

    def client(self, timeout: int = 60) -> docker.DockerClient:
        """A docker SDK client for this engine; close it when done."""
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)

    def shim_socket(self, container_id: str) -> Path:
        """Where containerd 1.6 puts a container's shim socket (outside the node's roots)."""
        key = f"{self.containerd_address}/moby/{container_id}"  # containerd's address/namespace/id
        return SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def claim(self) -> Self:
        if self._claim is None and (dead := _killed_claims.pop(self.name, None)) is not None:
            self._claim = dead  # taken over from a killed engine of this process
        if self._claim is None:
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                claim.bind(f"\0dockyard-node-{self.name}")
            except OSError:
                claim.close()
                raise NodeInUse(f"{self.name} is held by another engine (this or another test run)") from None
            self._claim = claim
        return self

    def start(self) -> Self:
        self.claim()
        try:
            self._clear_leftovers()
            self._make_network()
            self.root.mkdir(parents=True)
            # Live restore, as production nodes should run: containers outlive a dockerd that dies or
            # restarts. Here it also keeps the host's docker0: a node engine that starts again on its
            # own data with a stopped container deletes its stale default network, and, sharing the
            # host's network namespace, the host's docker0 with it.
            (self.root / "daemon.json").write_text('{"live-restore": true}\n')
            self._spawn_dockerd()
            if not (self.containerd_address.parent / "containerd.pid").is_file():
                raise NodeEngineError(f"{self.name}: dockerd did not start a containerd of its own")
        except BaseException:
            self.stop()
            raise
        return self

    def restart_dockerd(self) -> None:
        """Restart the engine as `systemctl restart docker` does: SIGTERM dockerd (live restore keeps
        the containers running), then start it again on the same data and wait until it answers."""
        assert self._process is not None, f"{self.name}: not started"
        self._process.terminate()
        self._process.wait(timeout=30)
        self._spawn_dockerd()

    def _spawn_dockerd(self) -> None:
        """Start dockerd on the node's data and wait until it answers."""
        command = dockerd_command(self.root, self.bridge, self.address_pool, self.cgroup_parent)
        with (self.root / "dockerd.log").open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()

    def kill(self) -> None:
        """Lose the node: SIGKILL dockerd, its containerd, docker-proxies, shims and every container process,
        and drop the containers' network namespaces, so their addresses stop answering. The data root and the
        bridge stay, as a dead VM's disk and LAN do, until `stop` or the next start of this name."""
        self._kill_processes()
        _unmount(self.root / "exec" / "netns")
        if self._claim is not None:  # the name stays this process's: the dead node's subnet is not reused
            _killed_claims[self.name], self._claim = self._claim, None

    def stop(self, grace_seconds: int = 5) -> None:
        """Graceful teardown: stop the containers, stop dockerd, then remove everything of the node."""
        if self._claim is None:
            try:
                self.claim()
            except NodeInUse:
                return  # a newer engine holds the name: what is left is its to clear
        try:
            if self._process is not None and self._process.poll() is None:
                self._stop_dockerd(grace_seconds)
        finally:
            try:
                self._clear_leftovers()  # also after a failed graceful stop: its SIGKILL sweep ends it
            finally:
                self._release()

    def leftovers(self) -> list[str]:
        """What of this node is still on the machine: processes, mounts, files, interfaces, rule, cgroups."""
        found = [f"process {pid}: {_argv(pid)}" for pid in sorted(self._processes())]
        found += [f"mount {point}" for point in _mount_points(self.root)]
        found += [f"directory {self.root}"] if self.root.exists() else []
        found += [f"interface {name}" for name in self._interfaces()]
        found += [f"iptables rule {' '.join(self._forward_rule())}"] if self._has_forward_rule() else []
        return found + [f"cgroup {path}" for path in self._cgroups()]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- steps -------------------------------------------------------------------------------------------

    def _make_network(self) -> None:
        pool = ipaddress.ip_network(self.address_pool)
        clashes = [f"route {route}" for route in _ipv4_routes() if route.overlaps(pool)]
        clashes += [f"{address} on {name}" for name, address in _ipv4_addresses() if address in pool]
        if clashes:
            raise NodeEngineError(f"{self.name}: its pool {pool} overlaps {', '.join(clashes)}")
        bridge = self.bridge
        # A fixed MAC, as dockerd gives the bridges it makes: without one, a Linux bridge takes the lowest
        # MAC of its ports and changes it whenever a container's veth comes or goes, and the containers'
        # ARP entries for the gateway go stale: their answers to docker-proxy are dropped until the entry
        # is probed again (seen as requests through Traefik stalling 1.5 s, and now and then 10 s or more).
        mac = f"02:64:79:{self.index >> 16 & 0xFF:02x}:{self.index >> 8 & 0xFF:02x}:{self.index & 0xFF:02x}"
        batch = (
            f"link add {bridge} address {mac} type bridge\naddr add {self.gateway}/24 dev {bridge}\n"
            f"link set {bridge} up\n"
        )
        _run(["ip", "-batch", "-"], input=batch)
        _run(["iptables", "-w", "10", "-I", *self._forward_rule()])

    def _forward_rule(self) -> list[str]:
        comment = f"dockyard test {self.name}: its containers reach each other"
        pool = self.address_pool  # by address: networks an agent creates get bridges dockerd names
        return ["FORWARD", "-s", pool, "-d", pool, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]

    def _has_forward_rule(self) -> bool:
        check = subprocess.run(["iptables", "-w", "10", "-C", *self._forward_rule()], capture_output=True)
        return check.returncode == 0

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _pings(self.root / "docker.sock"):
            if self._process.poll() is not None:
                raise NodeEngineError(
                    f"{self.name}: dockerd exited ({self._process.returncode}):\n{self._log()}"
                )
            if time.monotonic() > deadline:
                raise NodeEngineError(
                    f"{self.name}: not ready after {START_TIMEOUT_SECONDS}s:\n{self._log()}"
                )
            time.sleep(0.05)

    def _log(self, lines: int = 20) -> str:
        log = self.root / "dockerd.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""

    def _stop_dockerd(self, grace_seconds: int) -> None:
        """Containers first, in parallel and with `grace_seconds` (dockerd's own shutdown would give each
        its full stop timeout), then dockerd, which stops its containerd."""
        assert self._process is not None
        with contextlib.closing(self.client(timeout=grace_seconds + 30)) as client:
            running = client.containers.list()
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(running)))) as pool:
                list(pool.map(lambda container: _stop_container(container, grace_seconds), running))
        self._process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=30)  # still running: the SIGKILL sweep of _clear_leftovers follows

    def _kill_processes(self) -> None:
        """SIGKILL sweeps until nothing of the node runs: shims and container processes outlive a killed
        dockerd, and a sweep can meet a process dockerd or containerd spawned just before dying."""
        deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
        while victims := self._processes():
            if time.monotonic() > deadline:
                raise NodeEngineError(f"{self.name}: processes survive SIGKILL: {sorted(victims)}")
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if self._process is not None:
            self._process.kill()
            self._process.wait()  # reap our child, or it lingers as a zombie

    def _processes(self) -> set[int]:
        """dockerd, containerd and shims name a path of the node; container processes sit in its cgroups;
        a docker-proxy names only the container address it forwards to."""
        marker, pool = f"{self.root}/", ipaddress.ip_network(self.address_pool)
        found = {pid for cgroup in self._cgroups() for pid in _cgroup_pids(cgroup)}
        for pid, argv in _live_processes():
            if any(marker in arg for arg in argv) or _proxies_into(argv, pool):
                found.add(pid)
        found.discard(os.getpid())
        return found

    def _cgroups(self) -> list[Path]:
        return [path for path in CGROUPS.glob(f"*/{self.cgroup_parent}") if path.is_dir()]

    def _interfaces(self) -> list[str]:
        """The node's bridge and those dockerd made for networks created on it: bridges `br-<network id>`
        on its pool. Any other interface on the pool is not the node's: `_make_network` refuses to start."""
        pool = ipaddress.ip_network(self.address_pool)
        names = {name for name, address in _ipv4_addresses() if address in pool and name.startswith("br-")}
        names |= {self.bridge} if Path("/sys/class/net", self.bridge).exists() else set()
        return sorted(name for name in names if Path("/sys/class/net", name, "bridge").is_dir())

    def _clear_leftovers(self) -> None:
        """Whatever a stopped, killed or crashed engine of this name left, in a safe order: processes,
        mounts (never delete through a mount), files, network, cgroups."""
        self._kill_processes()
        self._process = None
        _unmount(self.root)
        if remaining := _mount_points(self.root):
            raise NodeEngineError(f"{self.name}: still mounted, not deleting {self.root}: {remaining}")
        containers = self.root / "data" / "containers"
        for entry in containers.iterdir() if containers.is_dir() else ():
            self.shim_socket(entry.name).unlink(missing_ok=True)  # left by shims that were killed
        shutil.rmtree(self.root, ignore_errors=True)
        while self._has_forward_rule():
            _run(["iptables", "-w", "10", "-D", *self._forward_rule()])
        for name in self._interfaces():
            _run(["ip", "link", "delete", name])
        for cgroup in self._cgroups():
            _remove_cgroup(cgroup)

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None


class Fleet:
    """`count` node engines, started concurrently and stopped together, also after a failure."""

    def __init__(self, count: int, first_index: int | None = None) -> None:
        self.count = count
        self.first_index = first_index  # None: the first free names
        self.nodes: list[NodeEngine] = []

    def claim(self) -> Self:
        """Hold the names (and so the addresses and pools) without starting anything yet."""
        if not self.nodes:
            self.nodes = self._claim_nodes()
        return self

    def start(self) -> Self:
        try:
            self.claim()
            with ThreadPoolExecutor(max_workers=self.count) as pool:
                for started in [pool.submit(node.start) for node in self.nodes]:
                    started.result()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            stopped = [pool.submit(node.stop) for node in self.nodes]
        if errors := [error for future in stopped if (error := future.exception()) is not None]:
            raise NodeEngineError(f"{len(errors)} node(s) did not stop cleanly: {errors}")

    def leftovers(self) -> list[str]:
        return [f"{node.name}: {item}" for node in self.nodes for item in node.leftovers()]

    def _claim_nodes(self) -> list[NodeEngine]:
        fixed = self.first_index is not None
        start = self.first_index or 1
        indexes = range(start, start + self.count) if fixed else range(1, MAX_INDEX + 1)
        claimed: list[NodeEngine] = []
        try:
            for index in indexes:
                try:
                    claimed.append(NodeEngine(index).claim())
                except NodeInUse:
                    if fixed:
                        raise
                if len(claimed) == self.count:
                    return claimed
            raise NodeInUse(f"fewer than {self.count} node names are free")
        except BaseException:
            for node in claimed:
                node._release()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- the machine, read from /proc and /sys, changed by ip, iptables and umount2 -----------------------------


def _run(argv: list[str], input: str | None = None) -> None:
    result = subprocess.run(argv, input=input, capture_output=True, text=True)
    if result.returncode != 0:
        raise NodeEngineError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _stop_container(container: Container, grace_seconds: int) -> None:
    with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile (`auto_remove`)
        container.stop(timeout=grace_seconds)


def _pings(docker_socket: Path) -> bool:
    """Whether dockerd answers `GET /_ping` (a raw socket: httpx and the SDK leak one on a failed connect)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(docker_socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b" ", 2)[1:2] == [b"200"]
        except OSError:
            return False


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every process but zombies and kernel threads."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
                argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X") and argv[0]:
                yield int(entry.name), [arg.decode(errors="replace") for arg in argv if arg]


def _argv(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return "(gone)"


def _proxies_into(argv: list[str], pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """A docker-proxy forwarding to an address of `pool`."""
    if not argv[0].endswith("docker-proxy") or "-container-ip" not in argv[:-1]:
        return False
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(argv[argv.index("-container-ip") + 1]) in pool
    return False


def _cgroup_pids(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    for _ in range(50):  # a killed task leaves its cgroup a moment after it is gone
        children = sorted((path for path in cgroup.rglob("*") if path.is_dir()), key=lambda p: -len(p.parts))
        try:
            for directory in [*children, cgroup]:
                directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    raise NodeEngineError(f"cgroup {cgroup} stays busy")


def _mount_points(under: Path) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # mountinfo escapes space, tab, newline and backslash in octal (\040)
        point = line.split()[4].encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")
        if point == str(under) or point.startswith(f"{under}/"):
            points.append(point)
    return points


_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def _unmount(under: Path) -> None:
    for _ in range(5):  # mounts stacked on one point go one per round
        for point in sorted(_mount_points(under), key=len, reverse=True):
            if _libc.umount2(point.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (
                errno.EINVAL,  # no longer a mount point
                errno.ENOENT,  # gone with its parent
            ):
                raise NodeEngineError(f"umount {point}: {os.strerror(ctypes.get_errno())}")


def _ipv4_routes() -> list[ipaddress.IPv4Network]:
    routes = json.loads(_output(["ip", "-4", "-j", "route", "show"]))
    return [
        ipaddress.IPv4Network(route["dst"], strict=False) for route in routes if route["dst"] != "default"
    ]


def _ipv4_addresses() -> list[tuple[str, ipaddress.IPv4Address]]:
    links = json.loads(_output(["ip", "-4", "-j", "address", "show"]))
    return [
        (link["ifname"], ipaddress.IPv4Address(a["local"]))
        for link in links
        for a in link.get("addr_info", [])
    ]


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
