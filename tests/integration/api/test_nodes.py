"""Nodes through the REST API on both databases: join tokens (single use, also under a race; expiry;
unknown), enrollment (the certificate, bad CSRs), cordon / uncordon / drain, removal and revocation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from sqlalchemy import select, update

from core import pki
from core.contracts import DeploymentStatus
from core.db import Database
from core.models import AuditEvent, JoinToken, Node, Replica, RevokedCertificate
from core.scheduler import NodeState
from tests.integration.test_database import add_deployment, seed
from tests.support.api import api_settings, running_api
from tests.support.registry import free_port


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def new_token(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return ok(await api.post("/v1/nodes/join-tokens", json=body), 201)  # type: ignore[no-any-return]


def csr(key: pki.PrivateKey | None = None, hosts: tuple[str, ...] = ("127.0.0.11",)) -> str:
    return pki.csr_pem(pki.make_csr(key or pki.generate_key(), "worker", hosts))


def uri_csr() -> str:
    """A CSR asking for an identity, which only Dockyard assigns."""
    requested = x509.SubjectAlternativeName([x509.UniformResourceIdentifier("dockyard://control-plane")])
    builder = x509.CertificateSigningRequestBuilder().add_extension(requested, critical=False)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "w")])
    return pki.csr_pem(builder.subject_name(name).sign(pki.generate_key(), hashes.SHA256()))


async def enroll(
    api: httpx.AsyncClient,
    token: str,
    name: str = "worker-1",
    key: pki.PrivateKey | None = None,
    **fields: Any,
) -> httpx.Response:
    body = {"token": token, "name": name, "csr": csr(key), "address": "127.0.0.11:7801"} | fields
    # No API token: the join token is the only credential.
    return await api.post("/v1/nodes/enroll", json=body, headers={"Authorization": ""})


async def enrolled(api: httpx.AsyncClient, name: str = "worker-1", **fields: Any) -> dict[str, Any]:
    token = await new_token(api)
    return ok(await enroll(api, token["token"], name, **fields), 201)  # type: ignore[no-any-return]


async def audit_actions(database: Database, target: str) -> list[tuple[str, str]]:
    async with database.session() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.target == target).order_by(AuditEvent.id)
        )
        return [(event.actor, event.action) for event in events]


# --- join tokens ---------------------------------------------------------------------------------


async def test_a_join_token_is_answered_once_and_stored_as_its_hash(
    api: httpx.AsyncClient, database: Database, tmp_path: Path
) -> None:
    token = await new_token(api)

    assert token["id"].startswith("jtk_") and token["token"].startswith("dyj_")
    created, expires = (datetime.fromisoformat(token[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(seconds=900)
    ca = pki.load_certificate((tmp_path / "pki" / "ca.pem").read_bytes())
    assert token["ca_fingerprint"] == pki.fingerprint(ca)
    assert token["command"] == (
        f"dockyard agent --join http://127.0.0.1:7800 --token {token['token']} "
        f"--ca-fingerprint {token['ca_fingerprint']}"
    )
    async with database.session() as session:
        row = await session.get(JoinToken, token["id"])
    assert row is not None
    assert row.token_hash == hashlib.sha256(token["token"].encode()).hexdigest()
    assert token["token"] not in repr(vars(row))
    assert (row.used_at, row.used_by_node_id) == (None, None)
    assert await audit_actions(database, token["id"]) == [("admin", "join_token.create")]


@pytest.mark.parametrize(
    ("ttl", "status"),
    [
        pytest.param(60, 201, id="minimum"),
        pytest.param(86400, 201, id="a-day"),
        pytest.param(59, 422, id="too-short"),
        pytest.param(86401, 422, id="longer-than-a-day"),
    ],
)
async def test_join_token_ttl(api: httpx.AsyncClient, ttl: int, status: int) -> None:
    response = await api.post("/v1/nodes/join-tokens", json={"ttl_seconds": ttl})
    body = ok(response, status)
    if status == 422:
        assert [error["field"] for error in body["errors"]] == ["ttl_seconds"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/nodes/join-tokens"),
        ("GET", "/v1/nodes"),
        ("GET", "/v1/nodes/node_x"),
        ("POST", "/v1/nodes/node_x/cordon"),
        ("DELETE", "/v1/nodes/node_x"),
    ],
)
async def test_admin_routes_need_the_api_token(api: httpx.AsyncClient, method: str, path: str) -> None:
    response = await api.request(
        method, path, json={} if method == "POST" else None, headers={"Authorization": ""}
    )
    assert response.status_code == 401
    assert "API token" in response.json()["detail"]


# --- enrollment ----------------------------------------------------------------------------------


async def test_enrollment_answers_a_certificate_for_the_node(
    api: httpx.AsyncClient, database: Database, tmp_path: Path
) -> None:
    token = await new_token(api)
    key = pki.generate_key()
    capacity = {"cpu_millis": 2000, "memory_mb": 4096, "disk_mb": 20000}
    answer = ok(await enroll(api, token["token"], key=key, labels={"zone": "a"}, capacity=capacity), 201)

    node_id = answer["node_id"]
    assert node_id.startswith("node_")
    assert answer["control_plane_identity"] == "dockyard://control-plane"
    ca = pki.load_certificate(answer["ca_certificate"])
    assert pki.fingerprint(ca) == token["ca_fingerprint"]
    assert ca == pki.load_certificate((tmp_path / "pki" / "ca.pem").read_bytes())
    certificate = pki.load_certificate(answer["certificate"])
    pki.verify_issued_by(certificate, ca, datetime.now(UTC))
    assert pki.identity_of(certificate) == f"dockyard://node/{node_id}"
    assert pki.public_key_der(certificate) == pki.public_key_der(key)
    assert certificate.not_valid_after_utc - datetime.now(UTC) > timedelta(days=29, hours=23)
    assert datetime.fromisoformat(answer["cert_not_after"]) == certificate.not_valid_after_utc

    node = ok(await api.get(f"/v1/nodes/{node_id}"))
    assert {k: node[k] for k in ("id", "name", "address", "state", "labels", "capacity", "usage")} == {
        "id": node_id,
        "name": "worker-1",
        "address": "127.0.0.11:7801",
        "state": "READY",
        "labels": {"zone": "a"},
        "capacity": capacity,
        "usage": {},
    }
    assert node["cert_serial"] == pki.serial_hex(certificate.serial_number)
    assert (node["last_heartbeat_at"], node["removed_at"]) == (None, None)
    assert ok(await api.get("/v1/nodes")) == [node]
    assert await audit_actions(database, node_id) == [(f"join-token:{token['id']}", "node.enroll")]
    async with database.session() as session:
        row = await session.get(JoinToken, token["id"])
    assert row is not None and row.used_by_node_id == node_id and row.used_at is not None


async def test_a_reused_token_is_refused_naming_the_node_that_used_it(api: httpx.AsyncClient) -> None:
    token = await new_token(api)
    first = ok(await enroll(api, token["token"], "worker-1"), 201)

    response = await enroll(api, token["token"], "worker-2")
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail.startswith(f"join token already used by node {first['node_id']} at 20")
    assert [n["name"] for n in ok(await api.get("/v1/nodes"))] == ["worker-1"]


async def test_the_same_key_repeating_its_enrollment_gets_the_same_certificate(
    api: httpx.AsyncClient,
) -> None:
    """An agent whose connection broke after the API answered may ask again."""
    token = await new_token(api)
    key = pki.generate_key()
    first = ok(await enroll(api, token["token"], key=key), 201)
    assert ok(await enroll(api, token["token"], key=key), 201) == first
    assert len(ok(await api.get("/v1/nodes"))) == 1


async def test_concurrent_enrollments_with_one_token_enroll_one_node(
    api: httpx.AsyncClient, database: Database
) -> None:
    token = await new_token(api)
    responses = await asyncio.gather(*(enroll(api, token["token"], f"worker-{i}") for i in range(8)))

    winners = [r.json() for r in responses if r.status_code == 201]
    assert len(winners) == 1, [r.text for r in responses]
    losers = [r for r in responses if r.status_code != 201]
    assert {r.status_code for r in losers} == {401}
    assert all(f"already used by node {winners[0]['node_id']}" in r.json()["detail"] for r in losers)
    async with database.session() as session:
        assert [n.id for n in await session.scalars(select(Node))] == [winners[0]["node_id"]]


async def test_an_expired_token_is_refused_with_its_expiry(
    api: httpx.AsyncClient, database: Database
) -> None:
    token = await new_token(api)
    expired_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    async with database.transaction() as session:
        await session.execute(
            update(JoinToken).where(JoinToken.id == token["id"]).values(expires_at=expired_at)
        )

    response = await enroll(api, token["token"])
    assert response.status_code == 401
    assert response.json()["detail"] == f"join token expired at {expired_at.isoformat()}"
    assert ok(await api.get("/v1/nodes")) == []


async def test_a_node_serving_active_deployments_is_removed_only_with_force(
    api: httpx.AsyncClient, database: Database
) -> None:
    node_id = (await enrolled(api, "worker-2"))["node_id"]
    ids = await seed(database)
    active = await add_deployment(database, ids, DeploymentStatus.ACTIVE)
    async with database.transaction() as session:
        session.add(Replica(id=f"{active}-0", deployment_id=active, node=node_id, state="running"))

    refused = await api.delete(f"/v1/nodes/{node_id}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"node {node_id} runs replicas of 1 active deployment(s) ({active}): drain it first "
        f"(POST /v1/nodes/{node_id}/drain), or remove it with force=true and lose them"
    )
    assert ok(await api.get(f"/v1/nodes/{node_id}"))["removed_at"] is None
    assert ok(await api.delete(f"/v1/nodes/{node_id}", params={"force": True}))["removed_at"] is not None


async def test_an_unknown_token_is_refused(api: httpx.AsyncClient) -> None:
    await new_token(api)
    response = await enroll(api, "dyj_not-a-token")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("unknown join token")


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        pytest.param({"csr": "hello"}, "csr", "not a PEM certificate signing request", id="not-a-csr"),
        pytest.param(
            {"csr": uri_csr()},
            "csr",
            "only DNS names and IP addresses may be requested",
            id="csr-requests-an-identity",
        ),
        pytest.param({"address": "127.0.0.11"}, "address", "should match pattern", id="address-without-port"),
        pytest.param({"address": "127.0.0.11:70000"}, "address", "not between 1 and 65535", id="port"),
        pytest.param({"name": "Worker_1"}, "name", "should match pattern", id="name"),
        pytest.param({"labels": {"Zone!": "a"}}, "labels.Zone!.[key]", "should match pattern", id="label"),
    ],
)
async def test_bad_enrollments_name_the_field_and_leave_the_token_unused(
    api: httpx.AsyncClient, fields: dict[str, Any], field: str, reason: str
) -> None:
    token = await new_token(api)
    body = ok(await enroll(api, token["token"], **fields), 422)
    assert [error["field"] for error in body["errors"]] == [field]
    assert reason in body["errors"][0]["reason"]
    ok(await enroll(api, token["token"]), 201)


async def test_a_taken_name_is_a_conflict_and_gives_the_token_back(api: httpx.AsyncClient) -> None:
    existing = await enrolled(api, "worker-1")
    token = await new_token(api)

    response = await enroll(api, token["token"], "worker-1")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"name: a node named 'worker-1' is already enrolled ({existing['node_id']}); "
        f"remove it first (DELETE /v1/nodes/{existing['node_id']}) or choose another name"
    )
    ok(await enroll(api, token["token"], "worker-2"), 201)


# --- cordon, uncordon, drain ---------------------------------------------------------------------


async def set_state(database: Database, node_id: str, state: NodeState) -> None:
    async with database.transaction() as session:
        await session.execute(update(Node).where(Node.id == node_id).values(state=state.value))


@pytest.mark.parametrize(
    ("start", "action", "result"),
    [
        ("READY", "cordon", "CORDONED"),
        ("CORDONED", "cordon", "CORDONED"),
        ("DRAINING", "cordon", "DRAINING"),
        ("DOWN", "cordon", "DOWN"),  # stays DOWN; comes back CORDONED (below)
        ("READY", "uncordon", "READY"),
        ("CORDONED", "uncordon", "READY"),
        ("DRAINING", "uncordon", "READY"),
        ("DOWN", "uncordon", "DOWN"),
        ("READY", "drain", "DRAINING"),
        ("CORDONED", "drain", "DRAINING"),
        ("DRAINING", "drain", "DRAINING"),
        ("DOWN", "drain", "DRAINING"),
    ],
    ids=lambda value: str(value),
)
async def test_state_changes(
    api: httpx.AsyncClient, database: Database, start: str, action: str, result: str | None
) -> None:
    node_id = (await enrolled(api))["node_id"]
    await set_state(database, node_id, NodeState(start))

    response = await api.post(f"/v1/nodes/{node_id}/{action}")
    if result is None:
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"state: node {node_id} is {start}; {action} is not possible in that state"
        )
        assert ok(await api.get(f"/v1/nodes/{node_id}"))["state"] == start
        return
    assert ok(response)["state"] == result
    assert ok(await api.get(f"/v1/nodes/{node_id}"))["state"] == result
    changes = [a for a in await audit_actions(database, node_id) if a[1] != "node.enroll"]
    assert changes == ([] if result == start and start != "DOWN" else [("admin", f"node.{action}")])


@pytest.mark.parametrize(("action", "back_as"), [("cordon", "CORDONED"), ("uncordon", "READY")])
async def test_cordon_and_uncordon_of_a_down_node_choose_the_state_it_comes_back_in(
    api: httpx.AsyncClient, database: Database, action: str, back_as: str
) -> None:
    node_id = (await enrolled(api))["node_id"]
    await set_state(database, node_id, NodeState.DOWN)
    node = ok(await api.post(f"/v1/nodes/{node_id}/{action}"))
    assert (node["state"], node["state_before_down"]) == ("DOWN", back_as)


async def test_state_changes_of_an_unknown_node_are_404(api: httpx.AsyncClient) -> None:
    for path in ("/v1/nodes/node_x/cordon", "/v1/nodes/node_x/uncordon", "/v1/nodes/node_x/drain"):
        response = await api.post(path)
        assert response.status_code == 404
        assert response.json()["detail"] == "node 'node_x' not found"
    assert (await api.get("/v1/nodes/node_x")).status_code == 404
    assert (await api.delete("/v1/nodes/node_x")).status_code == 404


# --- removal and revocation ----------------------------------------------------------------------


async def test_removing_a_node_revokes_its_certificate(api: httpx.AsyncClient, database: Database) -> None:
    answer = await enrolled(api, "worker-1")
    node_id = answer["node_id"]
    serial = pki.load_certificate(answer["certificate"]).serial_number

    removed = ok(await api.delete(f"/v1/nodes/{node_id}"))
    assert removed["removed_at"] is not None
    assert ok(await api.delete(f"/v1/nodes/{node_id}")) == removed

    async with database.session() as session:
        revoked = list(await session.scalars(select(RevokedCertificate)))
    assert [(r.serial, r.node_id, r.reason) for r in revoked] == [
        (pki.serial_hex(serial), node_id, "node removed")
    ]
    assert revoked[0].not_after == pki.load_certificate(answer["certificate"]).not_valid_after_utc
    assert {pki.parse_serial(r.serial) for r in revoked} == {serial}
    assert [a for a in await audit_actions(database, node_id) if a[1] == "node.remove"] == [
        ("admin", "node.remove")
    ]

    assert ok(await api.get("/v1/nodes")) == []
    assert [n["id"] for n in ok(await api.get("/v1/nodes", params={"include_removed": True}))] == [node_id]
    assert ok(await api.get(f"/v1/nodes/{node_id}")) == removed
    response = await api.post(f"/v1/nodes/{node_id}/cordon")
    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"node {node_id} was removed at ")


async def test_a_removed_node_cannot_re_enroll_with_its_token_but_its_name_is_free_again(
    api: httpx.AsyncClient,
) -> None:
    token = await new_token(api)
    key = pki.generate_key()
    first = ok(await enroll(api, token["token"], "worker-1", key=key), 201)
    ok(await api.delete(f"/v1/nodes/{first['node_id']}"))

    response = await enroll(api, token["token"], "worker-1", key=key)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(f"join token already used by node {first['node_id']}")

    again = await enrolled(api, "worker-1")
    assert again["node_id"] != first["node_id"]
    assert [n["id"] for n in ok(await api.get("/v1/nodes"))] == [again["node_id"]]
