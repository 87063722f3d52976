"""The agent gateway's bodies: heartbeat acknowledgements and certificate renewal."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class CertificateRenewal(BaseModel):
    csr: str = Field(max_length=16 * 1024, description="PEM CSR for the node's new key")


class RenewedCertificate(BaseModel):
    node_id: str
    certificate: str = Field(description="the node's new certificate (PEM), signed by Dockyard's CA")
    cert_not_after: datetime


class HeartbeatAck(BaseModel):
    node_id: str
    state: str = Field(description="READY | CORDONED | DRAINING | DOWN, after this heartbeat")
    interval_seconds: float = Field(description="when the control plane expects the next heartbeat")
