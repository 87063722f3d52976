"""The Proxmox VE API simulator (infra/proxmox/sim) as a real process for tests, and its fixtures.

with PveSimulator() as pve:                      # or the `pve` / `pve_simulator` fixtures below
    api = pve.proxmox()                          # proxmoxer.ProxmoxAPI with the API token, CA-verified
    pve.url, pve.host, pve.port, pve.ca_file     # https://127.0.3.1:PORT/api2/json, its CA
    pve.token_id, pve.token_secret, pve.user, pve.password
    pve.set_faults(offline_nodes=["pve2"])       # fault knobs (infra/proxmox/sim/faults.py); clear_faults()
    pve.guests(), pve.guest(100)                 # the simulator's view of every guest (agent process too)
    pve.requests(since=0)                        # every /api2 request with its verdict
    with pve.deliberate():                       # requests meant to be invalid: not contract violations
        ...

Contract check: a request the schema rejects (`rejected`) or a method PVE does not have (`not-implemented`)
means Dockyard sent something a real PVE refuses. The `pve` fixture fails the test that made one, listing
them; requests made inside `pve.deliberate()` are exempt.

Each simulator claims a slot (an abstract unix socket, like node engines): slot k serves on 127.0.3.k and
gives its guests 127.0.(200+k).1-254, so simulators of one test run never share an address. Guests boot
with tests/support/pve_guests.py: an engine of their own plus a real agent; `stop` sweeps any engine a
guest left.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import pytest
from proxmoxer import ProxmoxAPI

from tests.support.components import REPO_ROOT
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

VIOLATIONS = ("rejected", "not-implemented")
MAX_SLOTS = 50
TIMEOUT_SECONDS = 30  # proxmoxer's default of 5 s is too short for a loaded machine


class PveSimulatorError(LoopbackServerError):
    pass


class PveSimulator(LoopbackServer):
    name = "PVE simulator"
    slug = "pve-sim"
    error: ClassVar[type[RuntimeError]] = PveSimulatorError

    def __init__(
        self,
        task_speed: float = 10.0,
        hidden_task_seconds: float = 0.1,
        cluster: dict[str, Any] | None = None,
        guest_launcher: str | None = "tests.support.pve_guests:launch",
        workdir: Path | None = None,
        start_timeout_seconds: float = 30,
    ) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds, workdir=workdir)
        self.task_speed = task_speed
        self.hidden_task_seconds = hidden_task_seconds
        self.cluster = cluster or {}
        self.guest_launcher = guest_launcher
        self._slot: socket.socket | None = None
        self.host = ""
        self.port = 0
        self.state_dir = Path()
        self._exempt: list[tuple[int, int]] = []
        self._credentials: dict[str, Any] = {}

    # --- process -----------------------------------------------------------------------------------------

    def command(self, root: Path) -> list[str]:
        slot = self._claim_slot()
        self.host = f"127.0.3.{slot}"
        self.port = free_port(self.host)
        self.state_dir = root / "state"
        cluster = {"addresses": {"first": f"127.0.{200 + slot}.1", "last": f"127.0.{200 + slot}.254"}}
        cluster_file = root / "cluster.json"
        cluster_file.write_text(json.dumps(cluster | self.cluster, indent=2))
        argv = [sys.executable, "-m", "infra.proxmox.sim", "--host", self.host, "--port", str(self.port)]
        argv += ["--state-dir", str(self.state_dir), "--cluster", str(cluster_file)]
        argv += ["--task-speed", str(self.task_speed), "--hidden-task-seconds", str(self.hidden_task_seconds)]
        if self.guest_launcher:
            argv += ["--guest-launcher", self.guest_launcher]
        return [*argv, "--log-level", "INFO"]

    def environment(self) -> dict[str, str]:
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
        return inherited | {"PYTHONPATH": str(REPO_ROOT)}

    def ready(self) -> bool:
        return (self.state_dir / "ready.json").is_file()

    def start(self) -> Self:
        super().start()
        self._credentials = json.loads((self.state_dir / "credentials.json").read_text())
        return self

    def stop(self) -> None:
        guests_dir = self.state_dir / "guests" if self.state_dir != Path() else None
        try:
            super().stop()  # SIGTERM: the simulator stops every guest and removes its engine
        finally:
            if guests_dir is not None and guests_dir.is_dir():
                from tests.support.pve_guests import recorded_engines

                for engine in recorded_engines(guests_dir):
                    if engine.leftovers():
                        engine.stop()
            if self._slot is not None:
                self._slot.close()
                self._slot = None

    def _claim_slot(self) -> int:
        for slot in range(1, MAX_SLOTS + 1):
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                claim.bind(f"\0dockyard-pve-sim-{slot}")
            except OSError:
                claim.close()
                continue
            self._slot = claim
            return slot
        raise PveSimulatorError(f"all {MAX_SLOTS} PVE simulator slots are taken")

    # --- clients -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self._credentials["url"])

    @property
    def base_url(self) -> str:
        """https://HOST:PORT, for raw requests to /api2/json/... and /_sim/..."""
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self._credentials["ca_file"])

    @property
    def token_id(self) -> str:
        return str(self._credentials["token_id"])

    @property
    def token_secret(self) -> str:
        return str(self._credentials["token_secret"])

    @property
    def user(self) -> str:
        return str(self._credentials["user"])

    @property
    def password(self) -> str:
        return str(self._credentials["password"])

    @property
    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"PVEAPIToken={self.token_id}={self.token_secret}"}

    def proxmox(self, password: bool = False) -> ProxmoxAPI:
        """proxmoxer as Dockyard uses it: API token (or user and password: a ticket), the CA, 30 s."""
        address = f"{self.host}:{self.port}"
        if password:
            return ProxmoxAPI(
                address,
                user=self.user,
                password=self.password,
                verify_ssl=self.ca_file,
                timeout=TIMEOUT_SECONDS,
            )
        user, token_name = self.token_id.split("!")
        return ProxmoxAPI(
            address,
            user=user,
            token_name=token_name,
            token_value=self.token_secret,
            verify_ssl=self.ca_file,
            timeout=TIMEOUT_SECONDS,
        )

    def http(self, authenticated: bool = True) -> httpx.Client:
        headers = self.authorization if authenticated else {}
        verify = ssl.create_default_context(cafile=self.ca_file)
        return httpx.Client(base_url=self.base_url, verify=verify, headers=headers, timeout=TIMEOUT_SECONDS)

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        with self.http() as client:
            response = client.request(method, f"/_sim/{path}", json=body)
        if response.status_code != 200:
            raise PveSimulatorError(f"{method} /_sim/{path}: {response.status_code} {response.reason_phrase}")
        return response.json()["data"]

    # --- control -----------------------------------------------------------------------------------------

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """offline_nodes=[...], no_quorum=True, lock_contention={"vmids": [...], "wait_seconds": 1},
        disk_full=["local-lvm"], slow={"qmclone": 5}."""
        return dict(self._control("PUT", "faults", knobs))

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def guests(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "guests"))

    def guest(self, vmid: int) -> dict[str, Any] | None:
        return next((guest for guest in self.guests() if guest["vmid"] == vmid), None)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._control("GET", f"requests?since={since}"))

    def last_sequence(self) -> int:
        recorded = self.requests()
        return int(recorded[-1]["seq"]) if recorded else 0

    def reset(self) -> None:
        """Faults cleared, every guest but the templates destroyed (agents and engines stopped)."""
        self._control("POST", "reset")

    @contextlib.contextmanager
    def deliberate(self) -> Iterator[None]:
        """Requests sent inside are meant to be refused: the contract check leaves them out."""
        first = self.last_sequence()
        try:
            yield
        finally:
            self._exempt.append((first, self.last_sequence()))

    def contract_violations(self, since: int = 0) -> list[dict[str, Any]]:
        """Requests a real PVE would refuse for their shape, outside `deliberate()` blocks."""
        return [
            record
            for record in self.requests(since)
            if record["verdict"] in VIOLATIONS
            and not any(first < record["seq"] <= last for first, last in self._exempt)
        ]


def describe(records: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {r['method']} {r['path']} ({r['template']}): {r['status']} {r['reason']} {r.get('errors') or ''}"
        for r in records
    )


@pytest.fixture(scope="module")
def pve_simulator() -> Iterator[PveSimulator]:
    """One simulator per test module (task speed 10); at the end, no request may have broken the schema."""
    with PveSimulator() as simulator:
        yield simulator
        violations = simulator.contract_violations()
    if violations:
        pytest.fail(f"requests a real PVE would refuse:\n{describe(violations)}", pytrace=False)


@pytest.fixture
def pve(pve_simulator: PveSimulator) -> Iterator[PveSimulator]:
    """The module's simulator, reset after the test (faults cleared, guests destroyed); fails the test
    that sent a request the schema rejects (outside `pve.deliberate()`)."""
    first = pve_simulator.last_sequence()
    yield pve_simulator
    violations = pve_simulator.contract_violations(since=first)
    pve_simulator.reset()
    pve_simulator._exempt.append((first, pve_simulator.last_sequence()))  # reported here, not again
    if violations:
        pytest.fail(f"requests a real PVE would refuse:\n{describe(violations)}", pytrace=False)


__all__ = ["PveSimulator", "PveSimulatorError", "pve", "pve_simulator"]
