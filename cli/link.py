"""`dockyard init`, `link`, `unlink` and `status`: tie a directory to a service, like `railway link`.

The link is `.dockyard/link.json` in the directory. Commands look for it there and in the parent
directories, the way git finds `.git`, so `dockyard deploy` works anywhere inside a linked tree."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import httpx
import typer
from annotated_types import MaxLen
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.schemas.deployments import DeploymentRead
from api.schemas.projects import EnvironmentRead, ProjectCreate, ProjectRead
from api.schemas.services import ServiceCreate, ServiceRead
from cli.login import stored_token
from core.settings import Settings

T = TypeVar("T")


class Resource(Protocol):
    """What the CLI finds by name or id: a project, a service, an environment."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=Resource)


def name_max_length(body: type[BaseModel]) -> int:
    """The longest `name` the API's request `body` takes."""
    return next(rule.max_length for rule in body.model_fields["name"].metadata if isinstance(rule, MaxLen))


LINK_DIR = ".dockyard"
LINK_FILE = "link.json"
DEFAULT_ENVIRONMENT = "production"
PROJECT_NAME_MAX = name_max_length(ProjectCreate)
SERVICE_NAME_MAX = name_max_length(ServiceCreate)
PROJECTS = TypeAdapter(list[ProjectRead])
SERVICES = TypeAdapter(list[ServiceRead])
ENVIRONMENTS = TypeAdapter(list[EnvironmentRead])
DEPLOYMENTS = TypeAdapter(list[DeploymentRead])
NOT_LINKED_HINT = (
    "run `dockyard link --project P --service S` (an existing service) or `dockyard init` (creates them)"
)

DirectoryArgument = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, resolve_path=True, help="the directory")
]


class Named(BaseModel):
    id: str
    name: str


class Link(BaseModel):
    """What `.dockyard/link.json` holds."""

    project: Named
    service: Named
    environment: str
    api_url: str

    def describe(self) -> str:
        return f"{self.project.name}/{self.service.name} ({self.environment})"


class CliError(Exception):
    """A failure the user can act on: the command prints the message and exits 1."""


class ApiError(CliError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a CliError's message (never a traceback) and exit 1."""
    try:
        yield
    except CliError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


# --- the link file -------------------------------------------------------------------------------


def link_file(root: Path) -> Path:
    return root / LINK_DIR / LINK_FILE


def find_link(start: Path) -> tuple[Path, Link] | None:
    """The nearest link in `start` or above it, with the directory that holds it."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if link_file(directory).is_file():
            return directory, read_link(directory)
    return None


def require_link(start: Path) -> tuple[Path, Link]:
    found = find_link(start)
    if found is None:
        raise CliError(f"{start} is not linked to a service: {NOT_LINKED_HINT}")
    return found


def read_link(root: Path) -> Link:
    path = link_file(root)
    try:
        return Link.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise CliError(f"{path} is not a Dockyard link ({reason}): link the directory again") from None


def write_link(root: Path, link: Link) -> Path:
    """Write the link atomically: a reader sees the old file or the new one, never half of one."""
    directory = root / LINK_DIR
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        # The API URL is this machine's: the link is not something to commit.
        ignore.write_text("# written by `dockyard link`; the link names this machine's API\n*\n")
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".link-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(link.model_dump_json(indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, link_file(root))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return link_file(root)


def remove_link(root: Path) -> None:
    link_file(root).unlink(missing_ok=True)
    (root / LINK_DIR / ".gitignore").unlink(missing_ok=True)
    try:
        (root / LINK_DIR).rmdir()
    except OSError:
        pass  # something else lives there: leave it


def valid_name(text: str, max_length: int) -> str:
    """`text` made a valid project or service name: lower-case letters, digits and inner dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower())[:max_length].strip("-")
    return name or "app"


# --- the API -------------------------------------------------------------------------------------


def api_url(settings: Settings) -> str:
    return settings.public_api_url.rstrip("/")


def open_api(settings: Settings, timeout: float = 30) -> httpx.Client:
    """A client of the API: with the token `dockyard login` keeps for it, else DOCKYARD_API_TOKEN."""
    token = stored_token(api_url(settings)) or (
        settings.api_token.get_secret_value() if settings.api_token else ""
    )
    return httpx.Client(
        base_url=api_url(settings), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def request_json(body: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """The JSON of the API's request `body` with `fields` as given, and only them.

    Not validated here: the API is the one judge of a request, and its refusal names the field and the
    reason (HTTP 422), as the CLI prints it; a CLI of another version than the API never refuses what
    the API takes. So a field may hold what its type does not allow (a `kind` that is no GuestKind):
    it is sent as it is, without the serializer's warning."""
    if unknown := fields.keys() - body.model_fields.keys():
        raise TypeError(f"{body.__name__} has no field {', '.join(sorted(unknown))}")
    return body.model_construct(**fields).model_dump(mode="json", exclude_unset=True, warnings=False)


def call(
    api: httpx.Client,
    method: str,
    path: str,
    answer: type[T] | TypeAdapter[T],
    *,
    context: str,
    **kwargs: Any,
) -> T:
    """The answer to one request, read as the API's response model `answer`; an ApiError with the
    API's reason, after `context`, otherwise."""
    base = str(api.base_url).rstrip("/")
    try:
        response = api.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ApiError(
            f"cannot reach the Dockyard API at {base} ({exc or type(exc).__name__}): is it running "
            "(`dockyard up`)? DOCKYARD_PUBLIC_API_URL points the CLI elsewhere"
        ) from None
    if response.status_code == 401:
        raise ApiError(
            f"the API at {base} refused the token ({reason(response)}): `dockyard login`, or set "
            "DOCKYARD_API_TOKEN (a local installation keeps it in secrets.env in its state directory)",
            401,
        )
    if response.status_code >= 400:
        raise ApiError(f"{context}: {reason(response)} (HTTP {response.status_code})", response.status_code)
    adapter = answer if isinstance(answer, TypeAdapter) else TypeAdapter(answer)
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the body"
        raise ApiError(
            f"{context}: the API at {base} answered what this CLI cannot read ({where}: {error['msg']}); "
            "are the CLI and the API the same version?"
        ) from None


def reason(response: httpx.Response) -> str:
    """The API's `detail` (for a 422: `field: reason; ...`), or what the body says."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else str(detail or body)


def check_same_api(link: Link, settings: Settings) -> None:
    """Ids only mean something on the API that made them."""
    if link.api_url.rstrip("/") != api_url(settings):
        raise CliError(
            f"this directory was linked through the API at {link.api_url}, but the CLI talks to "
            f"{api_url(settings)}: set DOCKYARD_PUBLIC_API_URL={link.api_url}, or link it again"
        )


def _match(items: list[R], name_or_id: str) -> R | None:
    by_id = next((item for item in items if item.id == name_or_id), None)
    return by_id or next((item for item in items if item.name == name_or_id), None)


def _listing(kind: str, items: list[R]) -> str:
    if not items:
        return f"there are no {kind}s yet"
    return f"{kind}s: " + ", ".join(f"{item.name} ({item.id})" for item in items)


def pick(
    api: httpx.Client,
    kind: str,
    collection: str,
    listing: TypeAdapter[list[R]],
    name_or_id: str,
    where: str = "",
) -> R:
    """The `kind` in `collection` with that id or name; not found names the ones there are."""
    items = call(api, "GET", collection, listing, context=f"cannot list the {kind}s{where}")
    found = _match(items, name_or_id)
    if found is None:
        raise CliError(f"no {kind} {name_or_id!r}{where}; {_listing(kind, items)}")
    return found


def ensure_named(
    api: httpx.Client,
    kind: str,
    collection: str,
    body: type[ProjectCreate | ServiceCreate],
    read: type[R],
    listing: TypeAdapter[list[R]],
    name: str,
) -> tuple[R, bool]:
    """The `kind` named `name` in `collection`, created (a `body` with only its name) when there is
    none; True when this call created it."""
    existing = _named(api, kind, collection, listing, name)
    if existing is not None:
        return existing, False
    try:
        created = call(
            api,
            "POST",
            collection,
            read,
            json=request_json(body, name=name),
            context=f"cannot create {kind} {name!r}",
        )
    except ApiError as exc:
        # 409: created by someone else since we looked; use theirs.
        if exc.status != 409 or (existing := _named(api, kind, collection, listing, name)) is None:
            raise
        return existing, False
    return created, True


def _named(
    api: httpx.Client, kind: str, collection: str, listing: TypeAdapter[list[R]], name: str
) -> R | None:
    items = call(api, "GET", collection, listing, context=f"cannot list {kind}s")
    return next((item for item in items if item.name == name), None)


# --- the commands --------------------------------------------------------------------------------


def save(root: Path, link: Link) -> None:
    try:
        previous = read_link(root) if link_file(root).is_file() else None
    except CliError:
        previous = None  # a broken link is what this one replaces
    write_link(root, link)
    if previous is not None and previous != link:
        typer.echo(f"(replaces the link to {previous.describe()})")
    typer.echo(f"linked {root} to {link.describe()}; deploy it with `dockyard deploy`")


def _link(settings: Settings, project: ProjectRead, service: ServiceRead, environment: str) -> Link:
    return Link(
        project=Named(id=project.id, name=project.name),
        service=Named(id=service.id, name=service.name),
        environment=environment,
        api_url=api_url(settings),
    )


def show_status(api: httpx.Client, link: Link) -> None:
    """The service's URL and latest deployment in the linked environment."""
    service_path = f"/v1/services/{link.service.id}"
    try:
        service = call(
            api, "GET", service_path, ServiceRead, context=f"cannot read service {link.service.name}"
        )
        deployments = call(
            api,
            "GET",
            f"{service_path}/deployments",
            DEPLOYMENTS,
            params={"environment": link.environment},
            context=f"cannot list the deployments of {link.service.name}",
        )
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"{exc}; link the directory again (`dockyard link`)") from None
        raise
    typer.echo(f"URL:         {service.urls.get(link.environment, '-')}")
    if not deployments:
        typer.echo("Deployment:  none yet (`dockyard deploy` uploads this directory)")
        return
    typer.echo(f"Deployment:  {describe_deployment(deployments[0])}")


def describe_deployment(deployment: DeploymentRead) -> str:
    step = f" at {deployment.failed_step}" if deployment.failed_step else ""
    message = f": {deployment.message}" if deployment.message else ""
    when = deployment.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{deployment.id} {deployment.status}{step}{message} (created {when})"


def register(app: typer.Typer, settings_factory: Callable[[], Settings]) -> None:
    @app.command()
    def init(
        path: DirectoryArgument = Path("."),
        project: Annotated[
            str | None, typer.Option("--project", "-p", help="default: the directory's name")
        ] = None,
        service: Annotated[
            str | None, typer.Option("--service", "-s", help="default: the directory's name")
        ] = None,
    ) -> None:
        """Create a project and a service (or use those of that name) and link the directory to them."""
        settings = settings_factory()
        project_name = project or valid_name(path.name, PROJECT_NAME_MAX)
        service_name = service or valid_name(path.name, SERVICE_NAME_MAX)
        with reported_errors(), open_api(settings) as api:
            prj, created = ensure_named(
                api, "project", "/v1/projects", ProjectCreate, ProjectRead, PROJECTS, project_name
            )
            typer.echo(f"{'created' if created else 'using'} project {prj.name} ({prj.id})")
            svc, created = ensure_named(
                api,
                "service",
                f"/v1/projects/{prj.id}/services",
                ServiceCreate,
                ServiceRead,
                SERVICES,
                service_name,
            )
            typer.echo(f"{'created' if created else 'using'} service {svc.name} ({svc.id})")
            save(path, _link(settings, prj, svc, DEFAULT_ENVIRONMENT))

    @app.command()
    def link(
        project: Annotated[str, typer.Option("--project", "-p", help="project name or id")],
        service: Annotated[str, typer.Option("--service", "-s", help="service name or id")],
        path: DirectoryArgument = Path("."),
        environment: Annotated[
            str, typer.Option("--environment", "-e", help="environment name or id")
        ] = DEFAULT_ENVIRONMENT,
    ) -> None:
        """Link the directory to an existing service; `dockyard deploy` then deploys it there."""
        settings = settings_factory()
        with reported_errors(), open_api(settings) as api:
            prj = pick(api, "project", "/v1/projects", PROJECTS, project)
            where = f" in project {prj.name}"
            svc = pick(api, "service", f"/v1/projects/{prj.id}/services", SERVICES, service, where)
            env = pick(
                api, "environment", f"/v1/projects/{prj.id}/environments", ENVIRONMENTS, environment, where
            )
            save(path, _link(settings, prj, svc, env.name))

    @app.command()
    def unlink(path: DirectoryArgument = Path(".")) -> None:
        """Remove the link that applies to the directory (its own or a parent's)."""
        with reported_errors():
            found = find_link(path)
        if found is None:
            typer.echo(f"{path} is not linked")
            return
        root, link = found
        remove_link(root)
        typer.echo(f"unlinked {root} from {link.describe()}")

    @app.command()
    def status(path: DirectoryArgument = Path(".")) -> None:
        """What the directory is linked to, and the service's latest deployment."""
        with reported_errors():
            root, link = require_link(path)
            typer.echo(f"Project:     {link.project.name} ({link.project.id})")
            typer.echo(f"Service:     {link.service.name} ({link.service.id})")
            typer.echo(f"Environment: {link.environment}")
            typer.echo(f"Linked in:   {root}")
            typer.echo(f"API:         {link.api_url}")
            settings = settings_factory()
            check_same_api(link, settings)
            with open_api(settings) as api:
                show_status(api, link)
