"""Request and response bodies of the REST API and the agent gateway (the OpenAPI contract of the CLI,
the dashboard and the agents), one module per resource; import from the module:

    common       Body, Read, ErrorBody and the name and path types the resources share
    projects     projects and their environments
    services     services: build and placement fields, repository credentials, a service's URL
    deployments  deploying, rolling back and scaling, and reading deployments
    build_logs   a deployment's build log
    variables    an environment's variables
    nodes        join tokens, enrollment, reading nodes
    pools        node pools and their guests
    webhooks     a project's webhook settings and delivery log
    sources      the repository credential builders fetch
    gateway      heartbeats and certificate renewal (the agent gateway)
    people       logging in, sessions, accounts, invitations, personal API tokens
"""
