"""Metrics of a service or a node over a time range, read from Prometheus through prometheus-api-client
(the queries: core/metrics.py). Each query runs in a worker thread with a deadline; a Prometheus that is
down, slow or refuses the query is Unavailable (503, with the reason), never a server error. Points
Prometheus answers as NaN (a latency without requests) are left out: a gap, as a chart draws it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from core.metrics import (
    MAX_RANGE_SECONDS,
    MetricQueries,
    NodeMetric,
    Query,
    ServiceMetric,
    node_queries,
    parse_duration,
    rate_window,
    service_queries,
    step_for,
)
from core.models import Environment, Node, Service
from core.settings import Settings
from domain.errors import Invalid, Unavailable

QUERY_TIMEOUT_SECONDS = 10

Point = tuple[float, float]  # (unix seconds, value)


@dataclass(frozen=True)
class Series:
    name: str  # "total", "replica", "received", "transmitted"
    replica: str | None
    points: list[Point]


@dataclass(frozen=True)
class MetricRange:
    metric: str
    unit: str
    start: datetime
    end: datetime
    step_seconds: int
    total: list[Point]
    series: list[Series]


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    step_seconds: int
    rate: str


def window(settings: Settings, period: str, step: str | None, now: datetime | None = None) -> Window:
    """The time range a request means: the last `period`, at `step` (or about 500 points)."""
    try:
        seconds = parse_duration(period, "range")
        step_seconds = parse_duration(step, "step") if step is not None else None
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise Invalid(field, reason) from None
    if seconds > MAX_RANGE_SECONDS:
        raise Invalid("range", f"at most {MAX_RANGE_SECONDS // 86400}d, got {period}")
    interval = settings.prometheus_scrape_interval_seconds
    chosen = step_for(seconds, step_seconds, interval)
    end = now or datetime.now(UTC)
    return Window(end - timedelta(seconds=seconds), end, chosen, rate_window(chosen, interval))


async def service_metric(
    settings: Settings, service: Service, environment: Environment, metric: ServiceMetric, span: Window
) -> MetricRange:
    queries = service_queries(metric, service.id, environment.id, span.rate)
    return await _read(settings, metric.value, queries, span)


async def node_metric(settings: Settings, node: Node, metric: NodeMetric, span: Window) -> MetricRange:
    return await _read(settings, metric.value, node_queries(metric, node.name, span.rate), span)


async def _read(settings: Settings, metric: str, queries: MetricQueries, span: Window) -> MetricRange:
    prometheus = PrometheusConnect(
        url=settings.prometheus_url, disable_ssl=True, timeout=QUERY_TIMEOUT_SECONDS
    )
    answers = await asyncio.gather(
        *(_range(prometheus, settings, query, span) for query in (queries.total, *queries.parts))
    )
    total, *parts = answers
    series = [
        Series(query.name, result["metric"].get("replica") if query.per_replica else None, _points(result))
        for query, results in zip(queries.parts, parts, strict=True)
        for result in results
    ]
    return MetricRange(
        metric=metric,
        unit=queries.unit,
        start=span.start,
        end=span.end,
        step_seconds=span.step_seconds,
        total=_points(total[0]) if total else [],
        series=sorted(series, key=lambda s: (s.name, s.replica or "")),
    )


async def _range(
    prometheus: PrometheusConnect, settings: Settings, query: Query, span: Window
) -> list[dict[str, Any]]:
    return await _ask(
        settings,
        prometheus.custom_query_range,
        query.promql,
        start_time=span.start,
        end_time=span.end,
        step=f"{span.step_seconds}s",
    )


async def instant(settings: Settings, promql: str) -> list[dict[str, Any]]:
    """One instant query (what the autoscaler observes), answered or Unavailable as a range is."""
    return await _ask(settings, _connect(settings).custom_query, promql)


def _connect(settings: Settings) -> PrometheusConnect:
    return PrometheusConnect(url=settings.prometheus_url, disable_ssl=True, timeout=QUERY_TIMEOUT_SECONDS)


async def _ask(
    settings: Settings, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> list[dict[str, Any]]:
    try:
        answer = await asyncio.to_thread(call, *args, **kwargs)
    except requests.RequestException as exc:
        raise Unavailable(f"Prometheus at {settings.prometheus_url} did not answer: {_reason(exc)}") from None
    except PrometheusApiClientException as exc:
        raise Unavailable(f"Prometheus at {settings.prometheus_url} refused the query: {exc}") from None
    return list(answer)


def _points(result: dict[str, Any]) -> list[Point]:
    points = []
    for timestamp, value in result.get("values", []):
        number = float(value)
        if math.isfinite(number):
            points.append((float(timestamp), number))
    return points


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {QUERY_TIMEOUT_SECONDS} s"
    return str(exc)
