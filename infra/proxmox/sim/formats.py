"""PVE's named string formats (`format => 'pve-vmid'`), with the messages PVE dies with.

A verifier raises `ValueError(message)`; the validator reports it as `invalid format - <message>`.
Formats not listed here are accepted as PVE would accept any well-formed value of them. Names ending in
`-list` are lists of the base format, split the way `PVE::Tools::split_list` splits.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

NODE_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?")
DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
DNS_RE = re.compile(rf"({DNS_LABEL}\.)*{DNS_LABEL}")
STORAGE_ID_RE = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.IGNORECASE)
CONFIGID_RE = re.compile(r"[a-z][a-z0-9_]+", re.IGNORECASE)
TAG_RE = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.IGNORECASE)
POOLID_RE = re.compile(r"[A-Za-z0-9_\-]+")
VOLUME_ID_RE = re.compile(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", re.IGNORECASE)
URLENCODED_RE = re.compile(r"[-%a-zA-Z0-9_.!~*'()]*")
MAC_RE = re.compile(r"[a-f0-9]{2}(:[a-f0-9]{2}){5}", re.IGNORECASE)
SIZE_RE = re.compile(r"(\d+(\.\d+)?)([KMGT])?")
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def split_list(text: str) -> list[str]:
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


def parse_size(value: str) -> int | None:
    """Bytes of a PVE size (`8G`, `512M`, `1024`), or None."""
    match = SIZE_RE.fullmatch(value)
    if match is None:
        return None
    return int(float(match.group(1)) * UNITS[match.group(3) or ""])


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size % UNITS[unit] == 0 and size >= UNITS[unit]:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)


def _matching(regex: re.Pattern[str], message: str) -> Callable[[str], None]:
    def verify(value: str) -> None:
        if regex.fullmatch(value) is None:
            raise ValueError(message.format(value=value))

    return verify


def _vmid(value: str) -> None:
    if re.fullmatch(r"[1-9][0-9]{2,8}", value) is None:
        raise ValueError("value does not look like a valid VM ID")


def _ip(version: int | None, what: str) -> Callable[[str], None]:
    def verify(value: str) -> None:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"value does not look like a valid {what}") from None
        if version is not None and address.version != version:
            raise ValueError(f"value does not look like a valid {what}")

    return verify


def _cidr(version: int | None, what: str, specials: tuple[str, ...] = ()) -> Callable[[str], None]:
    def verify(value: str) -> None:
        if value in specials:
            return
        address, _, prefix = value.partition("/")
        try:
            ip = ipaddress.ip_address(address)
            bits = int(prefix)
        except ValueError:
            raise ValueError(f"value does not look like a valid {what}") from None
        low, high = (8, 32) if ip.version == 4 else (8, 128)
        if (version is not None and ip.version != version) or not low <= bits <= high:
            raise ValueError(f"value does not look like a valid {what}")

    return verify


def _disk_size(value: str) -> None:
    if parse_size(value) is None:
        raise ValueError(f"value does not look like a valid disk size: {value}")


def _volume_id(value: str) -> None:
    if VOLUME_ID_RE.fullmatch(value) is None:
        raise ValueError(f"unable to parse volume ID '{value}'")


def _volume_or_path(value: str) -> None:
    if value.startswith("/") or value in ("none", "cdrom"):
        return
    if re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]:\d+(\.\d+)?", value, re.IGNORECASE):
        return  # STORAGE:SIZE_IN_GiB allocates a new volume
    _volume_id(value)


VERIFIERS: dict[str, Callable[[str], None]] = {
    "pve-node": _matching(NODE_RE, "value does not look like a valid node name"),
    "pve-vmid": _vmid,
    "pve-storage-id": _matching(STORAGE_ID_RE, "storage ID '{value}' contains illegal characters"),
    "pve-configid": _matching(CONFIGID_RE, "invalid configuration ID '{value}'"),
    "pve-tag": _matching(TAG_RE, "invalid characters in tag"),
    "pve-poolid": _matching(POOLID_RE, "invalid pool ID '{value}'"),
    "dns-name": _matching(DNS_RE, "value does not look like a valid DNS name"),
    "urlencoded": _matching(URLENCODED_RE, "invalid urlencoded string: {value}"),
    "mac-addr": _matching(MAC_RE, "value does not look like a valid MAC address"),
    "ipv4": _ip(4, "IPv4 address"),
    "ipv6": _ip(6, "IPv6 address"),
    "ip": _ip(None, "IP address"),
    "address": _ip(None, "IP address"),
    "CIDR": _cidr(None, "CIDR network"),
    "CIDRv4": _cidr(4, "IPv4 CIDR network"),
    "CIDRv6": _cidr(6, "IPv6 CIDR network"),
    "pve-ipv4-config": _cidr(4, "ipv4 network configuration", ("dhcp", "manual")),
    "pve-ipv6-config": _cidr(6, "ipv6 network configuration", ("auto", "dhcp", "manual")),
    "disk-size": _disk_size,
    "pve-volume-id": _volume_id,
    "pve-volume-id-or-qm-path": _volume_or_path,
    "pve-lxc-mp-string": lambda value: None,
}

# Named formats that are property strings themselves (registered as hashes in PVE).
_OPTIONAL = {"optional": 1, "type": "string"}
HASH_FORMATS: dict[str, dict[str, Any]] = {
    "pve-qm-ipconfig": {
        "ip": {**_OPTIONAL, "format": "pve-ipv4-config"},
        "gw": {**_OPTIONAL, "format": "ipv4"},
        "ip6": {**_OPTIONAL, "format": "pve-ipv6-config"},
        "gw6": {**_OPTIONAL, "format": "ipv6"},
    },
    "pve-qm-cicustom": {
        key: {**_OPTIONAL, "format": "pve-volume-id"} for key in ("meta", "network", "user", "vendor")
    },
}


def verifier(name: str) -> Callable[[str], None] | None:
    if (found := VERIFIERS.get(name)) is not None:
        return found
    if name.endswith(("-list", "-alist")) and (base := VERIFIERS.get(name.rsplit("-", 1)[0])):

        def verify_list(value: str) -> None:
            for item in split_list(value):
                base(item)

        return verify_list
    return None
