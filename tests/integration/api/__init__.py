"""The API in process (ASGI, inside its lifespan) against real PostgreSQL, Redis and a Temporal dev server;
no Docker, no platform: scripts/test.sh runs these beside the platform tests."""
