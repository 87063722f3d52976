"""Node pools against the PVE simulator, for end-to-end tests and benchmarks: a platform whose workers
provision from a simulator, and helpers that read a pool through the API and its guests through the
simulator.

with TemplateSimulator(workdir / "template.json") as pve:   # templates carry the registry's credentials
    with pool_platform(docker_client, workdir, pve) as platform: ...   # `dockyard up` pointed at `pve`
pool = wait_pool(platform.api, pool_id, lambda p: ready(p) == 3)
pool_guests(pve)        # the simulator's guests made for Dockyard nodes (templates left out)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx

from infra.proxmox.sim.guests import AgentProcess, GuestSpec, agent_environment
from tests.support.components import REPO_ROOT
from tests.support.nodes import NodeEngine
from tests.support.platform import Platform, platform_with
from tests.support.pve import PveSimulator
from tests.support.pve_guests import EngineGuest, _claim

NODE_TAG_PREFIX = "dyn-"
TEMPLATE_ENV_FILE = "POOL_TEMPLATE_ENV_FILE"


class TemplateSimulator(PveSimulator):
    """The simulator whose templates carry what an operator bakes into them besides Dockyard's join
    variables: the agent's registry credentials (infra/proxmox/README.md). They are read, when a guest
    boots, from `template_env` (JSON), written once the platform is up and its registry password known."""

    def __init__(self, template_env: Path, **options: Any) -> None:
        super().__init__(guest_launcher="tests.support.pools:launch_from_template", **options)
        self.template_env = template_env

    def environment(self) -> dict[str, str]:
        return super().environment() | {TEMPLATE_ENV_FILE: str(self.template_env)}

    def bake(self, platform: Platform) -> None:
        self.template_env.write_text(
            json.dumps(
                {
                    "DOCKYARD_AGENT_REGISTRY_HOST": platform.registry_host,
                    "DOCKYARD_AGENT_REGISTRY_USERNAME": platform.registry_auth["username"],
                    "DOCKYARD_AGENT_REGISTRY_PASSWORD": platform.registry_auth["password"],
                }
            )
        )


class TemplateGuest(EngineGuest):
    def __init__(self, spec: GuestSpec, engine: NodeEngine) -> None:
        self.spec = spec
        self.engine = engine
        path = os.environ.get(TEMPLATE_ENV_FILE)
        baked = json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}
        environment = agent_environment(spec, engine.docker_host, PYTHONPATH=str(REPO_ROOT), **baked)
        self.agent = AgentProcess(spec, environment)


def launch_from_template(spec: GuestSpec) -> TemplateGuest:
    """The simulator's guest launcher (tests/support/pve_guests.py's, with the template's baked variables)."""
    engine = _claim(spec.state_dir)
    try:
        engine.start()
        return TemplateGuest(spec, engine)
    except BaseException:
        engine.stop()
        raise


def proxmox_env(pve: PveSimulator) -> dict[str, str]:
    """The settings that point Dockyard at the simulator, as they would point it at a cluster."""
    return {
        "DOCKYARD_PROXMOX_HOSTS": f"{pve.host}:{pve.port}",
        "DOCKYARD_PROXMOX_TOKEN_ID": pve.token_id,
        "DOCKYARD_PROXMOX_TOKEN_SECRET": pve.token_secret,
        "DOCKYARD_PROXMOX_CA_FILE": pve.ca_file,
        "DOCKYARD_POOL_RECONCILE_INTERVAL_SECONDS": "2",
        "DOCKYARD_POOL_ENROLL_TIMEOUT_SECONDS": "180",
        "DOCKYARD_POOL_REPLACE_DOWN_AFTER_SECONDS": "5",  # a guest DOWN this long is replaced
    }


@contextlib.contextmanager
def pool_platform(
    docker_client: docker.DockerClient, workdir: Path, pve: TemplateSimulator
) -> Iterator[Platform]:
    with platform_with(docker_client, workdir / "platform", proxmox_env(pve)) as platform:
        pve.bake(platform)
        yield platform


def get_pool(api: httpx.Client, pool_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/node-pools/{pool_id}", params={"include_destroyed": "true"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_pool(
    api: httpx.Client, pool_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 180
) -> dict[str, Any]:
    """The pool once `done` holds; an AssertionError with the pool's guests after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        pool = get_pool(api, pool_id)
        if done(pool):
            return pool
        assert time.monotonic() < deadline, f"pool never got there: {describe(pool)}"
        time.sleep(0.25)


def in_state(pool: dict[str, Any], state: str) -> list[dict[str, Any]]:
    return [node for node in pool["nodes"] if node["state"] == state]


def ready(pool: dict[str, Any]) -> int:
    return len(in_state(pool, "READY"))


def describe(pool: dict[str, Any]) -> str:
    return "; ".join(
        f"{n['node_id']} {n['state']} {n['pve_node']}/{n['vmid']} {n['message'] or ''}".strip()
        for n in pool["nodes"]
    )


def pool_guests(pve: PveSimulator) -> list[dict[str, Any]]:
    """Every guest but the templates, each with `node_id`: the Dockyard node its `dyn-` tag names."""
    guests = []
    for guest in pve.guests():
        if guest["template"]:
            continue
        tags = str(guest["config"].get("tags", "")).split(";")
        node_ids = [tag.removeprefix(NODE_TAG_PREFIX) for tag in tags if tag.startswith(NODE_TAG_PREFIX)]
        guests.append({**guest, "node_id": node_ids[0] if node_ids else None})
    return guests


def task_durations(pve: PveSimulator, since: int = 0) -> list[tuple[str, float, float]]:
    """(type, start, end) of every task the simulator ran whose UPID was answered after request `since`,
    from its request record: the UPID's start time and the first status answer that was `stopped`."""
    started: dict[str, tuple[str, float]] = {}
    ended: dict[str, float] = {}
    for record in pve.requests(since):
        result = record.get("result")
        at = float(record.get("at") or 0)
        if isinstance(result, str) and result.startswith("UPID:"):
            started.setdefault(result, (result.split(":")[5], at))
        upid = (record.get("parameters") or {}).get("upid") or _upid_in(record["path"])
        if upid and isinstance(result, dict) and result.get("status") == "stopped":
            ended.setdefault(upid, at)
    return [(kind, start, ended[upid]) for upid, (kind, start) in started.items() if upid in ended]


def _upid_in(path: str) -> str | None:
    part = next((p for p in path.split("/") if p.startswith("UPID:")), None)
    return part
