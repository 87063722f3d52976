"""What the metrics API asks Prometheus, as data (pure): one PromQL query per series of a service's or a
node's metric, the unit of the answer, and the range and step a request means.

Replica series come from the agents (agent/metrics.py: cAdvisor's names, labelled service and
environment by id); request series from Traefik, whose routers are named <service>-<environment>
(core/naming.py route_name), with `-tls` for the HTTPS router. Rates are taken over at least four scrape
intervals, so that one missed scrape never makes a gap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from core.naming import route_name

MAX_POINTS = 500  # per series: plenty for a chart, far below Prometheus' own limit (11,000)
DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h|d|w)$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_RANGE_SECONDS = 31 * 86400


class ServiceMetric(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    NETWORK = "network"
    DISK = "disk"
    REQUESTS = "requests"
    ERRORS = "errors"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"


class NodeMetric(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"
    LOAD = "load"


@dataclass(frozen=True)
class Query:
    """`promql` answers one series, or one per replica when `per_replica` (its `replica` label)."""

    name: str
    promql: str
    per_replica: bool = False


@dataclass(frozen=True)
class MetricQueries:
    unit: str
    total: Query
    parts: tuple[Query, ...] = ()


def parse_duration(value: str, field: str) -> int:
    """Seconds of `30m`, `6h`, `7d`...; ValueError naming the field otherwise."""
    match = DURATION.match(value)
    if match is None:
        raise ValueError(f"{field}: a duration such as 30s, 15m, 6h or 7d, got {value!r}")
    return int(match.group(1)) * SECONDS[match.group(2)]


def step_for(range_seconds: int, step_seconds: int | None, scrape_interval: float) -> int:
    """The step asked for, or one giving about MAX_POINTS points; never finer than a scrape."""
    floor = max(1, math.ceil(scrape_interval))
    wanted = step_seconds if step_seconds is not None else math.ceil(range_seconds / MAX_POINTS)
    return max(floor, wanted, math.ceil(range_seconds / MAX_POINTS))


def rate_window(step_seconds: int, scrape_interval: float) -> str:
    return f"{max(step_seconds, math.ceil(4 * scrape_interval))}s"


def service_queries(
    metric: ServiceMetric, service_id: str, environment_id: str, window: str
) -> MetricQueries:
    replicas = f'service="{_escaped(service_id)}",environment="{_escaped(environment_id)}"'
    router = route_name(service_id, environment_id)  # Dockyard's ids: letters, digits and dashes
    routers = f'router=~"{router}(-tls)?@http"'
    match metric:
        case ServiceMetric.CPU:
            rate = f"rate(container_cpu_usage_seconds_total{{{replicas}}}[{window}])"
            return _summed("cores", rate)
        case ServiceMetric.MEMORY:
            return _summed("bytes", f"container_memory_working_set_bytes{{{replicas}}}")
        case ServiceMetric.DISK:
            return _summed("bytes", f"container_fs_usage_bytes{{{replicas}}}")
        case ServiceMetric.NETWORK:
            received = f"rate(container_network_receive_bytes_total{{{replicas}}}[{window}])"
            transmitted = f"rate(container_network_transmit_bytes_total{{{replicas}}}[{window}])"
            both = f"({received} + {transmitted})"
            return MetricQueries(
                unit="bytes/s",
                total=Query("total", f"sum({both})"),
                parts=(
                    Query("received", f"sum({received})"),
                    Query("transmitted", f"sum({transmitted})"),
                    Query("replica", f"sum by (replica) ({both})", per_replica=True),
                ),
            )
        case ServiceMetric.REQUESTS:
            rate = f"sum(rate(traefik_router_requests_total{{{routers}}}[{window}]))"
            return MetricQueries(unit="requests/s", total=Query("total", rate))
        case ServiceMetric.ERRORS:
            rate = f'sum(rate(traefik_router_requests_total{{{routers},code=~"5.."}}[{window}]))'
            return MetricQueries(unit="requests/s", total=Query("total", rate))
        case ServiceMetric.LATENCY_P50 | ServiceMetric.LATENCY_P95:
            quantile = 0.5 if metric is ServiceMetric.LATENCY_P50 else 0.95
            buckets = f"rate(traefik_router_request_duration_seconds_bucket{{{routers}}}[{window}])"
            latency = f"histogram_quantile({quantile}, sum by (le) ({buckets}))"
            return MetricQueries(unit="seconds", total=Query("total", latency))


def node_queries(metric: NodeMetric, node_name: str, window: str) -> MetricQueries:
    node = f'node="{_escaped(node_name)}"'
    match metric:
        case NodeMetric.CPU:
            busy = f'sum(rate(node_cpu_seconds_total{{{node},mode!="idle",mode!="iowait"}}[{window}]))'
            return MetricQueries(unit="cores", total=Query("total", busy))
        case NodeMetric.MEMORY:
            used = f"sum(node_memory_MemTotal_bytes{{{node}}} - node_memory_MemAvailable_bytes{{{node}}})"
            return MetricQueries(unit="bytes", total=Query("total", used))
        case NodeMetric.DISK:
            used = f"sum(node_filesystem_size_bytes{{{node}}} - node_filesystem_avail_bytes{{{node}}})"
            return MetricQueries(unit="bytes", total=Query("total", used))
        case NodeMetric.LOAD:
            return MetricQueries(unit="load", total=Query("total", f"max(node_load1{{{node}}})"))


def _summed(unit: str, series: str) -> MetricQueries:
    return MetricQueries(
        unit=unit,
        total=Query("total", f"sum({series})"),
        parts=(Query("replica", f"sum by (replica) ({series})", per_replica=True),),
    )


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
