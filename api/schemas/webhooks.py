"""A project's webhook settings (the secret and the URLs to configure) and its delivery log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class WebhookSettings(BaseModel):
    project_id: str
    secret: str
    content_type: str = "application/json"
    urls: dict[str, str]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    provider: str
    event: str | None
    delivery_id: str | None
    verdict: str
    reason: str
    deployment_ids: list[str]
    received_at: datetime
