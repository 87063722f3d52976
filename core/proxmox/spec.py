"""A node pool's spec: which Proxmox template its guests are cloned from, how big they are, where they may
run, and how many of them there are. Validated when it is built; each error names the field and why."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from core.contracts import Contract

VMID_MIN, VMID_MAX = 100, 999_999_999
# PVE's formats: pve-node, pve-tag (case-insensitive), pve-storage-id, the bridge pattern of net[n].
PVE_NODE_PATTERN = r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"
PVE_TAG = re.compile(r"^[a-z0-9_][a-z0-9_+.-]*$", re.I)
STORAGE_PATTERN = r"^[a-zA-Z][a-zA-Z0-9._-]*$"
BRIDGE_PATTERN = r"^[-_.\w]+$"
RESERVED_TAG = re.compile(r"^(dockyard|dyn-.*)$", re.I)  # core/proxmox/guests.py puts these on every guest
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SSH_KEY = re.compile(
    r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com) [A-Za-z0-9+/=]+( .*)?$"
)

Vmid = Annotated[int, Field(ge=VMID_MIN, le=VMID_MAX)]
PveNodeName = Annotated[str, StringConstraints(pattern=PVE_NODE_PATTERN, max_length=63)]


class GuestKind(StrEnum):
    LXC = "lxc"
    QEMU = "qemu"


class NodePoolSpec(Contract):
    """Fields are validated in the order declared: a check that depends on another field comes after it."""

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", description="a DNS label, ≤ 40")
    kind: GuestKind
    template_vmid: Vmid = Field(description="the LXC or QEMU template every guest of the pool is cloned from")
    pve_nodes: list[PveNodeName] = Field(
        default_factory=list, description="PVE nodes the pool's guests may run on; empty: any"
    )
    cores: int = Field(default=2, ge=1, le=8192)
    memory_mib: int = Field(default=2048, ge=64)
    disk_gib: int = Field(default=16, ge=1, le=65536, description="root disk; grown from the template's")
    bridge: str = Field(default="vmbr0", pattern=BRIDGE_PATTERN, max_length=64)
    vlan_tag: int | None = Field(default=None, ge=1, le=4094)
    tags: list[str] = Field(default_factory=list, description="more PVE tags on every guest")
    linked_clone: bool = Field(default=True, description="thin clone sharing the template's disk")
    storage: str | None = Field(
        default=None,
        pattern=STORAGE_PATTERN,
        description="where a full clone's disks go; default: the template's",
    )
    min_size: int = Field(default=0, ge=0, le=1000)
    max_size: int = Field(default=1, ge=1, le=1000)
    labels: dict[str, str] = Field(
        default_factory=dict, description="told to the control plane at enrollment"
    )
    vmid_range: tuple[Vmid, Vmid] | None = Field(
        default=None, description="first and last vmid of the pool's guests; default: PVE's next free id"
    )
    # QEMU only: cloud-init.
    ciuser: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    sshkeys: list[str] = Field(default_factory=list, description="OpenSSH public keys, one per entry")
    ipconfig0: str | None = Field(default=None, description="cloud-init ipconfig0; default ip=dhcp for VMs")

    @field_validator("pve_nodes")
    @classmethod
    def _distinct_nodes(cls, nodes: list[str]) -> list[str]:
        if len(set(nodes)) != len(nodes):
            raise ValueError("lists a PVE node more than once")
        return nodes

    @field_validator("tags")
    @classmethod
    def _pve_tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not PVE_TAG.match(tag):
                raise ValueError(
                    f"{tag!r} is not a PVE tag (letters, digits, _ + . -; not starting with + . -)"
                )
            if RESERVED_TAG.match(tag):
                raise ValueError(f"{tag!r} is Dockyard's own tag (dockyard, dyn-<node id>)")
        return list(dict.fromkeys(tags))

    @field_validator("storage")
    @classmethod
    def _storage_for_full_clones(cls, storage: str | None, info: ValidationInfo) -> str | None:
        if storage is not None and info.data.get("linked_clone", True):
            raise ValueError(
                "only for full clones (linked_clone false): a linked clone stays on the template's"
            )
        return storage

    @field_validator("max_size")
    @classmethod
    def _at_least_min(cls, max_size: int, info: ValidationInfo) -> int:
        min_size = info.data.get("min_size")
        if min_size is not None and max_size < min_size:
            raise ValueError(f"must be at least min_size ({min_size})")
        return max_size

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r}: letters, digits, . _ / - (≤ 63, alphanumeric at the ends)"
                )
            if _CONTROL.search(value):
                raise ValueError(f"label {key}: control characters are not allowed in values")
        return labels

    @field_validator("vmid_range")
    @classmethod
    def _ordered_range(cls, vmid_range: tuple[int, int] | None) -> tuple[int, int] | None:
        if vmid_range is not None and vmid_range[0] > vmid_range[1]:
            raise ValueError(f"first vmid {vmid_range[0]} is after the last {vmid_range[1]}")
        return vmid_range

    @field_validator("ciuser", "ipconfig0")
    @classmethod
    def _qemu_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("kind") is GuestKind.LXC:
            raise ValueError("only for qemu pools: LXC guests have no cloud-init")
        return value

    @field_validator("sshkeys")
    @classmethod
    def _ssh_keys(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        if keys and info.data.get("kind") is GuestKind.LXC:
            raise ValueError("only for qemu pools: LXC guests have no cloud-init")
        for index, key in enumerate(keys):
            if not _SSH_KEY.match(key.strip()) or "\n" in key.strip():
                raise ValueError(f"entry {index} is not one OpenSSH public key (type base64 [comment])")
        return [key.strip() for key in keys]
