"""Temporal activities that provision node pool guests on Proxmox VE. Each loads what it needs, asks the pure
code in core/proxmox what to do, and makes the calls through PveClient. Each is idempotent: repeated after a
crash or a retry, it finds what it already did (the guest by its name and tags, a guest already running or
stopped, a guest already gone) and carries on.

Failures are Temporal ApplicationErrors named `Pve<Kind>` (PveTransient, PveNodeUnavailable, PveVmidTaken,
PvePermanent, ...; see core/proxmox/errors.py) or for the steps' own conditions (PveTemplateInvalid,
NoPveNodeFits, PveTaskFailed, PveGuestLocked, PveGuestNotOurs, PveGuestNoAddress, PveGuestsConflict), with a
message naming the PVE node, the vmid and PVE's reason. Transient ones are retried by Temporal; the others
are not, and the workflow decides (choose another node for PveNodeUnavailable, say).

A provisioning workflow runs, in order: choose_pve_node → allocate_guest → wait_pve_task (the clone) →
configure_guest → start_guest → write_join_data (VMs) → guest_address; and to decommission stop_guest →
destroy_guest.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.proxmox.client import PveClient
from activities.proxmox.contracts import (
    GuestAddress,
    GuestAllocation,
    GuestAllocationRequest,
    GuestConfigRequest,
    GuestConfigured,
    GuestDestroyed,
    GuestDestroyRequest,
    GuestPowerResult,
    GuestRef,
    GuestRequest,
    GuestStopRequest,
    JoinDataRequest,
    JoinDataWritten,
    PveNodeRequest,
    PveTaskRequest,
    PveTaskResult,
)
from core.proxmox import guests, params
from core.proxmox.errors import PveCallError, PveError, PveErrorKind, classify_task_failure
from core.proxmox.joindata import JOIN_ENV_PATH
from core.proxmox.params import PveCall
from core.proxmox.placement import PveNodeChoice, TemplateError, choose_pve_node, find_template
from core.proxmox.resources import ClusterSnapshot, cluster_snapshot
from core.proxmox.spec import GuestKind
from core.proxmox.tasks import TaskPhase
from core.proxmox.upid import parse_upid
from core.settings import Settings


class ProxmoxActivities:
    def __init__(self, settings: Settings, client: PveClient | None = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def pve(self) -> PveClient:
        """Made on first use, so a worker without Proxmox settings runs everything else."""
        if self._client is None:
            self._client = PveClient.from_settings(self.settings)
        return self._client

    async def _call(self, call: PveCall, action: str) -> object:
        try:
            return await self.pve.call(call, action=action)
        except PveCallError as exc:
            raise pve_failure(exc.error) from None

    async def _snapshot(self) -> ClusterSnapshot:
        rows = await self._call(params.cluster_resources(), "reading the cluster's resources")
        return cluster_snapshot(rows if isinstance(rows, list) else [])

    async def _run_task(self, call: PveCall, guest: GuestRef, action: str) -> str:
        """Start an asynchronous call and wait for its task; its UPID. A failed task raises, retryable when
        its error is (a lock held by another task, say): the activity's retry starts it again."""
        upid = str(await self._call(call, action))
        state = await self.pve.wait_task(upid, action=action, vmid=guest.vmid)
        if state.phase is TaskPhase.FAILED:
            error = classify_task_failure(
                state.message or "", action=action, node=guest.pve_node, vmid=guest.vmid
            )
            raise ApplicationError(
                str(error), error.kind.value, type="PveTaskFailed", non_retryable=not error.retryable
            )
        return upid

    @activity.defn
    async def choose_pve_node(self, request: PveNodeRequest) -> PveNodeChoice:
        """The PVE node for one more guest of the pool: online, allowed, not unavailable, able to clone the
        template, with the memory and disk space; most free memory wins. NoPveNodeFits names each node's
        reason."""
        spec = request.spec
        snapshot = await self._snapshot()
        try:
            template = find_template(snapshot, spec)
        except TemplateError as exc:
            raise ApplicationError(str(exc), type="PveTemplateInvalid", non_retryable=True) from None
        config = await self._call(
            params.guest_config(spec.kind, template.node, template.vmid), "reading the template's config"
        )
        try:
            disk = guests.root_disk(spec.kind, _mapping(config))
            storage = guests.disk_storage(_mapping(config), disk)
        except ValueError as exc:
            raise ApplicationError(
                f"template {template.vmid} on PVE node {template.node}: {exc}",
                type="PveTemplateInvalid",
                non_retryable=True,
            ) from None
        choice = choose_pve_node(snapshot, spec, storage, request.unavailable)
        if choice.node is None:
            reasons = (
                "; ".join(f"{node}: {why}" for node, why in choice.reasons.items())
                or "the cluster lists no node"
            )
            raise ApplicationError(
                f"no PVE node can take a guest of pool {spec.name} ({spec.memory_mib} MiB memory, "
                f"{spec.disk_gib} GiB on {choice.storage}): {reasons}",
                choice.reasons,
                type="NoPveNodeFits",
                non_retryable=True,
            )
        return choice

    @activity.defn
    async def allocate_guest(self, request: GuestAllocationRequest) -> GuestAllocation:
        """Clone the pool's template as the Dockyard node's guest, or find the one an earlier attempt made
        (by its tag, or its name before it has tags). A vmid another allocation took first fails as a
        retryable PveVmidTaken: the retry picks a new id."""
        spec, placement = request.spec, request.placement
        if placement.node is None:
            raise ApplicationError(
                "allocate_guest needs a chosen PVE node", type="PveNoPlacement", non_retryable=True
            )
        snapshot = await self._snapshot()
        try:
            existing = guests.find_guest(snapshot, request.node_id)
        except guests.GuestLookupError as exc:
            raise ApplicationError(str(exc), type="PveGuestsConflict", non_retryable=True) from None
        if existing is not None:
            found = GuestRef(kind=existing.kind, pve_node=existing.node, vmid=existing.vmid)
            if existing.lock:  # the clone an earlier attempt started is still running
                raise ApplicationError(f"{found} is still locked ({existing.lock})", type="PveGuestLocked")
            return GuestAllocation(guest=found, upid=None, created=False)
        vmid = guests.choose_vmid(snapshot, spec.vmid_range)
        if vmid is None and spec.vmid_range is not None:
            first, last = spec.vmid_range
            raise ApplicationError(
                f"pool {spec.name}: every vmid from {first} to {last} is taken",
                type="PveVmidRangeFull",
                non_retryable=True,
            )
        if vmid is None:
            vmid = guests.parse_vmid(await self._call(params.next_vmid(), "choosing a vmid"))
        guest = GuestRef(kind=spec.kind, pve_node=placement.node, vmid=vmid)
        clone = params.clone(spec, request.node_id, placement.template_node, vmid, placement.target)
        async with heartbeating():
            upid = str(
                await self._call(
                    clone, f"clone of template {spec.template_vmid} to vmid {vmid} on {placement.node}"
                )
            )
        return GuestAllocation(guest=guest, upid=upid, created=True)

    @activity.defn
    async def wait_pve_task(self, request: PveTaskRequest) -> PveTaskResult:
        """Wait until the task stops. A failed task raises PveTaskFailed (never retried: the task will not
        run again; the step that started it is what to repeat) with the log's `TASK ERROR:` line."""
        upid = parse_upid(request.upid)
        vmid = request.guest.vmid if request.guest else None
        action = f"task {upid.type} {upid.id}".strip()
        async with heartbeating():
            try:
                state = await self.pve.wait_task(request.upid, action=action, vmid=vmid)
            except PveCallError as exc:
                raise pve_failure(exc.error) from None
        if state.phase is TaskPhase.FAILED:
            error = classify_task_failure(state.message or "", action=action, node=upid.node, vmid=vmid)
            raise ApplicationError(str(error), error.kind.value, type="PveTaskFailed", non_retryable=True)
        return PveTaskResult(upid=request.upid, exitstatus=state.exitstatus or "OK", warnings=state.warnings)

    @activity.defn
    async def configure_guest(self, request: GuestConfigRequest) -> GuestConfigured:
        """Set size, network, tags and (LXC) the join data in one config PUT, then grow the root disk to the
        pool's size. Safe to repeat: the MAC is kept and a disk already big enough is left alone."""
        guest, spec = request.guest, request.spec
        config = _mapping(
            await self._call(
                params.guest_config(guest.kind, guest.pve_node, guest.vmid),
                f"reading the config of {guest.kind.value} {guest.vmid}",
            )
        )
        put = params.configure(spec, request.node_id, guest.pve_node, guest.vmid, request.join, config)
        await self._call(put, f"configuring {guest.kind.value} {guest.vmid}")
        disk = guests.root_disk(guest.kind, config)
        resized = guests.needs_resize(config, disk, spec.disk_gib)
        if resized:
            resize = params.resize(guest.kind, guest.pve_node, guest.vmid, disk, spec.disk_gib)
            async with heartbeating():
                await self._run_task(
                    resize,
                    guest,
                    f"resizing {disk} of {guest.kind.value} {guest.vmid} to {spec.disk_gib} GiB",
                )
        return GuestConfigured(guest=guest, disk=disk, resized=resized)

    @activity.defn
    async def start_guest(self, request: GuestRequest) -> GuestPowerResult:
        guest = request.guest
        async with heartbeating():
            try:
                upid = await self._run_task(
                    params.start(guest.kind, guest.pve_node, guest.vmid),
                    guest,
                    f"starting {guest.kind.value} {guest.vmid}",
                )
            except ApplicationError as exc:
                if _kind(exc) is PveErrorKind.ALREADY_RUNNING:
                    return GuestPowerResult(guest=guest, changed=False)
                raise
        return GuestPowerResult(guest=guest, changed=True, upid=upid)

    @activity.defn
    async def write_join_data(self, request: JoinDataRequest) -> JoinDataWritten:
        """VMs: write /etc/dockyard/join.env through the guest agent once it answers (until then this
        fails as PveTransient and is retried). LXC guests got theirs in `env` from configure_guest."""
        guest = request.guest
        if guest.kind is GuestKind.LXC:
            return JoinDataWritten(guest=guest, path=None)
        await self._call(params.agent_ping(guest.pve_node, guest.vmid), "pinging the guest agent")
        await self._call(
            params.write_join_file(guest.pve_node, guest.vmid, request.join),
            f"writing {JOIN_ENV_PATH}",
        )
        return JoinDataWritten(guest=guest, path=JOIN_ENV_PATH)

    @activity.defn
    async def guest_address(self, request: GuestRequest) -> GuestAddress:
        """The guest's IP address, from LXC's interfaces or the VM's guest agent; retried (PveGuestNoAddress)
        until it has one."""
        guest = request.guest
        answer = await self._call(
            params.interfaces(guest.kind, guest.pve_node, guest.vmid),
            f"reading the addresses of {guest.kind.value} {guest.vmid}",
        )
        address = guests.guest_address(guest.kind, answer)
        if address is None:
            raise ApplicationError(f"{guest} has no IP address yet", type="PveGuestNoAddress")
        return GuestAddress(guest=guest, address=address)

    @activity.defn
    async def stop_guest(self, request: GuestStopRequest) -> GuestPowerResult:
        """Shut the guest down (hard stop after the timeout, or at once). Not running, or gone: done."""
        guest = request.guest
        if request.shutdown_timeout_seconds is None:
            call = params.stop(guest.kind, guest.pve_node, guest.vmid)
        else:
            call = params.shutdown(guest.kind, guest.pve_node, guest.vmid, request.shutdown_timeout_seconds)
        async with heartbeating():
            try:
                upid = await self._run_task(call, guest, f"stopping {guest.kind.value} {guest.vmid}")
            except ApplicationError as exc:
                if _kind(exc) in (PveErrorKind.NOT_RUNNING, PveErrorKind.GUEST_MISSING):
                    return GuestPowerResult(guest=guest, changed=False)
                raise
        return GuestPowerResult(guest=guest, changed=True, upid=upid)

    @activity.defn
    async def destroy_guest(self, request: GuestDestroyRequest) -> GuestDestroyed:
        """Delete the guest and its disks (purge). Already gone: done. A vmid that now holds another guest
        (the id was reused since) is left alone: PveGuestNotOurs."""
        guest = request.guest
        found = (await self._snapshot()).guest(guest.vmid)
        if found is None:
            return GuestDestroyed(guest=guest, existed=False)
        if not guests.belongs_to(found, request.node_id):
            raise ApplicationError(
                f"vmid {guest.vmid} on PVE node {found.node} is {found.name or 'unnamed'}, no longer the "
                f"guest of Dockyard node {request.node_id}: not destroyed",
                type="PveGuestNotOurs",
                non_retryable=True,
            )
        guest = GuestRef(kind=found.kind, pve_node=found.node, vmid=found.vmid)  # it may have migrated
        async with heartbeating():
            if found.kind is GuestKind.QEMU and found.status == "running":  # QEMU's delete has no force
                await self.stop_guest(GuestStopRequest(guest=guest, shutdown_timeout_seconds=None))
            try:
                await self._run_task(
                    params.destroy(guest.kind, guest.pve_node, guest.vmid),
                    guest,
                    f"destroying {guest.kind.value} {guest.vmid}",
                )
            except ApplicationError as exc:
                if _kind(exc) is PveErrorKind.GUEST_MISSING:
                    return GuestDestroyed(guest=guest, existed=False)
                raise
        return GuestDestroyed(guest=guest, existed=True)


def pve_failure(error: PveError) -> ApplicationError:
    """The Temporal error for a PVE failure: type `Pve<Kind>`, the kind as its first detail."""
    kind_name = "".join(part.title() for part in error.kind.value.split("-"))
    return ApplicationError(
        str(error), error.kind.value, type=f"Pve{kind_name}", non_retryable=not error.retryable
    )


def _kind(exc: ApplicationError) -> PveErrorKind | None:
    details = exc.details
    if details and isinstance(details[0], str) and details[0] in PveErrorKind._value2member_map_:
        return PveErrorKind(details[0])
    return None


def _mapping(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, dict) else {}
