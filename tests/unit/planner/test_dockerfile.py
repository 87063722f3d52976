"""Rendered Dockerfiles are data: the exact text per provider, and the rules that keep rebuilds cheap."""

from __future__ import annotations

import base64

import pytest

from core.planner import BaseImages, BuildPlan, Phase, PlanError, StartPhase, render_dockerfile
from tests.unit.planner.support import plan_of

APT = (
    "RUN if ! dpkg -s {0} >/dev/null 2>&1; then \\\n"
    "      apt-get update \\\n"
    "      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {0} \\\n"
    "      && rm -rf /var/lib/apt/lists/*; \\\n"
    "    fi"
)
TRAP = "trap 'trap - TERM INT; kill -TERM 0 2>/dev/null; wait $!; exit $?' TERM INT"
VENV = "python3 -m venv --copies /opt/venv && . /opt/venv/bin/activate"
PYTHON_ENV = """\
ENV PIP_DEFAULT_TIMEOUT=100
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
ENV PYTHONDONTWRITEBYTECODE=1
ENV PYTHONFAULTHANDLER=1
ENV PYTHONHASHSEED=random
ENV PYTHONUNBUFFERED=1"""


def cmd(start: str) -> str:
    return f'CMD ["/bin/sh", "-c", "{TRAP}; ( {start}\\n) & wait $!"]'


NODE_NPM = f"""\
FROM dockyard/debian:bookworm
WORKDIR /app
ENV PORT=8080
ENV CI=true
ENV NIXPACKS_NODE_VERSION=18
ENV NODE_ENV=production
ENV NPM_CONFIG_PRODUCTION=false

# setup
{APT.format("nodejs npm")}

# install
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
ENV PATH="/app/node_modules/.bin:$PATH"

# build
COPY . ./
RUN --mount=type=cache,target=/app/node_modules/.cache npm run build

{cmd("npm run start")}
"""

PYTHON_PIP = f"""\
FROM dockyard/debian:bookworm
WORKDIR /app
ENV PORT=8080
ENV NIXPACKS_PYTHON_VERSION=3.11
{PYTHON_ENV}

# setup
{APT.format("python3 python3-venv")}

# install
COPY requirements.txt ./
COPY requirements/base.txt requirements/
RUN --mount=type=cache,target=/root/.cache/pip {VENV} && pip install -r requirements.txt
ENV PATH="/opt/venv/bin:$PATH"

COPY . ./

{cmd("gunicorn app:app")}
"""

PYTHON_UV = f"""\
FROM dockyard/debian:bookworm
WORKDIR /app
ENV PORT=8080
ENV NIXPACKS_PYTHON_VERSION=3.11
ENV NIXPACKS_UV_VERSION=0.9.30
{PYTHON_ENV}
ENV UV_LINK_MODE=copy
ENV UV_PROJECT_ENVIRONMENT=/opt/venv
ENV UV_PYTHON=/opt/venv/bin/python
ENV UV_PYTHON_DOWNLOADS=never

# setup
{APT.format("python3 python3-venv")}

# install
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=cache,target=/root/.cache/uv {VENV} \
&& pip install uv==$NIXPACKS_UV_VERSION && uv sync --no-dev --frozen --no-install-project
ENV PATH="/opt/venv/bin:$PATH"

COPY . ./

{cmd("uvicorn main:app --host 0.0.0.0 --port $PORT")}
"""

GO = f"""\
FROM dockyard/debian:bookworm
WORKDIR /app
ENV PORT=8080
ENV CGO_ENABLED=0
ENV NIXPACKS_GO_VERSION=1.22
# NIXPACKS_GO_VERSION=1.22 cannot be honoured exactly: Debian bookworm packages Go 1.19, \
installed below unless the base image has it.

# setup
{APT.format("golang-go ca-certificates")}

# install
COPY go.mod ./
RUN go mod download

# build
COPY . ./
RUN --mount=type=cache,target=/root/.cache/go-build go build -o out

{cmd("./out")}
"""

CADDYFILE = """\
{
\tadmin off
\tauto_https off
}

:{$PORT:80} {
\troot * "/app"
\tencode gzip
\tfile_server
}
"""

STATIC = f"""\
FROM dockyard/debian:bookworm
WORKDIR /app
ENV PORT=8080

# setup
{APT.format("caddy")}

# static assets
RUN mkdir -p /assets && echo {base64.b64encode(CADDYFILE.encode()).decode()} | base64 -d > /assets/Caddyfile

COPY . ./

{cmd("caddy run --config /assets/Caddyfile --adapter caddyfile")}
"""


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        pytest.param("node-npm", NODE_NPM, id="node-npm"),
        pytest.param("python-pip", PYTHON_PIP, id="python-pip"),
        pytest.param("python-uv", PYTHON_UV, id="python-uv"),
        pytest.param("go-mod", GO, id="go"),
        pytest.param("static-index", STATIC, id="static"),
    ],
)
def test_exact_dockerfile(repo: str, expected: str) -> None:
    assert render_dockerfile(plan_of(repo), BaseImages()) == expected


@pytest.mark.parametrize(
    ("repo", "provider_image"),
    [
        pytest.param("node-npm", "node", id="node"),
        pytest.param("bun-app", "bun", id="bun"),
        pytest.param("python-pip", "python", id="python"),
        pytest.param("go-mod", "go", id="go"),
        pytest.param("rust-bin", "rust", id="rust"),
        pytest.param("ruby-rack", "ruby", id="ruby"),
        pytest.param("php-index", "php", id="php"),
        pytest.param("deno-json", "deno", id="deno"),
        pytest.param("static-index", "static", id="static"),
        pytest.param("procfile-only", "default", id="no-provider"),
    ],
)
def test_base_image_per_provider(repo: str, provider_image: str) -> None:
    images = BaseImages.uniform("registry.local/wrong:1").model_copy(
        update={provider_image: f"registry.local/{provider_image}:bookworm"}
    )
    first_line = render_dockerfile(plan_of(repo), images).splitlines()[0]
    assert first_line == f"FROM registry.local/{provider_image}:bookworm"


def test_build_image_set_in_config_overrides_base_images() -> None:
    plan = plan_of("node-npm").model_copy(update={"build_image": "registry.local/custom-node:20"})
    assert render_dockerfile(plan, BaseImages()).startswith("FROM registry.local/custom-node:20\n")


def test_cache_key_namespaces_app_caches_only() -> None:
    text = render_dockerfile(plan_of("node-pnpm"), BaseImages(), cache_key="svc-42")
    assert "RUN --mount=type=cache,target=/root/.local/share/pnpm/store/v3 pnpm i --frozen-lockfile" in text
    assert (
        "RUN --mount=type=cache,id=svc-42-node_modules-.cache,target=/app/node_modules/.cache "
        "--mount=type=cache,id=svc-42-.next-cache,target=/app/.next/cache pnpm run build"
    ) in text


@pytest.mark.parametrize(
    ("env", "cache_mounts"),
    [
        pytest.param({"NIXPACKS_NO_CACHE": "1"}, True, id="no-cache-variable"),
        pytest.param({}, False, id="no-buildkit"),
    ],
)
def test_cache_mounts_can_be_left_out(env: dict[str, str], cache_mounts: bool) -> None:
    text = render_dockerfile(plan_of("node-npm", **env), BaseImages(), cache_mounts=cache_mounts)
    assert "--mount" not in text
    assert "RUN npm ci" in text


def test_version_note_for_unavailable_runtime() -> None:
    text = render_dockerfile(plan_of("node-engines-20"), BaseImages())
    assert (
        "# NIXPACKS_NODE_VERSION=20 cannot be honoured exactly: Debian bookworm packages Node.js 18.19, "
        "installed below unless the base image has it."
    ) in text


@pytest.mark.parametrize("repo", ["node-npm", "python-pip", "ruby-rails", "php-composer"])
def test_no_version_note_when_debian_satisfies_the_request(repo: str) -> None:
    assert "cannot be honoured" not in render_dockerfile(plan_of(repo), BaseImages())


def test_whole_tree_before_install_when_lifecycle_scripts_need_it() -> None:
    text = render_dockerfile(plan_of("node-postinstall"), BaseImages())
    assert "# install\nCOPY . ./\nRUN --mount=type=cache,target=/root/.npm npm i\n" in text
    assert text.count("COPY") == 1


def test_directories_and_nested_manifests_keep_their_place() -> None:
    plan = BuildPlan(
        providers=["node"],
        phases={
            "install": Phase(
                name="install",
                cmds=["yarn install"],
                only_include_files=[
                    "package.json",
                    ".yarn/releases/",
                    "packages/a/package.json",
                    "my app.json",
                ],
            )
        },
        start=StartPhase(cmd="yarn start"),
    )
    lines = render_dockerfile(plan, BaseImages()).splitlines()
    assert lines[lines.index("# install") + 1 : lines.index("# install") + 5] == [
        'COPY ["package.json", "my app.json", "./"]',
        "COPY packages/a/package.json packages/a/",
        "COPY .yarn/releases/ .yarn/releases/",
        "RUN yarn install",
    ]


def test_variables_are_escaped() -> None:
    plan = BuildPlan(variables={"GREETING": 'say "hi" to $USER', "EMPTY": ""}, start=StartPhase(cmd="./run"))
    text = render_dockerfile(plan, BaseImages())
    assert 'ENV EMPTY=""\nENV GREETING="say \\"hi\\" to \\$USER"\n' in text


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        pytest.param(BuildPlan(), "no start command", id="no-start"),
        pytest.param(
            BuildPlan(variables={"BAD-NAME": "x"}, start=StartPhase(cmd="x")),
            "variables.BAD-NAME",
            id="bad-name",
        ),
        pytest.param(
            BuildPlan(static_assets={"../etc/passwd": "x"}, start=StartPhase(cmd="x")),
            "staticAssets.../etc/passwd",
            id="asset-escape",
        ),
    ],
)
def test_unrenderable_plans(plan: BuildPlan, message: str) -> None:
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        render_dockerfile(plan, BaseImages())


def test_run_image_makes_a_second_stage() -> None:
    plan = plan_of("go-mod").model_copy(
        update={
            "start": StartPhase(cmd="./out", run_image="dockyard/debian:bookworm", only_include_files=["out"])
        }
    )
    text = render_dockerfile(plan, BaseImages())
    assert text.startswith("FROM dockyard/debian:bookworm AS build\n")
    tail = text[text.index("\nFROM dockyard/debian:bookworm\n") :]
    assert "WORKDIR /app\nENV PORT=8080\nENV CGO_ENABLED=0\n" in tail
    assert "COPY --from=build /app/out /app/out\n" in tail
    assert tail.endswith(f"{cmd('./out')}\n")


def test_custom_phase_runs_after_its_dependency() -> None:
    text = render_dockerfile(plan_of("config-nixpacks-toml"), BaseImages())
    assert text.index("# build") < text.index("# migrate\nRUN node migrate.js") < text.index("CMD")


def test_a_build_command_on_a_provider_without_install_runs_after_setup() -> None:
    """A static site with a build command: the command needs the setup phase's packages (Caddy)."""
    plan = plan_of("static-index", NIXPACKS_BUILD_CMD="caddy version > /app/version.txt")

    dockerfile = render_dockerfile(plan, BaseImages())

    assert dockerfile.index("apt-get install") < dockerfile.rindex("caddy version > /app/version.txt")
