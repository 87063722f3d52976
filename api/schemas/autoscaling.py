"""A service's autoscaling (the policy is core/autoscaling.py's AutoscalingPolicy) and its decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.autoscaling import AutoscalingPolicy


class AutoscalingRead(BaseModel):
    service_id: str
    environment_id: str
    environment: str
    policy: AutoscalingPolicy
    updated_at: datetime


class ScalingEventRead(BaseModel):
    at: datetime
    current: int = Field(description="replicas when it decided")
    recommendation: int = Field(description="what the metrics asked for, before the behaviour")
    desired: int = Field(description="what it decided: within min..max, the windows and the step limits")
    reason: str
    inputs: dict[str, Any] = Field(description="per metric: value, target and proposal; per replica: use")
    result: str = Field(description="scaled, held, or why the scale did not run")
