"""Dockyard's operations (deploy, redeploy, variables, webhook deliveries, node actions), shared by
the API's routes and the worker's activities. They raise domain errors (domain/errors.py), which the API
maps to HTTP answers in one place (api/errors.py); nothing here knows about HTTP."""
