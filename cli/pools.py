"""`dockyard pools create|list|show|resize|delete`: node pools on Proxmox VE, through the API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from pydantic import TypeAdapter

from api.schemas.pools import NodePoolCreate, NodePoolRead, NodePoolUpdate
from cli.link import CliError, call, open_api, reported_errors, request_json

pools = typer.Typer(help="Node pools: guests cloned from a Proxmox template.", no_args_is_help=True)
NODE_POOLS = TypeAdapter(list[NodePoolRead])


def _find(api: httpx.Client, name_or_id: str) -> NodePoolRead:
    items = call(api, "GET", "/v1/node-pools", NODE_POOLS, context="cannot list the node pools")
    found = next((p for p in items if name_or_id in (p.id, p.name)), None)
    if found is None:
        names = ", ".join(f"{p.name} ({p.id})" for p in items) or "none"
        raise CliError(f"no node pool {name_or_id!r}; node pools: {names}")
    return found


def summary(pool: NodePoolRead) -> str:
    states: dict[str, int] = {}
    for node in pool.nodes:
        states[node.state] = states.get(node.state, 0) + 1
    counts = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no guests"
    deleting = " (deleting)" if pool.delete_requested_at else ""
    return (
        f"{pool.name:<20} {pool.id:<18} {pool.kind:<5} template {pool.template_vmid:<6} "
        f"size {pool.size} ({pool.min_size}-{pool.max_size}){deleting}: {counts}"
    )


def node_lines(pool: NodePoolRead) -> list[str]:
    lines = []
    for node in pool.nodes:
        where = f"{node.pve_node or '-'}/{node.vmid or '-'}"
        line = f"  {node.node_id:<18} {node.state:<16} {where:<12} {node.address or '-'}"
        if node.message:
            line += f"  {node.message}"
        lines.append(line)
    return lines


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CliError(f"--label: {pair!r} is not key=value")
        labels[key] = value
    return labels


def _spec_fields(text: str) -> dict[str, Any]:
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--spec: not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise CliError(f'--spec: a JSON object of spec fields, e.g. \'{{"bridge": "vmbr1"}}\' (got {text!r})')
    return fields


def create_body(
    *,
    name: str,
    kind: str,
    template: int,
    size: int | None,
    min_size: int,
    max_size: int,
    cores: int,
    memory: int,
    disk: int,
    pve_nodes: list[str],
    labels: list[str],
    spec: str | None,
) -> dict[str, Any]:
    """The NodePoolCreate the options ask for; `--spec` fields go in as they are, over the others."""
    body = request_json(
        NodePoolCreate,
        name=name,
        kind=kind,
        template_vmid=template,
        size=size,
        min_size=min_size,
        max_size=max_size,
        cores=cores,
        memory_mib=memory,
        disk_gib=disk,
        pve_nodes=pve_nodes,
        labels=_labels(labels),
    )
    if spec:
        body.update(_spec_fields(spec))
    return body


def resize_body(size: int | None, min_size: int | None, max_size: int | None) -> dict[str, Any]:
    """The NodePoolUpdate with the bounds given; the ones left out stay as they are."""
    given = {"size": size, "min_size": min_size, "max_size": max_size}
    return request_json(NodePoolUpdate, **{field: v for field, v in given.items() if v is not None})


def register(app: typer.Typer, settings_factory: Any) -> None:
    @pools.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="the pool's name (a DNS label)")],
        kind: Annotated[str, typer.Option(help="lxc | qemu")] = "lxc",
        template: Annotated[int, typer.Option(help="vmid of the template guests are cloned from")] = 9000,
        size: Annotated[int | None, typer.Option(help="guests wanted now (default: min size)")] = None,
        min_size: Annotated[int, typer.Option("--min", help="never fewer guests")] = 0,
        max_size: Annotated[int, typer.Option("--max", help="never more guests")] = 1,
        cores: Annotated[int, typer.Option()] = 2,
        memory: Annotated[int, typer.Option(help="MiB")] = 2048,
        disk: Annotated[int, typer.Option(help="GiB")] = 16,
        pve_node: Annotated[
            list[str] | None, typer.Option(help="a PVE node guests may run on; repeatable")
        ] = None,
        label: Annotated[
            list[str] | None, typer.Option(help="key=value for the pool's nodes; repeatable")
        ] = None,
        spec: Annotated[
            str | None, typer.Option(help="more spec fields as JSON (bridge, tags, vmid_range...)")
        ] = None,
    ) -> None:
        """Create a node pool; its guests are provisioned in the background (`dockyard pools show`)."""
        with reported_errors():
            body = create_body(
                name=name,
                kind=kind,
                template=template,
                size=size,
                min_size=min_size,
                max_size=max_size,
                cores=cores,
                memory=memory,
                disk=disk,
                pve_nodes=pve_node or [],
                labels=label or [],
                spec=spec,
            )
            with open_api(settings_factory()) as api:
                pool = call(
                    api,
                    "POST",
                    "/v1/node-pools",
                    NodePoolRead,
                    json=body,
                    context="cannot create the node pool",
                )
            typer.echo(summary(pool))

    @pools.command("list")
    def list_() -> None:
        """Every node pool and how many guests it has in each state."""
        with reported_errors(), open_api(settings_factory()) as api:
            items = call(api, "GET", "/v1/node-pools", NODE_POOLS, context="cannot list the node pools")
            for pool in items:
                typer.echo(summary(pool))
            if not items:
                typer.echo("no node pools yet: `dockyard pools create NAME --template VMID --size N --max N`")

    @pools.command("show")
    def show(pool: Annotated[str, typer.Argument(help="name or id")]) -> None:
        """A pool and its guests: node id, state, PVE node/vmid, address, and why one failed."""
        with reported_errors(), open_api(settings_factory()) as api:
            found = _find(api, pool)
            detail = call(
                api, "GET", f"/v1/node-pools/{found.id}", NodePoolRead, context="cannot read the node pool"
            )
            typer.echo(summary(detail))
            for line in node_lines(detail):
                typer.echo(line)

    @pools.command("resize")
    def resize(
        pool: Annotated[str, typer.Argument(help="name or id")],
        size: Annotated[int | None, typer.Option(help="guests wanted now")] = None,
        min_size: Annotated[int | None, typer.Option("--min")] = None,
        max_size: Annotated[int | None, typer.Option("--max")] = None,
    ) -> None:
        """Change a pool's size and bounds; it provisions or decommissions guests at once."""
        with reported_errors(), open_api(settings_factory()) as api:
            found = _find(api, pool)
            body = resize_body(size, min_size, max_size)
            if not body:
                raise CliError("nothing to change: give --size, --min or --max")
            changed = call(
                api, "PATCH", f"/v1/node-pools/{found.id}", NodePoolRead, json=body, context="cannot resize"
            )
            typer.echo(summary(changed))

    @pools.command("delete")
    def delete(pool: Annotated[str, typer.Argument(help="name or id")]) -> None:
        """Scale a pool to 0 (each guest drained and destroyed), then remove it."""
        with reported_errors(), open_api(settings_factory()) as api:
            found = _find(api, pool)
            deleted = call(
                api,
                "DELETE",
                f"/v1/node-pools/{found.id}",
                NodePoolRead,
                context="cannot delete the node pool",
            )
            typer.echo(summary(deleted))

    app.add_typer(pools, name="pools")
