"""Serve the node agent: `run(settings)` (the `dockyard agent` command calls it)."""

from __future__ import annotations

import uvicorn

from agent.app import create_app
from agent.settings import AgentSettings


def run(settings: AgentSettings | None = None) -> None:
    """Serve the agent on listen_host:listen_port until interrupted. Settings default to the environment."""
    settings = settings or AgentSettings()  # type: ignore[call-arg]  # token comes from the environment
    app = create_app(settings)
    uvicorn.run(app, host=settings.listen_host, port=settings.listen_port, log_level="info", access_log=False)


if __name__ == "__main__":
    run()
