"""Temporal wiring shared by the API (client) and the worker: converter, search attributes, connection."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import TLSConfig

from core.codec import data_converter
from core.settings import Settings

# Registered on the dev server by infra/temporal/dev-server.sh and on a cluster by `temporal operator`.
SERVICE_ID = SearchAttributeKey.for_keyword("ServiceId")
ENVIRONMENT_ID = SearchAttributeKey.for_keyword("EnvironmentId")
DEPLOYMENT_ID = SearchAttributeKey.for_keyword("DeploymentId")
NODE_ID = SearchAttributeKey.for_keyword("NodeId")
COMMIT_SHA = SearchAttributeKey.for_keyword("CommitSha")

SEARCH_ATTRIBUTES = (SERVICE_ID, ENVIRONMENT_ID, DEPLOYMENT_ID, NODE_ID, COMMIT_SHA)


def search_attributes(**values: str) -> TypedSearchAttributes:
    keys = {
        "service_id": SERVICE_ID,
        "environment_id": ENVIRONMENT_ID,
        "deployment_id": DEPLOYMENT_ID,
        "node_id": NODE_ID,
        "commit_sha": COMMIT_SHA,
    }
    return TypedSearchAttributes([SearchAttributePair(keys[name], value) for name, value in values.items()])


async def connect(settings: Settings) -> Client:
    """A client whose payloads are encrypted (core/codec.py), over TLS (or mutual TLS) and with an API
    key when the settings say so (a Temporal cluster or Temporal Cloud)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=tls_config(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not settings.temporal_tls:
        return False

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_ca_file),
        client_cert=read(settings.temporal_tls_cert_file),
        client_private_key=read(settings.temporal_tls_key_file),
    )
