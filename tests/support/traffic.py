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
STALL_SECONDS = 2.0  # an answer slower than this is a failure: zero downtime means no stall either


@dataclass
class RequestLoop:
    """Requests through Traefik, one after the other, until stopped or its bounds are reached. Keeps every
    failure (a non-200 answer, a transport error, or an answer slower than STALL_SECONDS), how often each
    body answered, and when, and the slowest answer."""

    edge_url: str
    hostname: str
    max_requests: int = LOOP_MAX_REQUESTS
    max_seconds: float = LOOP_MAX_SECONDS
    pause_seconds: float = 0.005
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter, body) of each answer
    first_seen: dict[str, float] = field(default_factory=dict)  # body → perf_counter of its first answer
    failures: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)  # perf_counter of each failure's answer
    failed_sent_at: list[float] = field(default_factory=list)  # perf_counter of each failure's request
    slowest: float = 0.0  # seconds, of any request, failed or not
    bounded_out: bool = False
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
        started = time.monotonic()
        with httpx.Client(base_url=self.edge_url, headers={"Host": self.hostname}, timeout=10) as client:
            while not self._stop.is_set():
                if self.sent >= self.max_requests or time.monotonic() - started > self.max_seconds:
                    self.bounded_out = True
                    return
                self.sent += 1
                sent_at = time.perf_counter()
                try:
                    response = client.get("/")
                except httpx.HTTPError as exc:
                    self._took(sent_at)
                    self._failed(f"{type(exc).__name__}: {exc}", sent_at)
                    continue
                if (took := self._took(sent_at)) > STALL_SECONDS:
                    self._failed(f"stalled {took:.2f} s (HTTP {response.status_code})", sent_at)
                elif response.status_code != 200:
                    self._failed(f"HTTP {response.status_code}: {response.text[:100]}", sent_at)
                else:
                    now, body = time.perf_counter(), response.text.strip()
                    self.answers[body] += 1
                    self.timeline.append((now, body))
                    self.first_seen.setdefault(body, now)
                time.sleep(self.pause_seconds)

    def _failed(self, why: str, sent_at: float) -> None:
        self.failures.append(why)
        self.failed_at.append(time.perf_counter())
        self.failed_sent_at.append(sent_at)

    def _took(self, sent_at: float) -> float:
        took = time.perf_counter() - sent_at
        self.slowest = max(self.slowest, took)
        return took

    def summary(self) -> str:
        return (
            f"{self.total} requests, {len(self.failures)} failed, slowest {self.slowest * 1000:.0f} ms, "
            f"answers {dict(self.answers)}"
        )

    @property
    def total(self) -> int:
        return self.sent

    def first(self, body: str, timeout: float = 30) -> float:
        """When `body` first answered (perf_counter), waiting for it if it has not yet."""
        deadline = time.monotonic() + timeout
        while body not in self.first_seen:
            if time.monotonic() > deadline or self.bounded_out:
                raise TimeoutError(
                    f"{body!r} never answered through Traefik (seen: {sorted(self.first_seen)})"
                )
            time.sleep(self.pause_seconds)
        return self.first_seen[body]

    def others_after(self, body: str) -> int:
        """Answers of anything but `body` after `body` first answered: traffic going back to the old."""
        since = self.first_seen.get(body)
        return sum(1 for at, answer in self.timeline if since is not None and at > since and answer != body)


def hostname(service: dict[str, Any]) -> str:
    return str(service["urls"]["production"].split("://", 1)[1].split(":")[0])
