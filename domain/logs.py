"""A service's runtime logs in one environment, gathered from the agent of every node its replicas ran on
(each keeps its replicas' logs, the removed ones' too: agent/logs.py) and merged in time order.

Reading asks every node at once and answers what came back: a node that cannot be read is a notice
(`unavailable`, with the reason), never a failed request. Following reads the history the same way, then
keeps one stream per node open, reconnecting a broken one from the last line it gave, and opening the
streams of nodes the service moves to; everything passes through one bounded queue, so a slow reader
costs lines (counted in a `dropped` notice), never memory. Closing the iterator closes every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agent_client import AgentCallError, client_for
from core.contracts import LogLine, LogNotice
from core.db import Database
from core.logs import InvalidLogQuery, LogFeed, last, parse_moment, parse_search
from core.models import Deployment, Environment, Node, Replica, RevokedCertificate, Service
from core.settings import Settings
from domain.errors import Invalid

LOCAL_NODE = "local"  # Replica.node of the replicas of the local `dockyard up` agent
MAX_LINES = 5000  # lines of one answer
FOLLOW_BUFFER = 2000  # lines held for a follower that reads slower than the nodes send
RESCAN_SECONDS = 5.0  # how often a follower looks for nodes the service has moved to
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # a broken node stream is opened again after these
KEEPALIVE_SECONDS = 15.0
READ_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class LogRequest:
    replica_id: str | None
    since: datetime | None
    until: datetime | None
    search: str | None
    tail: int
    deployment_id: str | None = None

    def params(self, service_id: str, environment_id: str) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            "service_id": service_id,
            "environment_id": environment_id,
            "tail": self.tail,
        }
        if self.replica_id:
            params["replica_id"] = self.replica_id
        if self.deployment_id:
            params["deployment_id"] = self.deployment_id
        if self.since is not None:
            params["since"] = self.since.isoformat()
        if self.until is not None:
            params["until"] = self.until.isoformat()
        if self.search:
            params["search"] = self.search
        return params


def log_request(
    since: str | None,
    until: str | None,
    search: str | None,
    replica: str | None,
    tail: int,
    deployment: str | None = None,
) -> LogRequest:
    """The reader's query, checked: Invalid names the parameter that cannot be understood."""
    now = datetime.now(UTC)
    moments: dict[str, datetime | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            moments[name] = parse_moment(value, now) if value else None
        except InvalidLogQuery as exc:
            raise Invalid(name, str(exc)) from None
    try:
        parse_search(search)
    except InvalidLogQuery as exc:
        raise Invalid("search", str(exc)) from None
    start, end = moments["since"], moments["until"]
    if start is not None and end is not None and end < start:
        raise Invalid("until", f"{end.isoformat()} is before since ({start.isoformat()})")
    if not 1 <= tail <= MAX_LINES:
        raise Invalid("tail", f"between 1 and {MAX_LINES} lines")
    return LogRequest(replica or None, start, end, search or None, tail, deployment or None)


@dataclass(frozen=True)
class LogSource:
    """A node that holds logs of the service: its name (shown on each line) and how to reach its agent."""

    name: str
    node_id: str | None  # None: the local agent
    address: str | None


@dataclass(frozen=True)
class ServiceLogs:
    lines: list[LogLine]
    notices: list[LogNotice]


async def log_sources(session: AsyncSession, service: Service, environment: Environment) -> list[LogSource]:
    """Every current node any replica of the service in the environment was placed on."""
    nodes = set(
        await session.scalars(
            select(Replica.node)
            .join(Deployment, Deployment.id == Replica.deployment_id)
            .where(Deployment.service_id == service.id, Deployment.environment_id == environment.id)
            .distinct()
        )
    )
    sources = [LogSource("local", None, None)] if LOCAL_NODE in nodes else []
    enrolled = await session.scalars(
        select(Node).where(Node.id.in_(nodes - {LOCAL_NODE}), Node.removed_at.is_(None)).order_by(Node.name)
    )
    sources += [LogSource(node.name, node.id, node.address) for node in enrolled]
    return sources


async def read_logs(
    settings: Settings,
    session: AsyncSession,
    service: Service,
    environment: Environment,
    request: LogRequest,
) -> ServiceLogs:
    """The last `request.tail` lines of the service, from every node, oldest first."""
    sources = await log_sources(session, service, environment)
    revoked = await _revoked(session)
    params = request.params(service.id, environment.id)
    answers = await asyncio.gather(*(_read_one(settings, source, params, revoked) for source in sources))
    notices = [item for lines in answers for item in lines if isinstance(item, LogNotice)]
    per_node = [[item for item in lines if isinstance(item, LogLine)] for lines in answers]
    merged = last(heapq.merge(*per_node, key=lambda line: line.time), request.tail)
    return ServiceLogs(lines=merged, notices=notices)


async def _read_one(
    settings: Settings, source: LogSource, params: dict[str, str | int], revoked: list[int]
) -> list[LogLine | LogNotice]:
    found: list[LogLine | LogNotice] = []
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            async with client_for(settings, source.node_id, source.address, revoked) as agent:
                async for item in agent.logs(params):
                    found.append(_from(source, item))
    except AgentCallError as exc:
        return [_unavailable(source, f"{exc.step}: {exc.reason}")]
    except TimeoutError:
        return [_unavailable(source, f"no answer within {READ_TIMEOUT_SECONDS:g} s")]
    return found


async def follow_logs(
    settings: Settings,
    db: Database,
    service: Service,
    environment: Environment,
    request: LogRequest,
) -> AsyncGenerator[LogLine | LogNotice | None]:
    """The history (`request.tail` lines), then each new line from every node as it comes; `None` while
    nothing comes, every KEEPALIVE_SECONDS. Runs until the caller closes it."""
    started = datetime.now(UTC)
    async with db.session() as session:
        history = await read_logs(
            settings, session, service, environment, replace(request, until=request.until or started)
        )
    for notice in history.notices:
        yield notice
    for line in history.lines:
        yield line
    live = replace(request, since=max([started, *(line.time for line in history.lines)]), until=None)
    follower = _Follower(settings, db, service, environment, live)
    async with follower.running():
        while True:
            yield await follower.next()


class _Follower:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        service: Service,
        environment: Environment,
        request: LogRequest,
    ) -> None:
        self.settings = settings
        self.db = db
        self.service = service
        self.environment = environment
        self.request = request
        self.feed: LogFeed[LogLine | LogNotice] = LogFeed("control-plane", FOLLOW_BUFFER)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.feed.start("watch", self._watch())
        try:
            yield
        finally:
            await self.feed.close()

    async def next(self) -> LogLine | LogNotice | None:
        return await self.feed.next(KEEPALIVE_SECONDS)

    async def _watch(self) -> None:
        while True:
            async with self.db.session() as session:
                sources = await log_sources(session, self.service, self.environment)
            for source in sources:
                key = source.node_id or LOCAL_NODE
                if key not in self.feed.tasks:
                    self.feed.start(key, self._stream(source))
            await asyncio.sleep(RESCAN_SECONDS)

    async def _stream(self, source: LogSource) -> None:
        since = self.request.since
        failures = 0
        while True:
            request = replace(self.request, since=since, tail=MAX_LINES)
            params = request.params(self.service.id, self.environment.id)
            try:
                async with self.db.session() as session:
                    revoked = await _revoked(session)
                async with client_for(self.settings, source.node_id, source.address, revoked) as agent:
                    async for item in agent.logs(params, follow=True):
                        failures = 0
                        if isinstance(item, LogLine):
                            if since is not None and item.time <= since:
                                continue  # sent again after a reconnect
                            since = item.time
                        self.feed.put(_from(source, item))
                reason = "the node ended the stream"
            except AgentCallError as exc:
                reason = f"{exc.step}: {exc.reason}"
            delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
            failures += 1
            self.feed.put(_unavailable(source, f"{reason}; reading again in {delay:g} s"))
            await asyncio.sleep(delay)


def _from(source: LogSource, item: LogLine | LogNotice) -> LogLine | LogNotice:
    """The node as the control plane names it (the agent knows only its own name)."""
    return item.model_copy(update={"node": source.name})


def _unavailable(source: LogSource, reason: str) -> LogNotice:
    return LogNotice(kind="unavailable", node=source.name, reason=f"logs of node {source.name}: {reason}")


async def _revoked(session: AsyncSession) -> list[int]:
    return [int(serial, 16) for serial in await session.scalars(select(RevokedCertificate.serial))]
