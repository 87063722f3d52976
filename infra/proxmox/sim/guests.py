"""What runs inside a booted guest: a real `dockyard agent`, started the way Dockyard's templates start it.

LXC template: a systemd unit reads the container's runtime environment (`env` in the CT config, PVE
9.1's lxc.environment.runtime) and runs the agent when it holds `DOCKYARD_AGENT_JOIN_URL`.
QEMU template: `dockyard-join.path` starts the agent once `/etc/dockyard/join.env` exists (written by
Dockyard through the guest agent's file-write), with the KEY=VALUE lines of that file.

The launcher is pluggable (`--guest-launcher module:callable`): a callable taking a `GuestSpec` and
returning a `GuestProcess`. The default, `launch_agent`, runs `python -m cli agent` against the
Docker Engine given with `--docker-host`; tests give each guest an engine of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

AGENT_PORT = 7801  # the agent's default port: each guest has an address of its own
STOP_TIMEOUT_SECONDS = 15
JOIN_FILE = "/etc/dockyard/join.env"
JOIN_URL = "DOCKYARD_AGENT_JOIN_URL"

log = logging.getLogger("pve-sim.guests")


@dataclass(frozen=True)
class GuestSpec:
    vmid: int
    kind: str  # lxc | qemu
    node: str  # the PVE node it runs on
    name: str  # hostname / VM name
    address: str  # its loopback address, as the guest's interfaces report it
    state_dir: Path  # the guest's own disk, for the agent's state and logs
    join: dict[str, str]  # the join data it was given (DOCKYARD_AGENT_* variables)
    docker_host: str  # the engine the default launcher uses


class GuestProcess(Protocol):
    def stop(self, graceful: bool) -> None:
        """Shutdown (graceful) or stop (as pulling the plug): the agent and what it runs end."""

    def destroy(self) -> None:
        """Stopped already; remove whatever the guest left (its disk is going away)."""

    def view(self) -> dict[str, Any]:
        """For GET /_sim/guests: pid, running, exit code, log file..."""


Launcher = Callable[[GuestSpec], GuestProcess]


def agent_environment(spec: GuestSpec, docker_host: str, **extra: str) -> dict[str, str]:
    """The agent's variables as the template's unit sets them: the join data, then what the machine
    decides (its address, state directory and engine)."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
    machine = {
        "DOCKYARD_AGENT_LISTEN_HOST": spec.address,
        "DOCKYARD_AGENT_NODE_ADDRESS": spec.address,
        "DOCKYARD_AGENT_STATE_DIR": str(spec.state_dir / "agent"),
        "DOCKYARD_AGENT_DOCKER_HOST": docker_host,
        "XDG_STATE_HOME": str(spec.state_dir / "xdg"),
    }
    defaults = {"DOCKYARD_AGENT_LISTEN_PORT": str(AGENT_PORT), "DOCKYARD_AGENT_NODE_NAME": spec.name}
    return inherited | defaults | spec.join | machine | extra


class AgentProcess:
    """One `python -m cli agent` process, its output in `<state_dir>/agent.log`."""

    def __init__(self, spec: GuestSpec, environment: Mapping[str, str]) -> None:
        self.spec = spec
        self.log_file = spec.state_dir / "agent.log"
        spec.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "agent"],
                env=dict(environment),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, graceful: bool) -> None:
        if self.process.poll() is not None:
            return
        if graceful:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def destroy(self) -> None:
        shutil.rmtree(self.spec.state_dir / "agent", ignore_errors=True)

    def view(self) -> dict[str, Any]:
        code = self.process.poll()
        return {
            "pid": self.process.pid,
            "running": code is None,
            "exit_code": code,
            "log": str(self.log_file),
            "log_tail": _tail(self.log_file),
        }


def launch_agent(spec: GuestSpec) -> GuestProcess:
    """The default launcher: the agent on the host's (or `--docker-host`'s) Docker Engine."""
    return AgentProcess(spec, agent_environment(spec, spec.docker_host))


def load_launcher(reference: str | None) -> Launcher:
    if not reference:
        return launch_agent
    module, _, name = reference.partition(":")
    launcher = getattr(importlib.import_module(module), name or "launch")
    if not callable(launcher):
        raise ValueError(f"{reference} is not callable")
    return launcher  # type: ignore[no-any-return]


def _tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class GuestAgents:
    """The guests' processes by vmid: launched in the background (an engine may take seconds), stopped
    with the guest, removed with it; `stop_all` at the simulator's exit."""

    def __init__(self, launcher: Launcher, state_root: Path, docker_host: str) -> None:
        self.launcher = launcher
        self.state_root = state_root
        self.docker_host = docker_host
        self._processes: dict[int, GuestProcess] = {}
        self._states: dict[int, str] = {}  # launching | running | failed: ... | stopped
        self._lock = threading.Lock()

    def state_dir(self, vmid: int) -> Path:
        return self.state_root / str(vmid)

    def boot(self, vmid: int, kind: str, node: str, name: str, address: str, join: dict[str, str]) -> None:
        spec = GuestSpec(vmid, kind, node, name, address, self.state_dir(vmid), join, self.docker_host)
        with self._lock:
            if self._states.get(vmid) in ("launching", "running"):
                return
            self._states[vmid] = "launching"
        threading.Thread(target=self._launch, args=(spec,), name=f"boot-{vmid}", daemon=True).start()

    def _launch(self, spec: GuestSpec) -> None:
        try:
            process = self.launcher(spec)
        except Exception as exc:
            log.exception("guest %s: the launcher failed", spec.vmid)
            with self._lock:
                self._states[spec.vmid] = f"failed: {exc}"
            return
        with self._lock:
            wanted = self._states.get(spec.vmid) == "launching"
            self._processes[spec.vmid] = process
            self._states[spec.vmid] = "running" if wanted else "stopping"
        if not wanted:  # stopped while it was being launched
            process.stop(graceful=False)
            with self._lock:
                self._states[spec.vmid] = "stopped"

    def stop(self, vmid: int, graceful: bool) -> None:
        with self._lock:
            process = self._processes.get(vmid)
            if self._states.get(vmid) == "launching":
                self._states[vmid] = "stopping"
        if process is not None:
            process.stop(graceful)
            with self._lock:
                if self._states.get(vmid) != "stopping":
                    self._states[vmid] = "stopped"

    def destroy(self, vmid: int) -> None:
        self.stop(vmid, graceful=False)
        with self._lock:
            process = self._processes.pop(vmid, None)
            self._states.pop(vmid, None)
        if process is not None:
            process.destroy()
        shutil.rmtree(self.state_dir(vmid), ignore_errors=True)

    def view(self, vmid: int) -> dict[str, Any] | None:
        with self._lock:
            state, process = self._states.get(vmid), self._processes.get(vmid)
        if state is None:
            return None
        return {"state": state, **(process.view() if process is not None else {})}

    def stop_all(self) -> None:
        """At the simulator's exit the simulated cluster goes away: every guest's processes are stopped and
        what they left (engines, agent state) removed."""
        with self._lock:
            vmids = list(self._processes)
        for vmid in vmids:
            try:
                self.stop(vmid, graceful=False)
                with self._lock:
                    process = self._processes.pop(vmid, None)
                if process is not None:
                    process.destroy()
            except Exception:
                log.exception("guest %s did not stop", vmid)
