"""Runtime logs, pure: Docker's multiplexed stream, its timestamps, readers' times and the search syntax."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logs import (
    MESSAGE_LIMIT,
    FrameReader,
    InvalidLogQuery,
    parse_docker_time,
    parse_moment,
    parse_search,
    split_timestamp,
)


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


def test_frames_give_lines_per_stream_whatever_the_chunks() -> None:
    data = frame(1, b"one\ntw") + frame(2, b"err\n") + frame(1, b"o\nthree\n")
    for size in (1, 3, 7, len(data)):
        reader = FrameReader()
        lines = []
        for start in range(0, len(data), size):
            lines += reader.feed(data[start : start + size])
        assert lines == [("stdout", "one"), ("stderr", "err"), ("stdout", "two"), ("stdout", "three")]
        assert reader.flush() == []


def test_a_last_line_without_newline_comes_at_the_end_and_endless_lines_are_cut() -> None:
    reader = FrameReader()
    assert reader.feed(frame(1, b"x" * (MESSAGE_LIMIT * 10))) == []
    ((stream, text),) = reader.flush()
    assert stream == "stdout" and len(text) <= MESSAGE_LIMIT + 64


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.text(alphabet="ab \n", max_size=20)), max_size=8))
def test_frames_lose_nothing(parts: list[tuple[int, str]]) -> None:
    reader = FrameReader()
    lines = []
    for kind, text in parts:
        lines += reader.feed(frame(kind, text.encode()))
    lines += reader.flush()
    for kind, name in ((1, "stdout"), (2, "stderr")):
        written = "".join(text for k, text in parts if k == kind)
        expected = written.split("\n")
        if expected and expected[-1] == "":
            expected.pop()
        assert [text for stream, text in lines if stream == name] == [t.rstrip("\r") for t in expected]


def test_docker_timestamps_keep_the_microseconds() -> None:
    moment, message = split_timestamp("2026-12-07T21:30:01.123456789Z GET / 200")
    assert moment == datetime(2026, 12, 7, 21, 30, 1, 123456, tzinfo=UTC)
    assert message == "GET / 200"
    assert parse_docker_time("2026-12-07T21:30:01Z") == datetime(2026, 12, 7, 21, 30, 1, tzinfo=UTC)
    assert parse_docker_time("2026-12-07T21:30:01.5+01:00") == datetime(
        2026, 12, 7, 20, 30, 1, 500000, tzinfo=UTC
    )
    with pytest.raises(InvalidLogQuery):
        split_timestamp("not-a-time hello")


def test_a_reader_s_time_is_rfc_3339_or_a_duration_ago() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert parse_moment("15m", now) == now - timedelta(minutes=15)
    assert parse_moment("2h", now) == now - timedelta(hours=2)
    assert parse_moment("2026-12-07T10:00:00Z", now) == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert parse_moment("2026-12-07T10:00:00", now).tzinfo is not None
    for bad in ("", "yesterday", "15 minutes", "-5m"):
        with pytest.raises(InvalidLogQuery):
            parse_moment(bad, now)


@pytest.mark.parametrize(
    ("search", "line", "matches"),
    [
        ("", "anything", True),
        ("error", "An ERROR happened", True),
        ("error", "all fine", False),
        ("timeout db", "db timeout after 5s", True),
        ("timeout db", "timeout", False),
        ('"GET /health"', "GET /health 200", True),
        ('"GET /health"', "GET /x /health", False),
        ("-health", "GET /health 200", False),
        ("-health", "GET / 200", True),
        ("level:error", '{"level":"error","msg":"boom"}', True),
        ("level:error", '{"level":"ERROR","msg":"boom"}', True),
        ("level:error", '{"level":"info","msg":"error"}', False),
        ("@level:error", '{"level":"error"}', True),
        ("http.status:502", '{"http":{"status":502}}', True),
        ("http.status:502", '{"http":{"status":200}}', False),
        ("ok:true", '{"ok":true}', True),
        ("level:error", "level:error in plain text", True),
        ("level:error", "plain text", False),
        ("http://example.com", "fetching http://example.com/x", True),
        ("-level:debug boom", '{"level":"error","msg":"boom"}', True),
        ("-level:debug", '{"level":"debug"}', False),
        ("level:error", '{"level": ["error"]}', False),
        ("msg:boom", "[1, 2]", False),
    ],
)
def test_search(search: str, line: str, matches: bool) -> None:
    assert parse_search(search).matches(line) is matches


def test_a_search_that_cannot_be_read_says_why() -> None:
    with pytest.raises(InvalidLogQuery, match="quot"):
        parse_search('"unclosed')
    with pytest.raises(InvalidLogQuery, match="at most"):
        parse_search("x" * 501)
