"""A real Prometheus on a free loopback port, its data in a temporary directory, scraping the static
targets a test gives it (each: host:port, path, scheme, bearer token), every `scrape_interval` seconds.

with PrometheusServer([Target("127.0.0.1:7801", token="...")], scrape_interval=1) as prometheus:
    prometheus.url   # what DOCKYARD_PROMETHEUS_URL is set to
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests.support import missing_component
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

PROMETHEUS_BINARY = "prometheus"


@dataclass(frozen=True)
class Target:
    address: str
    token: str | None = None
    path: str = "/metrics"
    scheme: str = "http"


class PrometheusServer(LoopbackServer):
    name = PROMETHEUS_BINARY
    slug = "prometheus"
    error = LoopbackServerError
    poll_seconds = 0.1

    def __init__(self, targets: list[Target] | None = None, scrape_interval: float = 1.0) -> None:
        super().__init__(start_timeout_seconds=60)
        self.targets = targets or []
        self.scrape_interval = scrape_interval
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if shutil.which(PROMETHEUS_BINARY) is None:
            missing_component("prometheus is not installed (apt-get install prometheus)")
        return super().start()

    def command(self, root: Path) -> list[str]:
        self.port = free_port()
        jobs = [
            {
                "job_name": f"target-{index}",
                "scheme": target.scheme,
                "metrics_path": target.path,
                **(
                    {"authorization": {"type": "Bearer", "credentials": target.token}} if target.token else {}
                ),
                "static_configs": [{"targets": [target.address]}],
            }
            for index, target in enumerate(self.targets)
        ]
        interval = f"{self.scrape_interval:g}s"
        config = {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": jobs}
        (root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        return [
            PROMETHEUS_BINARY,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False
