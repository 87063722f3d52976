"""Metrics as time series (what the dashboard draws), and Prometheus' service discovery of the agents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MetricSeries(BaseModel):
    name: str = Field(description="`replica` (one per replica), or `received` / `transmitted` for network")
    replica: str | None = Field(description="the replica's id, for a per-replica series")
    points: list[tuple[float, float]] = Field(description="[unix seconds, value], oldest first")


class MetricRead(BaseModel):
    metric: str
    unit: str = Field(description="cores, bytes, bytes/s, requests/s, seconds or load")
    start: datetime
    end: datetime
    step_seconds: int
    total: list[tuple[float, float]] = Field(
        description="the service's (or node's) sum: [unix seconds, value]"
    )
    series: list[MetricSeries] = Field(description="its parts: per replica, and network by direction")


class ScrapeTargets(BaseModel):
    """One entry of Prometheus' HTTP service discovery (http_sd_config)."""

    targets: list[str] = Field(description="host:port of an agent's API")
    labels: dict[str, str]
