"""Build logs in Redis: written line by line while a build runs, read back whole or followed live.

Keys, per deployment:
  build-log:<deployment_id>   a Redis STREAM, one entry per line: {"line": text}; the entry that ends a
                              build attempt also has {"end": status}, one of succeeded, failed, timed_out,
                              cancelled, error (an attempt Temporal may retry).
                              Capped at build_log_max_lines (approximate MAXLEN) and expiring
                              build_log_retention_seconds after the last write. A retried attempt
                              appends to it.
  build-logs:<deployment_id>  a pub/sub CHANNEL; every entry is also PUBLISHed there as JSON
                              {"id": stream entry id, "line": text, "end": status or null}.

Readers that must not miss a line follow the stream (`follow_build_log`: backlog, then live, no gap);
the channel serves fire-and-forget listeners. Entry ids are usable as SSE event ids (Last-Event-ID).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

LOG_KEY_PREFIX = "build-log:"
CHANNEL_PREFIX = "build-logs:"
READ_BATCH = 1000
REDACTED = "********"

# One round trip and one atomic step per line: append, publish with the entry id, push the expiry back.
_APPEND = """
local fields = {'line', ARGV[3]}
if ARGV[4] ~= '' then table.insert(fields, 'end'); table.insert(fields, ARGV[4]) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[2])
local end_status = cjson.null
if ARGV[4] ~= '' then end_status = ARGV[4] end
redis.call('PUBLISH', KEYS[2], cjson.encode({id = id, line = ARGV[3], ['end'] = end_status}))
return id
"""


class BuildEnd(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ERROR = "error"  # an attempt that Temporal may retry (registry or engine unreachable)


def log_key(deployment_id: str) -> str:
    return f"{LOG_KEY_PREFIX}{deployment_id}"


def log_channel(deployment_id: str) -> str:
    return f"{CHANNEL_PREFIX}{deployment_id}"


class BuildLogWriter:
    """Appends one attempt's lines. Secrets (the registry password) are masked before anything is written."""

    def __init__(
        self,
        redis: Redis,
        deployment_id: str,
        max_lines: int,
        retention_seconds: int,
        secrets: Iterable[str] = (),
    ) -> None:
        self.redis = redis
        self.deployment_id = deployment_id
        self.max_lines = max_lines
        self.retention_seconds = retention_seconds
        self.secrets = [secret for secret in secrets if secret]
        self.line_count = 0
        self._recent: deque[str] = deque(maxlen=max_lines)  # this attempt's lines, for the failure summary
        self._append = redis.register_script(_APPEND)

    @property
    def lines(self) -> list[str]:
        return list(self._recent)

    async def write(self, line: str) -> None:
        line = self._redact(line)
        self.line_count += 1
        self._recent.append(line)
        await self._add(line, "")

    async def end(self, status: BuildEnd, line: str) -> None:
        await self._add(self._redact(line), status.value)

    async def _add(self, line: str, end: str) -> None:
        keys = [log_key(self.deployment_id), log_channel(self.deployment_id)]
        await self._append(keys=keys, args=[self.max_lines, self.retention_seconds, line, end])

    def _redact(self, line: str) -> str:
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


async def read_build_log(redis: Redis, deployment_id: str) -> list[str]:
    """Every line kept for the deployment, attempts and end lines included, oldest first."""
    return [line async for _, line, _ in _entries(redis, deployment_id, follow=False)]


async def follow_build_log(
    redis: Redis, deployment_id: str, after: str = "0-0", block_ms: int = 1000
) -> AsyncGenerator[str, None]:
    """The backlog, then live lines, until the end line that is the latest entry (an earlier attempt's end
    line, followed by a retry's lines, does not stop it). Waits for a build that has not started yet;
    wrap it in a timeout for that case. `after` resumes after an entry id (SSE's Last-Event-ID)."""
    async for _, line, _ in _entries(redis, deployment_id, follow=True, after=after, block_ms=block_ms):
        yield line


async def _entries(
    redis: Redis, deployment_id: str, follow: bool, after: str = "0-0", block_ms: int = 1000
) -> AsyncIterator[tuple[str, str, str | None]]:
    key = log_key(deployment_id)
    last = after
    while True:
        if follow:
            batches: Any = await redis.xread({key: last}, count=READ_BATCH, block=block_ms)
            entries = _decoded(batches[0][1] if batches else [])
        else:
            start = f"({last}" if last != "0-0" else "-"
            entries = _decoded(await redis.xrange(key, min=start, count=READ_BATCH))
            if not entries:
                return
        for last, fields in entries:
            end = fields.get("end")
            yield last, fields.get("line", ""), end
            if follow and end and await _is_latest(redis, key, last):
                return


async def _is_latest(redis: Redis, key: str, entry_id: str) -> bool:
    newest = _decoded(await redis.xrevrange(key, count=1))
    return not newest or newest[0][0] == entry_id


def _decoded(entries: Any) -> list[tuple[str, dict[str, str]]]:
    """Stream entries as text, whether the client decodes responses or not."""
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}) for entry_id, fields in entries
    ]


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def decode_published(message: str | bytes) -> dict[str, Any]:
    """A message from the channel: {"id": ..., "line": ..., "end": status or None}."""
    return dict(json.loads(message))
