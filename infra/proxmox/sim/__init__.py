"""A Proxmox VE API simulator for Dockyard's provisioning tests and demos: `python -m infra.proxmox.sim`.

See README.md in this directory.
"""
