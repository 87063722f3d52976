"""Replicas' runtime logs on one node: read from Docker's log API, kept after a replica is removed, and
followed live.

Docker's log API is read here as an asynchronous HTTP stream (not through the blocking SDK of
agent/runtime.py), so that a follower costs no thread and a reader that goes away closes its streams
at once. Nothing a reader does can slow a replica down: Docker writes the replica's output to its
json-file log whoever reads it, and a follower's lines pass through a bounded queue that drops (and
counts) what a slow reader has no room for.

The logs of a removed replica are kept in `logs_dir/<environment>/<service>/` as NDJSON, one file per
container, for `logs_retention_hours` and within `logs_max_bytes_per_service` (the oldest go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from agent import containers
from agent.runtime import DockerError, DockerUnavailable, Runtime
from core.contracts import LogLine, LogNotice
from core.logs import FrameReader, InvalidLogQuery, LogFeed, Search, last, split_timestamp, unix_seconds

log = logging.getLogger(__name__)

FOLLOW_BUFFER = 1000  # lines held for a follower that reads slower than its replicas write
WATCH_SECONDS = 1.0  # how often a follower looks for new (or restarted) containers of its service
KEEPALIVE_SECONDS = 15.0  # a silent follow stream says it is alive this often (a blank line)
MAX_FOLLOWERS = 64  # followers at once on one agent
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class LogQuery:
    service_id: str
    environment_id: str | None = None
    replica_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: Search = field(default_factory=Search)
    tail: int = 200
    deployment_id: str | None = None

    def matches_everything(self) -> bool:
        return not (self.replica_id or self.deployment_id or self.since or self.until or self.search.terms)

    def wants(self, line: LogLine) -> bool:
        return (
            (self.replica_id is None or line.replica_id == self.replica_id)
            and (self.deployment_id is None or line.deployment_id == self.deployment_id)
            and (self.since is None or line.time >= self.since)
            and (self.until is None or line.time <= self.until)
            and self.search.matches(line.message)
        )


class DockerLogs:
    """Docker's `GET /containers/{id}/logs`, stdout and stderr with Docker's timestamps."""

    def __init__(self, docker_host: str) -> None:
        if docker_host.startswith("unix://"):
            transport = httpx.AsyncHTTPTransport(uds=docker_host.removeprefix("unix://"))
            base_url = "http://docker"
        else:
            transport = httpx.AsyncHTTPTransport()
            base_url = docker_host.replace("tcp://", "http://", 1)
        # No read timeout: a follow stream is silent while its replica is.
        timeout = httpx.Timeout(30.0, read=None)
        self._http = httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def lines(
        self,
        attrs: dict[str, Any],
        node: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[LogLine]:
        """The container's lines, oldest first; with `follow`, then each new one until it stops."""
        labels = containers.labels_of(attrs)
        replica_id = labels.get(containers.LABEL_REPLICA) or attrs.get("Id", "")[:12]
        deployment_id = labels.get(containers.LABEL_DEPLOYMENT)
        params: dict[str, str | int] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": int(follow)}
        if since is not None:
            params["since"] = unix_seconds(since)
        if until is not None and not follow:
            params["until"] = unix_seconds(until)
        params["tail"] = tail if tail is not None else "all"
        tty = bool((attrs.get("Config") or {}).get("Tty"))
        try:
            async with self._http.stream("GET", f"/containers/{attrs['Id']}/logs", params=params) as answer:
                if answer.status_code == 404:
                    return
                if answer.status_code >= 400:
                    body = (await answer.aread()).decode(errors="replace")
                    raise DockerError(f"Docker's log API answered HTTP {answer.status_code}: {body[:300]}")
                frames = FrameReader()
                pending = ""
                async for chunk in answer.aiter_raw():
                    if tty:  # a TTY's output is one raw stream
                        pending += chunk.decode(errors="replace")
                        *complete, pending = pending.split("\n")
                        found = [("stdout", text) for text in complete]
                    else:
                        found = frames.feed(chunk)
                    for stream, text in found:
                        if (line := _line(text, stream, replica_id, deployment_id, node)) is not None:
                            yield line
                rest = [("stdout", pending)] if tty and pending else frames.flush()
                for stream, text in rest:
                    if (line := _line(text, stream, replica_id, deployment_id, node)) is not None:
                        yield line
        except httpx.TransportError as exc:
            raise DockerUnavailable(f"docker engine unreachable for logs: {exc!r}") from None


def _time(line: LogLine) -> datetime:
    return line.time


def _line(text: str, stream: str, replica_id: str, deployment_id: str | None, node: str) -> LogLine | None:
    if not text:
        return None
    try:
        moment, message = split_timestamp(text)
    except InvalidLogQuery:
        return None
    return LogLine(
        time=moment,
        stream="stderr" if stream == "stderr" else "stdout",
        message=message,
        replica_id=replica_id,
        deployment_id=deployment_id,
        node=node,
    )


class LogArchive:
    """The logs of removed containers, one NDJSON file each, per environment and service."""

    def __init__(self, root: Path, retention: timedelta, max_bytes_per_service: int) -> None:
        self.root = root
        self.retention = retention
        self.max_bytes = max_bytes_per_service

    def directory(self, environment_id: str, service_id: str) -> Path | None:
        if not (_SAFE_ID.match(environment_id) and _SAFE_ID.match(service_id)):
            return None
        return self.root / environment_id / service_id

    async def keep(self, attrs: dict[str, Any], lines: AsyncIterator[LogLine]) -> Path | None:
        """Write the container's lines to the archive (replacing an earlier copy of the same container)."""
        labels = containers.labels_of(attrs)
        directory = self.directory(
            labels.get(containers.LABEL_ENVIRONMENT, ""), labels.get(containers.LABEL_SERVICE, "")
        )
        if directory is None:
            return None
        replica_id = labels.get(containers.LABEL_REPLICA, "")
        container_id = str(attrs.get("Id", ""))[:12]
        if not (_SAFE_ID.match(replica_id) and _SAFE_ID.match(container_id)):
            return None
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = directory / f"{replica_id}.{container_id}.ndjson"
        partial = target.with_suffix(".partial")
        written = 0
        with partial.open("w", encoding="utf-8") as out:
            async for line in lines:
                text = line.model_dump_json() + "\n"
                out.write(text)
                written += len(text)
        if written == 0:
            partial.unlink()
            return None
        if written > self.max_bytes:
            _keep_tail(partial, self.max_bytes)
        os.replace(partial, target)
        self.prune(directory)
        return target

    def files(self, environment_id: str | None, service_id: str) -> list[Path]:
        """The archived files of a service (in one environment, or all), after pruning."""
        if not _SAFE_ID.match(service_id) or not self.root.is_dir():
            return []
        environments = [environment_id] if environment_id else [p.name for p in self.root.iterdir()]
        found: list[Path] = []
        for environment in environments:
            directory = self.directory(environment, service_id)
            if directory is not None and directory.is_dir():
                self.prune(directory)
                found += sorted(directory.glob("*.ndjson"))
        return found

    def prune(self, directory: Path) -> None:
        """Drop files past the retention, then the oldest until the service fits its bound."""
        cutoff = time.time() - self.retention.total_seconds()
        kept: list[tuple[float, int, Path]] = []
        for path in directory.glob("*.ndjson"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                if stat.st_mtime < cutoff:
                    path.unlink()
                else:
                    kept.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in kept)
        for _, size, path in sorted(kept):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size

    @staticmethod
    def container_id(path: Path) -> str:
        return path.name.removesuffix(".ndjson").rpartition(".")[2]

    def last_lines(self, path: Path, query: LogQuery) -> list[LogLine]:
        """The last `query.tail` lines of a kept file that match. A file written before `since` is
        skipped whole (it was written as its container was removed); with nothing to match, only the
        last lines are read as lines."""
        try:
            if query.since is not None and path.stat().st_mtime < query.since.timestamp():
                return []
        except FileNotFoundError:
            return []
        if query.matches_everything():
            try:
                with path.open(encoding="utf-8") as texts:
                    tail = last(texts, query.tail)
            except FileNotFoundError:
                return []
            return [line for text in tail if (line := _parsed(text)) is not None]
        return last((line for line in self.read(path) if query.wants(line)), query.tail)

    @staticmethod
    def read(path: Path) -> Iterator[LogLine]:
        try:
            with path.open(encoding="utf-8") as texts:
                for text in texts:
                    if (line := _parsed(text)) is not None:
                        yield line
        except FileNotFoundError:
            return


def _parsed(text: str) -> LogLine | None:
    try:
        return LogLine.model_validate_json(text)
    except ValueError:
        return None


def _keep_tail(path: Path, limit: int) -> None:
    """Cut a file to its last `limit` bytes, at a line boundary."""
    with path.open("rb") as source:
        source.seek(-limit, os.SEEK_END)
        tail = source.read()
    start = tail.find(b"\n") + 1
    path.write_bytes(tail[start:])


class ServiceLogs:
    """A service's logs on this node: its containers' (running or stopped) and the kept ones'."""

    def __init__(self, runtime: Runtime, docker_logs: DockerLogs, archive: LogArchive, node: str) -> None:
        self.runtime = runtime
        self.docker = docker_logs
        self.archive = archive
        self.node = node
        self._followers = 0

    async def keep(self, attrs: dict[str, Any]) -> None:
        """Archive a container's logs before it is removed. A failure is logged, never raised: the
        removal goes on."""
        try:
            await self.archive.keep(attrs, self.docker.lines(attrs, self.node))
        except (OSError, DockerError) as exc:
            log.warning("the logs of container %s could not be kept: %s", attrs.get("Id", "?")[:12], exc)

    async def history(self, query: LogQuery) -> list[LogLine]:
        """The last `query.tail` matching lines, oldest first."""
        live = await self._containers(query)
        per_source: list[list[LogLine]] = []
        for attrs in live:
            per_source.append(await self._container_lines(attrs, query))
        live_ids = {str(attrs.get("Id", ""))[:12] for attrs in live}
        for path in self.archive.files(query.environment_id, query.service_id):
            if LogArchive.container_id(path) not in live_ids:
                per_source.append(self.archive.last_lines(path, query))
        # Docker stamps stdout and stderr as it reads each, so one container's lines (in the order they
        # were written) may be a little out of time order across its two streams.
        in_order = [sorted(lines, key=_time) for lines in per_source]
        return last(heapq.merge(*in_order, key=_time), query.tail)

    async def _container_lines(self, attrs: dict[str, Any], query: LogQuery) -> list[LogLine]:
        # Without a search Docker cuts the tail itself; with one, every line in the window is looked at.
        tail = None if query.search.terms else query.tail
        lines = self.docker.lines(attrs, self.node, since=query.since, until=query.until, tail=tail)
        kept: list[LogLine] = []
        async for line in lines:
            if query.wants(line):
                kept.append(line)
                if len(kept) > 2 * query.tail:
                    del kept[: len(kept) - query.tail]
        return kept[-query.tail :]

    async def _containers(self, query: LogQuery) -> list[dict[str, Any]]:
        filters = containers.managed_filters(query.service_id, query.environment_id)
        found = await asyncio.to_thread(self.runtime.list, filters)
        if query.replica_id is not None:
            label = containers.LABEL_REPLICA
            found = [attrs for attrs in found if containers.labels_of(attrs).get(label) == query.replica_id]
        return found

    def check_room(self) -> None:
        if self._followers >= MAX_FOLLOWERS:
            raise TooManyFollowers(f"this node already serves {MAX_FOLLOWERS} log followers")

    async def follow(self, query: LogQuery) -> AsyncGenerator[LogLine | LogNotice | None]:
        """The history, then every new matching line as its replica writes it, from every container of
        the service (new ones and restarted ones too); `None` now and then while nothing is written."""
        self._followers += 1
        try:
            started = datetime.now(UTC)
            history = await self.history(replace(query, until=started))
            for line in history:
                yield line
            follow = _Follow(self, query, since=max([started, *(line.time for line in history)]))
            async with follow.running():
                while True:
                    yield await follow.next(KEEPALIVE_SECONDS)
        finally:
            self._followers -= 1


class TooManyFollowers(Exception):
    pass


class _Follow:
    """One follower: a watcher that starts a pump per running container, all feeding one LogFeed."""

    def __init__(self, logs: ServiceLogs, query: LogQuery, since: datetime) -> None:
        self.logs = logs
        self.query = query
        self.since = since
        self.feed: LogFeed[LogLine] = LogFeed(logs.node, FOLLOW_BUFFER)
        self.seen: dict[str, datetime] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.feed.start("watch", self._watch())
        try:
            yield
        finally:
            await self.feed.close()

    async def next(self, wait_seconds: float) -> LogLine | LogNotice | None:
        return await self.feed.next(wait_seconds)

    async def _watch(self) -> None:
        while True:
            try:
                found = await self.logs._containers(self.query)
            except DockerError as exc:
                log.warning("log follower: listing containers failed: %s", exc)
                found = []
            for attrs in found:
                container_id = str(attrs.get("Id", ""))
                running = (attrs.get("State") or {}).get("Status") in ("running", "restarting")
                if running and not self.feed.running(container_id):
                    self.feed.start(container_id, self._pump(attrs))
            await asyncio.sleep(WATCH_SECONDS)

    async def _pump(self, attrs: dict[str, Any]) -> None:
        container_id = str(attrs.get("Id", ""))
        since = self.seen.get(container_id, self.since)
        try:
            async for line in self.logs.docker.lines(attrs, self.logs.node, since=since, follow=True):
                if line.time <= since:
                    continue  # Docker's `since` is inclusive: the last line seen comes again
                since = self.seen[container_id] = line.time
                if self.query.wants(line):
                    self.feed.put(line)
        except DockerError as exc:
            log.warning("log follower: container %s: %s", container_id[:12], exc)
