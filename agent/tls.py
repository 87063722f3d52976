"""How an enrolled agent serves its API with mutual TLS through uvicorn (core/mtls.py does the work)."""

from __future__ import annotations

from typing import Any

from agent.enrollment import NodeIdentity
from core import mtls


def uvicorn_options(identity: NodeIdentity) -> dict[str, Any]:
    """What `uvicorn.run` needs to serve HTTPS as this node, to clients of Dockyard's CA only."""
    return mtls.server_options(identity.certificate_file, identity.key_file, identity.ca_file)
