"""Temporal's histories hold no Dockyard payload in clear: a deploy submitted through the API (in process)
to a real Temporal dev server, its history read with a plain client (no codec), every payload encrypted
and none of the deploy's values found in it; the codec endpoint decodes them for an admin only."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client

from core.codec import ENCODING, new_payload_key
from core.db import Database
from core.naming import service_workflow_id
from domain.actors import BOOTSTRAP, PlatformRole
from domain.users import create_user
from tests.support.api import TOKEN, api_settings, api_transport, client_of
from tests.support.components import TemporalDevServer
from tests.support.redis_server import RedisServer

IMAGE = "127.0.0.1:5000/codec/secret-looking-image:4.2"


def payloads_of(node: Any) -> list[dict[str, Any]]:
    """Every payload in a history's proto3 JSON ({"metadata": {...}, "data": base64}), however deep; but
    search attributes, which Temporal must read to index them (ids, never secrets)."""
    if isinstance(node, dict):
        if "metadata" in node and "encoding" in node.get("metadata", {}):
            return [node]
        return [p for key, value in node.items() if key != "searchAttributes" for p in payloads_of(value)]
    if isinstance(node, list):
        return [p for value in node for p in payloads_of(value)]
    return []


async def test_history_payloads_are_encrypted_and_decoded_only_for_admins(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, redis_server: RedisServer
) -> None:
    settings = api_settings(database, tmp_path, temporal_server.address).model_copy(
        update={"payload_key": SecretStr(new_payload_key()), "redis_url": redis_server.url}
    )
    async with (
        api_transport(settings) as transport,
        client_of(transport, Authorization=f"Bearer {TOKEN}") as api,
    ):
        project = (await api.post("/v1/projects", json={"name": "codec"})).json()
        service = (
            await api.post(f"/v1/projects/{project['id']}/services", json={"name": "web", "image": IMAGE})
        ).json()
        environment = (await api.get(f"/v1/projects/{project['id']}/environments")).json()[0]
        deploy = await api.post(f"/v1/services/{service['id']}/deployments", json={})
        assert deploy.status_code == 202, deploy.text  # no worker: admitted, queued

        plain = await Client.connect(temporal_server.address)  # no codec: what anyone with Temporal sees
        handle = plain.get_workflow_handle(service_workflow_id(service["id"], environment["id"]))
        history = await handle.fetch_history()
        raw = history.to_json()
        payloads = payloads_of(json.loads(raw))
        assert payloads, "the history holds the service workflow's input at least"
        assert {base64.b64decode(p["metadata"]["encoding"]) for p in payloads} == {ENCODING}
        for value in (IMAGE, "secret-looking-image", "web-production.apps.test"):
            assert value not in raw

        encoded = {"payloads": [{"metadata": p["metadata"], "data": p.get("data", "")} for p in payloads]}
        decoded = await api.post("/v1/codec/decode", json=encoded)
        assert decoded.status_code == 200, decoded.text
        clear = [base64.b64decode(p["data"]) for p in decoded.json()["payloads"]]
        assert any(service["id"].encode() in data for data in clear)  # the inputs, in JSON again
        assert all(json.loads(data) is not None for data in clear)

        # A person who is not an admin is refused; the CORS answer names the Web UI's origin only.
        async with database.session() as session:
            await create_user(
                session,
                BOOTSTRAP,
                email="m@example.com",
                name="m",
                role=PlatformRole.MEMBER,
                password="x" * 12,
            )
        async with client_of(transport) as browser:
            login = await browser.post(
                "/v1/auth/login", json={"email": "m@example.com", "password": "x" * 12}
            )
            assert login.status_code == 200, login.text
            refused = await browser.post(
                "/v1/codec/decode", json=encoded, headers={"Origin": settings.temporal_ui_url}
            )
            assert refused.status_code == 403
            assert refused.headers["access-control-allow-origin"] == settings.temporal_ui_url.rstrip("/")
