"""A bounded request loop through Traefik, for tests of rollouts that must fail no request (loopback only;
bounded in count and time; it stops by itself)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

LOOP_MAX_REQUESTS = 20_000  # the request loop is bounded in count and time, and only talks to loopback
LOOP_MAX_SECONDS = 120


@dataclass
class RequestLoop:
    """Requests through Traefik, one after the other, until stopped (or its bounds are reached)."""

    edge_url: str
    hostname: str
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + LOOP_MAX_SECONDS
        with httpx.Client(base_url=self.edge_url, headers={"Host": self.hostname}, timeout=10) as client:
            for _ in range(LOOP_MAX_REQUESTS):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.get("/")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"HTTP {response.status_code}: {response.text[:100]}")
                else:
                    self.answers[response.text.strip()] += 1
                time.sleep(0.005)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)


def hostname(service: dict[str, Any]) -> str:
    return str(service["urls"]["production"].split("://", 1)[1].split(":")[0])
