"""Dockyard's Proxmox VE adapter: PveClient (proxmoxer, the one executor of core/proxmox's requests) and the
activities that provision and decommission node pool guests (activities.py; contracts in contracts.py)."""

from activities.proxmox.activities import ProxmoxActivities, pve_failure
from activities.proxmox.client import PveClient

__all__ = ["ProxmoxActivities", "PveClient", "pve_failure"]
