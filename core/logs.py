"""Runtime logs, pure: Docker's log stream read into lines, the times a reader asks for, and the search
syntax of the log explorer.

Search (like Railway's filter): terms separated by spaces, every one must match a line.
- `word` or `"a phrase"`: the line contains it, in any case.
- `key:value` (or `@key:value`): on a JSON line, its field `key` (`a.b` for nested objects) is `value`, in any
  case; on a plain-text line, the text contains `key:value` (so `http://host` searches as text).
- `-term`: the line does not match `term`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import struct
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from core.contracts import LogNotice
from core.metrics import DURATION, parse_duration

# Docker's multiplexed stream (a container without a TTY): each frame is an 8-byte header (stream type,
# three zero bytes, payload size as a big-endian uint32) followed by the payload.
FRAME_HEADER = struct.Struct(">BxxxI")
STREAMS = {0: "stdout", 1: "stdout", 2: "stderr"}
MESSAGE_LIMIT = 16_384  # characters kept of one log line
SEARCH_LIMIT = 500  # characters of a search

T = TypeVar("T")
_KEY = re.compile(r"^@?([A-Za-z_][\w.-]*):(.+)$")


class InvalidLogQuery(ValueError):
    """A search or a time a reader gave cannot be understood; the message says which and why."""


# --- Docker's stream --------------------------------------------------------------------------------


class FrameReader:
    """Feed it the bytes of a multiplexed log stream as they come; it gives back complete lines as
    (stream, text), holding a partial frame or line until the rest arrives. Memory is bounded by one
    frame and one line (cut at MESSAGE_LIMIT)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self._buffer += data
        lines: list[tuple[str, str]] = []
        while len(self._buffer) >= FRAME_HEADER.size:
            kind, size = FRAME_HEADER.unpack_from(self._buffer)
            if len(self._buffer) < FRAME_HEADER.size + size:
                break
            payload = bytes(self._buffer[FRAME_HEADER.size : FRAME_HEADER.size + size])
            del self._buffer[: FRAME_HEADER.size + size]
            stream = STREAMS.get(kind, "stdout")
            lines += self._lines(stream, payload)
        return lines

    def flush(self) -> list[tuple[str, str]]:
        """What is left once the stream has ended: a last line without its newline."""
        left = [(stream, _text(bytes(rest))) for stream, rest in self._partial.items() if rest]
        for rest in self._partial.values():
            rest.clear()
        return left

    def _lines(self, stream: str, payload: bytes) -> list[tuple[str, str]]:
        partial = self._partial[stream]
        partial += payload
        *complete, rest = bytes(partial).split(b"\n")
        partial.clear()
        # A line that never ends is cut, never held without bound.
        partial += rest[: MESSAGE_LIMIT * 4]
        return [(stream, _text(line)) for line in complete]


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip("\r")[: MESSAGE_LIMIT + 64]


def split_timestamp(line: str) -> tuple[datetime, str]:
    """Docker's `timestamps=1` prefix (RFC 3339 with nanoseconds) and the message after it."""
    stamp, _, message = line.partition(" ")
    return parse_docker_time(stamp), message[:MESSAGE_LIMIT]


def parse_docker_time(stamp: str) -> datetime:
    """`2026-12-07T21:30:01.123456789Z` (or with an offset) as an aware datetime, to the microsecond."""
    main, dot, rest = stamp.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        stamp = f"{main}.{fraction[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidLogQuery(f"not a Docker log timestamp: {stamp[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unix_seconds(moment: datetime) -> str:
    """The `since`/`until` of Docker's log API: Unix seconds with their fraction."""
    return f"{moment.timestamp():.6f}"


# --- what a reader asks for -------------------------------------------------------------------------


def parse_moment(value: str, now: datetime) -> datetime:
    """A reader's `since`/`until`: an RFC 3339 time (`2026-12-07T21:00:00Z`) or how long ago (`15m`,
    `2h`, `7d`)."""
    text = value.strip()
    if not text:
        raise InvalidLogQuery("an empty time")
    if DURATION.match(text):
        return now - timedelta(seconds=parse_duration(text, "time"))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidLogQuery(
            f"{value!r} is neither an RFC 3339 time (2026-12-07T21:00:00Z) nor a duration ago (15m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Term:
    text: str
    key: str | None = None  # `key:value`: the field's dotted path; `text` is the value
    negated: bool = False

    def matches(self, message: str, fields: dict[str, Any] | None) -> bool:
        return self._found(message, fields) != self.negated

    def _found(self, message: str, fields: dict[str, Any] | None) -> bool:
        if self.key is None:
            return self.text.lower() in message.lower()
        if fields is None:
            return f"{self.key}:{self.text}".lower() in message.lower()
        value = _field(fields, self.key)
        if value is None or isinstance(value, dict | list):
            return False
        shown = json.dumps(value) if isinstance(value, bool) else str(value)
        return shown.lower() == self.text.lower()


@dataclass(frozen=True)
class Search:
    terms: tuple[Term, ...] = ()

    def matches(self, message: str) -> bool:
        if not self.terms:
            return True
        fields = json_fields(message) if any(term.key for term in self.terms) else None
        return all(term.matches(message, fields) for term in self.terms)


def parse_search(text: str | None) -> Search:
    """The terms of a search (see the module's doc), or InvalidLogQuery naming what is wrong."""
    if not text or not text.strip():
        return Search()
    if len(text) > SEARCH_LIMIT:
        raise InvalidLogQuery(f"a search is at most {SEARCH_LIMIT} characters")
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        words = list(lexer)
    except ValueError as exc:
        raise InvalidLogQuery(f"search {text!r}: {exc} (close the quote)") from None
    terms = []
    for word in words:
        negated = word.startswith("-") and len(word) > 1
        body = word[1:] if negated else word
        match = _KEY.match(body)
        if match:
            terms.append(Term(text=match.group(2), key=match.group(1), negated=negated))
        elif body:
            terms.append(Term(text=body, negated=negated))
    return Search(tuple(terms))


def json_fields(message: str) -> dict[str, Any] | None:
    """The fields of a JSON-object log line, or None for any other line."""
    stripped = message.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _field(fields: dict[str, Any], path: str) -> Any:
    if path in fields:
        return fields[path]
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def last(lines: Iterable[T], count: int) -> list[T]:
    """The last `count` items, holding no more than that many at once."""
    return list(deque(lines, maxlen=count))


class LogFeed(Generic[T]):
    """What is on its way to one log follower: a bounded queue that counts the items it had no room
    for (a reader slower than the writers loses lines, never memory), and the tasks that fill it,
    cancelled together by `close` when the follower goes. The agent (a task per container) and the API
    (a task per node) follow with one each."""

    def __init__(self, node: str, capacity: int) -> None:
        self.node = node
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def put(self, item: T) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def running(self, key: str) -> bool:
        task = self.tasks.get(key)
        return task is not None and not task.done()

    def start(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        self.tasks[key] = asyncio.create_task(work)

    async def next(self, wait_seconds: float) -> T | LogNotice | None:
        """The next item; first a `dropped` notice if some were; None after `wait_seconds` of nothing."""
        if self.dropped:
            count, self.dropped = self.dropped, 0
            reason = f"{count} lines dropped: the reader was slower than they came"
            return LogNotice(kind="dropped", node=self.node, reason=reason, count=count)
        try:
            return await asyncio.wait_for(self.queue.get(), wait_seconds)
        except TimeoutError:
            return None

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
