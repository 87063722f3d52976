"""Temporal wiring shared by the API (client) and the worker: converter, search attributes, connection."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

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
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
