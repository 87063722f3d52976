"""The PVE simulator's guest launcher for tests (`--guest-launcher tests.support.pve_guests:launch`): each
booted guest gets a Docker Engine of its own (tests/support/nodes.py) and a real `dockyard agent` on the
guest's loopback address, so a guest dies as a VM does: stopping it kills its agent and its engine with
every container, destroying it removes them.

It runs inside the simulator's process. Engine names are claimed like Fleet claims them, but from the
highest index down, so the `enrolled_fleet` tests of the same run (which take the first free names)
rarely have to skip a name; a claim is exclusive either way. Each guest records its engine's index in
`<guest state>/engine.json`, for the fixture's sweep after a simulator that died without cleaning up.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from infra.proxmox.sim.guests import AgentProcess, GuestSpec, agent_environment
from tests.support.components import REPO_ROOT
from tests.support.nodes import MAX_INDEX, NodeEngine, NodeInUse

ENGINE_FILE = "engine.json"
_claiming = threading.Lock()


class EngineGuest:
    """A booted guest: its engine, then its agent; stopped in the other order."""

    def __init__(self, spec: GuestSpec, engine: NodeEngine) -> None:
        self.spec = spec
        self.engine = engine
        environment = agent_environment(spec, engine.docker_host, PYTHONPATH=str(REPO_ROOT))
        self.agent = AgentProcess(spec, environment)

    def stop(self, graceful: bool) -> None:
        self.agent.stop(graceful)
        if graceful:
            self.engine.stop()
        else:
            self.engine.kill()  # its containers die with it; its disk stays until destroy

    def destroy(self) -> None:
        self.engine.stop()
        self.agent.destroy()

    def view(self) -> dict[str, Any]:
        return {**self.agent.view(), "engine": self.engine.name, "docker_host": self.engine.docker_host}


def launch(spec: GuestSpec) -> EngineGuest:
    engine = _claim(spec.state_dir)
    try:
        engine.start()
        return EngineGuest(spec, engine)
    except BaseException:
        engine.stop()
        raise


def _claim(state_dir: Path) -> NodeEngine:
    """The guest's engine of a previous boot when its name is still free, else the highest free name."""
    state_dir.mkdir(parents=True, exist_ok=True)
    record = state_dir / ENGINE_FILE
    with _claiming:
        candidates = list(range(MAX_INDEX, 0, -1))
        if record.is_file():
            previous = int(json.loads(record.read_text())["index"])
            candidates.insert(0, previous)
        for index in candidates:
            try:
                engine = NodeEngine(index).claim()
            except NodeInUse:
                continue
            record.write_text(json.dumps({"index": index, "name": engine.name}) + "\n")
            return engine
    raise NodeInUse("no node engine name is free for a PVE guest")


def recorded_engines(guests_dir: Path) -> list[NodeEngine]:
    """Engines named in the guests' records under the simulator's `guests` directory."""
    engines = []
    for record in sorted(guests_dir.glob(f"*/{ENGINE_FILE}")):
        engines.append(NodeEngine(int(json.loads(record.read_text())["index"])))
    return engines
