"""A route of an ACTIVE deployment follows its replicas: the addresses they run at now, the stopped ones
started again (core.routing.repair_route)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.routing import ObservedReplica, repair_route


def replica(
    rid: str, state: str = "running", address: str | None = None, node: str = "local"
) -> ObservedReplica:
    return ObservedReplica(rid, node, state, address)


A1, A2, B1 = "127.0.0.1:32001", "127.0.0.1:32002", "127.0.0.11:32044"


@pytest.mark.parametrize(
    ("published", "observed", "servers", "started"),
    [
        pytest.param(
            [A1, A2], [replica("r0", address=A1), replica("r1", address=A2)], None, [], id="in-line"
        ),
        pytest.param(
            [A2, A1], [replica("r1", address=A2), replica("r0", address=A1)], None, [], id="order-ignored"
        ),
        pytest.param(
            [A1, A2],
            [replica("r0", address="127.0.0.1:33001"), replica("r1", address="127.0.0.1:33002")],
            ("127.0.0.1:33001", "127.0.0.1:33002"),
            [],
            id="restarted-on-new-ports",
        ),
        pytest.param(
            [A1, A2], [replica("r0", "exited"), replica("r1", "exited")], None, ["r0", "r1"], id="all-stopped"
        ),
        pytest.param(
            [A1, A2],
            [replica("r0", address=A1), replica("r1", "exited")],
            (A1,),
            ["r1"],
            id="one-stopped-leaves-the-route",
        ),
        pytest.param(
            [A1, A2],
            [replica("r0", address=A1), replica("r1", "restarting")],
            (A1,),
            [],
            id="crash-looping-left-out-not-started",
        ),
        pytest.param([A1], [replica("r0", "created")], None, ["r0"], id="created-never-started"),
        pytest.param([A1, B1], [replica("r0", address=A1)], (A1,), [], id="a-replica-no-longer-reported"),
        pytest.param([A1], [], None, [], id="nothing-reported-keeps-the-route"),
        pytest.param(
            [A1],
            [replica("r0", address=A1), replica("r1", address=B1, node="node_b")],
            (B1, A1),  # sorted as strings, as Route.servers is
            [],
            id="spread-over-nodes",
        ),
        pytest.param([A1], [replica("r0", "running", None)], None, [], id="running-without-address"),
    ],
)
def test_repair_route(
    published: list[str],
    observed: list[ObservedReplica],
    servers: tuple[str, ...] | None,
    started: list[str],
) -> None:
    repair = repair_route(published, observed)
    assert repair.servers == servers
    assert [r.replica_id for r in repair.start] == started
    assert repair.needed is (servers is not None or bool(started))


states = st.sampled_from(["created", "running", "restarting", "exited"])
addresses = st.one_of(st.none(), st.sampled_from([A1, A2, B1, "127.0.0.1:40000"]))


@given(
    published=st.lists(st.sampled_from([A1, A2, B1]), unique=True),
    observed=st.lists(st.builds(replica, st.text("abc", min_size=1, max_size=3), states, addresses)),
)
def test_published_servers_are_always_running_replicas(
    published: list[str], observed: list[ObservedReplica]
) -> None:
    """Never route to a replica that is not running, never drop a route for want of replicas, and never
    start one that is running or restarting."""
    repair = repair_route(published, observed)
    running = {r.address for r in observed if r.state == "running" and r.address}
    if repair.servers is not None:
        assert repair.servers and set(repair.servers) == running
        assert list(repair.servers) == sorted(repair.servers)
    else:
        assert not running or running == set(published)
    assert all(r.state in ("created", "exited") for r in repair.start)
