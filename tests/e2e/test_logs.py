"""Runtime logs end to end: a service with two replicas on two enrolled nodes (each its own Docker Engine
and agent over mutual TLS) writes lines; the API answers them merged in time order and filtered, a
follower over Server-Sent Events sees new lines within a second, and the lines of replicas a redeploy
removed stay readable."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from core.contracts import LogLine
from tests.support.fleet import EnrolledFleet
from tests.support.platform import AppImages, Platform, run_dockyard

pytestmark = pytest.mark.timeout(600)

# A plain line, a JSON line and a line on stderr, then a tick every 0.3 s while it serves.
CHATTY = (
    "trap 'echo bye; exit 0' TERM; echo \"hello from $HOSTNAME\"; "
    'echo "{\\"level\\":\\"error\\",\\"msg\\":\\"boom\\",\\"host\\":\\"$HOSTNAME\\"}"; '
    'echo "oops on stderr" >&2; '
    '(n=0; while :; do n=$((n+1)); echo "tick $n"; sleep 0.3; done) & '
    "busybox httpd -f -p $PORT -h /www & wait"
)


def read_logs(platform: Platform, service: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = platform.api.get(f"/v1/services/{service['id']}/logs", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def lines_of(answer: dict[str, Any]) -> list[LogLine]:
    return [LogLine.model_validate(line) for line in answer["lines"]]


def test_two_replicas_on_two_nodes_merged_filtered_followed_and_kept(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    image = app_images.push("e2e/chatty", "v1", "chatty v1")
    service = platform.create_service(
        "e2e-logs",
        "chatty",
        image,
        replicas=2,
        health_check_path="/healthz",
        start_command=CHATTY,
        constraints=[f"fleet={fleet.fleet_id}"],
        draining_seconds=2,
    )
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert first["status"] == "ACTIVE", first
    node_names = {node.name for node in fleet.nodes}

    deadline = time.monotonic() + 30
    while True:
        answer = read_logs(platform, service, tail=1000)
        lines = lines_of(answer)
        if len({line.replica_id for line in lines if line.message.startswith("tick")}) == 2:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    assert answer["notices"] == []
    assert [line.time for line in lines] == sorted(line.time for line in lines)
    nodes = {line.node for line in lines}
    assert len(nodes) == 2 and nodes <= node_names, nodes
    assert {line.deployment_id for line in lines} == {first["id"]}
    assert {line.stream for line in lines if line.message == "oops on stderr"} == {"stderr"}

    errors = lines_of(read_logs(platform, service, search="level:error msg:boom"))
    assert len(errors) == 2 and {json.loads(line.message)["host"] for line in errors} != set()
    assert {line.node for line in errors} == nodes
    assert lines_of(read_logs(platform, service, search="level:warn")) == []
    one = lines[0].replica_id
    assert {line.replica_id for line in lines_of(read_logs(platform, service, replica=one))} == {one}
    assert len(lines_of(read_logs(platform, service, tail=5))) == 5
    print(f"\n[logs] {len(lines)} lines from nodes {sorted(nodes)}, merged in time order")

    # The CLI prints the same lines, one per line, with their node; a search it cannot read says why.
    printed = run_dockyard(platform.env, "logs", "-s", service["id"], "-n", "4", "-q", "-tick", timeout=60)
    assert printed.returncode == 0, printed.stderr
    shown = printed.stdout.splitlines()
    assert len(shown) == 4 and any("oops on stderr" in text for text in shown), shown
    assert all(any(name in text for name in nodes) for text in shown), shown
    refused = run_dockyard(platform.env, "logs", "-s", service["id"], "--since", "yesterday", timeout=60)
    assert refused.returncode != 0 and "since" in refused.stderr, refused

    # A follower: the history, then new ticks from both nodes, each within a second of being written.
    lags: dict[str, list[float]] = {}
    with (
        httpx.Client(base_url=str(platform.api.base_url), headers=platform.api.headers, timeout=30) as http,
        http.stream(
            "GET", f"/v1/services/{service['id']}/logs", params={"follow": "true", "tail": 3}
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        history = 0
        started = time.monotonic()
        for text in stream.iter_lines():
            if not text.startswith("data: "):
                continue
            line = LogLine.model_validate_json(text.removeprefix("data: "))
            if history < 3:
                history += 1
                continue
            lags.setdefault(line.node, []).append(time.time() - line.time.timestamp())
            if (
                len(lags) == 2 and min(len(v) for v in lags.values()) >= 10
            ) or time.monotonic() - started > 30:
                break
    assert set(lags) == nodes, lags
    slowest = max(max(values) for values in lags.values())
    print(
        f"[logs] follow: {sum(len(v) for v in lags.values())} new lines, the slowest {slowest * 1000:.0f} ms"
    )
    assert slowest < 1.0

    # A redeploy removes the first deployment's replicas: their lines (their last words too) are kept.
    second = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert second["status"] == "ACTIVE", second
    platform.wait_released(second)
    kept = lines_of(read_logs(platform, service, tail=5000))
    old = [line for line in kept if line.deployment_id == first["id"]]
    assert {line.replica_id for line in old} == {line.replica_id for line in lines}
    assert sum(1 for line in old if line.message == "bye") == 2
    assert any(line.deployment_id == second["id"] for line in kept)
    only_first = lines_of(read_logs(platform, service, deployment=first["id"], tail=5000))
    assert only_first == old
