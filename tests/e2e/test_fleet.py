"""Enrolled nodes on the real platform (tests/support/fleet.py): three agents on their own node engines
enroll with join tokens, the control plane calls each over mutual TLS, a killed node stops answering, and
the fleet leaves nothing behind on the platform shared by the whole e2e session."""

from __future__ import annotations

import pytest

from core.agent_client import AgentCallError
from tests.support import missing_component
from tests.support.fleet import EnrolledFleet
from tests.support.nodes import NodeEngine
from tests.support.platform import Platform
from tests.support.process import LoopbackServerError

pytestmark = pytest.mark.timeout(300)  # the first e2e test also pays for `dockyard up`


async def test_three_nodes_enroll_answer_over_mutual_tls_and_a_killed_one_goes_silent(
    enrolled_fleet: EnrolledFleet,
) -> None:
    fleet = enrolled_fleet
    listed = {name: (node["state"], node["address"], node["labels"]) for name, node in fleet.listed().items()}
    assert listed == {
        node.name: ("READY", node.address, {"zone": zone, "fleet": fleet.fleet_id})
        for node, zone in zip(fleet.nodes, "abc", strict=True)
    }

    for node in fleet.nodes:
        async with fleet.client(node.index) as agent:
            assert await agent.replicas() == []  # read from the node's own engine
            info = await agent.node_info()
        assert (info.name, info.address) == (node.name, node.engine.address)

    fleet.stop_agent(0)
    async with fleet.client(0) as agent:
        with pytest.raises(AgentCallError, match="agent unreachable"):
            await agent.replicas()
    fleet.start_agent(0)  # no token: the identity in its state directory
    async with fleet.client(0) as agent:
        assert await agent.replicas() == []

    fleet.kill_node(1)
    for node in fleet.nodes:
        async with fleet.client(node.index) as agent:
            if node.index != 1:
                assert await agent.replicas() == []
                continue
            with pytest.raises(AgentCallError) as unreachable:
                await agent.replicas()
        assert (unreachable.value.node, unreachable.value.step) == (node.node_id, "list")
        assert unreachable.value.reason.startswith(f"agent unreachable at https://{node.address}")

    fleet.stop()  # the fixture's own teardown, early, to look at what it leaves
    assert fleet.listed() == {}
    assert fleet.leftovers() == []


def test_a_fleet_that_fails_to_start_leaves_nothing(platform: Platform) -> None:
    """The second node's label is refused at enrollment (422): the others enrolled, and are removed."""
    if reason := NodeEngine.available():
        missing_component(reason)
    fleet = EnrolledFleet(platform, labels=[{"zone": "a"}, {"zone": "not valid!"}, {"zone": "c"}])
    with pytest.raises(LoopbackServerError, match="the control plane refused the enrollment"):
        fleet.start()
    assert fleet.listed() == {}
    assert fleet.leftovers() == []
