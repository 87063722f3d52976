"""`dockyard login`, `dockyard logout`, `dockyard whoami`: the CLI acting as a person.

`login` asks for an email and password, makes a personal API token named after this machine, and keeps
it in `$XDG_CONFIG_HOME/dockyard/credentials.json` (mode 0600), one per API URL; from then on every
command sends it instead of DOCKYARD_API_TOKEN. The login's browser session is ended at once: only the
token remains. `logout` revokes the token and forgets it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer

from api.schemas.people import LoginAnswer, LoginRequest, Me, TokenCreate, TokenCreated
from core.settings import Settings

CSRF_HEADER = "X-CSRF-Token"


def credentials_file() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "dockyard" / "credentials.json"


def _stored() -> dict[str, str]:
    try:
        stored = json.loads(credentials_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(url): str(token) for url, token in stored.items()} if isinstance(stored, dict) else {}


def stored_token(api_url: str) -> str | None:
    """The personal token `dockyard login` keeps for the API at `api_url`, if any."""
    return _stored().get(api_url.rstrip("/"))


def _store(api_url: str, token: str | None) -> None:
    stored = _stored()
    if token is None:
        stored.pop(api_url.rstrip("/"), None)
    else:
        stored[api_url.rstrip("/")] = token
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(json.dumps(stored, indent=1) + "\n")
    temporary.replace(path)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def login(settings: Settings, email: str, password: str) -> TokenCreated:
    """A session, a personal token made with it, the session ended; the token kept for this API."""
    url = settings.public_api_url.rstrip("/")
    with httpx.Client(base_url=url, timeout=30) as browser:
        answered = browser.post(
            "/v1/auth/login", json=LoginRequest(email=email, password=password).model_dump()
        )
        if answered.status_code != 200:
            raise _fail(f"login refused: {_reason(answered)} (HTTP {answered.status_code})")
        session = LoginAnswer.model_validate(answered.json())
        if session.password_change_required:
            raise _fail(
                "your password was chosen for you: change it first (POST /v1/auth/password, or the dashboard)"
            )
        headers = {CSRF_HEADER: session.csrf_token}
        name = f"dockyard CLI on {socket.gethostname()}"[:100]
        made = browser.post("/v1/tokens", json=TokenCreate(name=name).model_dump(), headers=headers)
        if made.status_code != 201:
            raise _fail(f"could not make a token: {_reason(made)} (HTTP {made.status_code})")
        token = TokenCreated.model_validate(made.json())
        browser.post("/v1/auth/logout", headers=headers)
    _store(url, token.token)
    return token


def register(app: typer.Typer, load: Callable[[], Settings]) -> None:
    @app.command("login")
    def login_command(
        email: Annotated[str | None, typer.Option(help="Your email (asked when left out).")] = None,
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from standard input.")
        ] = False,
    ) -> None:
        """Log in: the CLI acts as you from now on (a personal token, kept mode 0600)."""
        settings = load()
        email = email or typer.prompt("Email")
        password = (
            sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("Password", hide_input=True)
        )
        token = login(settings, email, password)
        typer.echo(
            f"logged in to {settings.public_api_url} as {email} (token {token.name!r}, {token.prefix}…)"
        )

    @app.command("logout")
    def logout_command() -> None:
        """Log out: the token `dockyard login` made is revoked and forgotten."""
        settings = load()
        url = settings.public_api_url.rstrip("/")
        token = stored_token(url)
        if token is None:
            typer.echo(f"not logged in to {url}")
            return
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            response = api.post("/v1/auth/logout")
        if response.status_code not in (204, 401):  # 401: revoked already (or expired)
            raise _fail(f"logout refused: {_reason(response)} (HTTP {response.status_code})")
        _store(url, None)
        typer.echo(f"logged out of {url}")

    @app.command("whoami")
    def whoami_command() -> None:
        """Who the CLI acts as."""
        settings = load()
        url = settings.public_api_url.rstrip("/")
        token = stored_token(url) or (settings.api_token.get_secret_value() if settings.api_token else "")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            response = api.get("/v1/auth/me")
        if response.status_code != 200:
            raise _fail(f"{_reason(response)} (HTTP {response.status_code})")
        me = Me.model_validate(response.json())
        who = f"{me.user.name} <{me.user.email}>" if me.user else me.label
        typer.echo(f"{who}: {me.role or 'no platform role'} at {url}")
