"""The agent's log follower and archive without Docker: a reader slower than its replicas loses lines
(counted), never memory; closing a follower stops everything it started; kept logs respect retention
and size."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import logs as agent_logs
from agent.logs import FOLLOW_BUFFER, LogArchive, LogQuery, ServiceLogs
from core.contracts import LogLine, LogNotice
from core.logs import parse_search

SERVICE, ENVIRONMENT = "svc_1", "env_1"
# Lines written before a follower came, and after: a follower reads the history up to the moment it
# starts, then only what is newer.
BEFORE = datetime.now(UTC) - timedelta(hours=1)
AFTER = datetime.now(UTC) + timedelta(hours=1)


def container(replica: str) -> dict[str, Any]:
    return {
        "Id": f"{replica}0123456789abcdef",
        "State": {"Status": "running"},
        "Config": {
            "Labels": {
                "dockyard.managed": "true",
                "dockyard.replica": replica,
                "dockyard.service": SERVICE,
                "dockyard.environment": ENVIRONMENT,
                "dockyard.deployment": "dep_1",
            }
        },
    }


def line(replica: str, index: int, base: datetime = BEFORE) -> LogLine:
    return LogLine(
        time=base + timedelta(milliseconds=index),
        stream="stdout",
        message=f"line {index}",
        replica_id=replica,
        node="n1",
    )


class FakeRuntime:
    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.containers = containers

    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return self.containers


class FakeDockerLogs:
    """History: `history` lines per container; followed: `burst` new lines at once, then silence."""

    def __init__(self, history: int = 0, burst: int = 0) -> None:
        self.history = history
        self.burst = burst
        self.open_streams = 0

    async def lines(self, attrs: dict[str, Any], node: str, **query: Any) -> AsyncIterator[LogLine]:
        replica = attrs["Config"]["Labels"]["dockyard.replica"]
        if not query.get("follow"):
            for index in range(self.history):
                yield line(replica, index)
            return
        self.open_streams += 1
        try:
            for index in range(self.burst):
                yield line(replica, index, AFTER)
            await asyncio.Event().wait()  # a follow stream stays open while the container runs
        finally:
            self.open_streams -= 1


def service_logs(tmp_path: Path, docker: FakeDockerLogs, replicas: list[str]) -> ServiceLogs:
    archive = LogArchive(tmp_path, timedelta(days=1), 1 << 20)
    return ServiceLogs(FakeRuntime([container(r) for r in replicas]), docker, archive, "n1")  # type: ignore[arg-type]


async def test_a_slow_follower_loses_counted_lines_and_holds_no_more_than_its_buffer(tmp_path: Path) -> None:
    docker = FakeDockerLogs(burst=FOLLOW_BUFFER * 3)
    logs = service_logs(tmp_path, docker, ["r1"])
    follower = logs.follow(LogQuery(SERVICE, ENVIRONMENT))
    # Let the pump run while the reader reads nothing.
    first = asyncio.ensure_future(anext(follower))
    for _ in range(50):
        await asyncio.sleep(0.01)
    items = [await first]
    while len(items) < FOLLOW_BUFFER + 1:
        items.append(await anext(follower))
    notices = [item for item in items if isinstance(item, LogNotice)]
    lines = [item for item in items if isinstance(item, LogLine)]
    assert notices and notices[0].kind == "dropped"
    assert sum(notice.count for notice in notices) == FOLLOW_BUFFER * 2
    assert len(lines) == FOLLOW_BUFFER
    assert logs._followers == 1 and docker.open_streams == 1
    await follower.aclose()
    assert logs._followers == 0 and docker.open_streams == 0


async def test_a_follower_gets_history_then_new_lines_and_frees_everything_when_closed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(agent_logs, "WATCH_SECONDS", 0.01)
    docker = FakeDockerLogs(history=5, burst=3)
    logs = service_logs(tmp_path, docker, ["r1", "r2"])
    follower = logs.follow(LogQuery(SERVICE, ENVIRONMENT, tail=4))
    items = [await anext(follower) for _ in range(4 + 6)]
    history, live = items[:4], items[4:]
    assert all(isinstance(item, LogLine) for item in items)
    assert [item.time for item in history] == sorted(item.time for item in history)  # type: ignore[union-attr]
    assert {item.replica_id for item in live} == {"r1", "r2"}  # type: ignore[union-attr]
    tasks_before = len(asyncio.all_tasks())
    await follower.aclose()
    assert docker.open_streams == 0 and logs._followers == 0
    assert len(asyncio.all_tasks()) < tasks_before


def test_the_archive_drops_what_is_past_retention_then_the_oldest_beyond_the_bound(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path, timedelta(hours=1), max_bytes_per_service=3000)
    directory = archive.directory(ENVIRONMENT, SERVICE)
    assert directory is not None
    directory.mkdir(parents=True)
    now = time.time()
    for name, age, size in (
        ("old.a", 7200, 100),
        ("mid.b", 600, 1500),
        ("new.c", 60, 1500),
        ("newest.d", 0, 1000),
    ):
        path = directory / f"{name}.ndjson"
        path.write_text("x" * size)
        os.utime(path, (now - age, now - age))

    kept = archive.files(ENVIRONMENT, SERVICE)

    assert sorted(path.name for path in kept) == ["new.c.ndjson", "newest.d.ndjson"]


async def test_a_kept_log_larger_than_the_bound_keeps_its_tail_at_a_line_boundary(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path, timedelta(days=1), max_bytes_per_service=2048)

    async def many() -> AsyncIterator[LogLine]:
        for index in range(200):
            yield line("r1", index)

    kept = await archive.keep(container("r1"), many())

    assert kept is not None and kept.stat().st_size <= 2048
    lines = list(LogArchive.read(kept))
    assert lines[-1].message == "line 199"
    assert [item.message for item in lines] == [f"line {i}" for i in range(200 - len(lines), 200)]
    assert archive.directory("../escape", SERVICE) is None


async def test_a_kept_file_answers_its_last_matching_lines(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path, timedelta(days=1), max_bytes_per_service=1 << 20)

    async def some() -> AsyncIterator[LogLine]:
        for index in range(50):
            yield line("r1", index)

    kept = await archive.keep(container("r1"), some())
    assert kept is not None

    plain = archive.last_lines(kept, LogQuery(SERVICE, ENVIRONMENT, tail=3))
    assert [item.message for item in plain] == ["line 47", "line 48", "line 49"]
    searched = archive.last_lines(
        kept, LogQuery(SERVICE, ENVIRONMENT, tail=2, search=parse_search('"line 1"'))
    )
    assert [item.message for item in searched] == ["line 18", "line 19"]
    # Written (as its container was removed) before `since`: nothing in it is newer.
    later = LogQuery(SERVICE, ENVIRONMENT, since=datetime.now(UTC) + timedelta(minutes=1))
    assert archive.last_lines(kept, later) == []
