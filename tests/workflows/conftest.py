from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.workflows.harness import Dockyard, harness


@pytest.fixture
async def dockyard(temporal_client: Client) -> AsyncIterator[Dockyard]:
    """A fresh service+environment, a worker on its own task queue, activities replaced by fakes."""
    async with harness(temporal_client) as running:
        yield running
