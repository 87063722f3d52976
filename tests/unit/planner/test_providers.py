"""Every provider and package manager over small fixture repositories: detection, phases, start command."""

from __future__ import annotations

import pytest

from tests.unit.planner.support import cmds, plan_of

VENV = "python3 -m venv --copies /opt/venv && . /opt/venv/bin/activate"


@pytest.mark.parametrize(
    ("repo", "provider", "setup", "install", "build", "start"),
    [
        pytest.param(
            "node-npm", "node", [], ["npm ci"], ["npm run build"], "npm run start", id="node-npm-lockfile"
        ),
        pytest.param("node-index", "node", [], ["npm i"], [], "node index.js", id="node-npm-no-lockfile"),
        pytest.param("node-main", "node", [], ["npm i"], [], "node src/app.js", id="node-main-field"),
        pytest.param(
            "node-yarn",
            "node",
            ["npm install -g yarn@1"],
            ["yarn install --frozen-lockfile"],
            [],
            "yarn run start",
            id="node-yarn-classic",
        ),
        pytest.param(
            "node-yarn-berry",
            "node",
            ["npm install -g corepack && corepack enable"],
            ["yarn install --check-cache"],
            [],
            "yarn run start",
            id="node-yarn-berry",
        ),
        pytest.param(
            "node-pnpm",
            "node",
            ["npm install -g pnpm@9"],
            ["pnpm i --frozen-lockfile"],
            ["pnpm run build"],
            "pnpm run start",
            id="node-pnpm-lockfile",
        ),
        pytest.param(
            "node-pnpm-package-manager",
            "node",
            ["npm install -g pnpm@8.15.4"],
            ["pnpm i --frozen-lockfile"],
            [],
            "pnpm run start",
            id="node-pnpm-package-manager-field",
        ),
        pytest.param(
            "bun-app",
            "bun",
            ["npm install -g bun@1"],
            ["bun i --no-save"],
            [],
            "bun run start",
            id="bun-lock",
        ),
        pytest.param(
            "bun-package-manager",
            "bun",
            ["npm install -g bun@1.1.8"],
            ["bun i"],
            [],
            "bun index.ts",
            id="bun-package-manager-field",
        ),
        pytest.param(
            "deno-json",
            "deno",
            ["npm install -g deno@2"],
            [],
            [],
            "deno run --allow-net main.ts",
            id="deno-json-task",
        ),
        pytest.param(
            "deno-imports",
            "deno",
            ["npm install -g deno@2"],
            [],
            ["deno cache index.ts"],
            "deno run --allow-all index.ts",
            id="deno-land-imports",
        ),
        pytest.param(
            "deno-jsonc",
            "deno",
            ["npm install -g deno@2"],
            [],
            [],
            "deno task serve",
            id="deno-jsonc-comments",
        ),
        pytest.param(
            "python-pip",
            "python",
            [],
            [f"{VENV} && pip install -r requirements.txt"],
            [],
            "gunicorn app:app",
            id="python-pip-flask-gunicorn",
        ),
        pytest.param(
            "python-uv",
            "python",
            [],
            [
                f"{VENV} && pip install uv==$NIXPACKS_UV_VERSION"
                " && uv sync --no-dev --frozen --no-install-project"
            ],
            [],
            "uvicorn main:app --host 0.0.0.0 --port $PORT",
            id="python-uv-fastapi",
        ),
        pytest.param(
            "python-poetry",
            "python",
            [],
            [
                f"{VENV} && pip install poetry==$NIXPACKS_POETRY_VERSION"
                " && poetry install --only main --no-root --no-interaction --no-ansi"
            ],
            [],
            "python main.py",
            id="python-poetry",
        ),
        pytest.param(
            "python-pdm",
            "python",
            [],
            [f"{VENV} && pip install pdm==$NIXPACKS_PDM_VERSION && pdm install --prod --no-self"],
            [],
            "python main.py",
            id="python-pdm",
        ),
        pytest.param(
            "python-pipenv",
            "python",
            [],
            [f"{VENV} && pip install pipenv && pipenv install --deploy"],
            [],
            "python main.py",
            id="python-pipenv",
        ),
        pytest.param(
            "python-setuptools",
            "python",
            [],
            [f"{VENV} && pip install 'requests>=2' 'rich[jupyter] ; python_version >= '\"'\"'3.8'\"'\"''"],
            ["pip install --no-deps ."],
            "python -m hello_svc",
            id="python-pep621-setuptools",
        ),
        pytest.param(
            "python-setup-py",
            "python",
            [],
            [f"{VENV} && pip install ."],
            [],
            "python main.py",
            id="python-setup-py",
        ),
        pytest.param(
            "python-django",
            "python",
            [],
            [f"{VENV} && pip install -r requirements.txt"],
            [],
            "python manage.py migrate && gunicorn mysite.wsgi",
            id="python-django-gunicorn",
        ),
        pytest.param(
            "python-django-runserver",
            "python",
            [],
            [f"{VENV} && pip install -r requirements.txt"],
            [],
            "python manage.py migrate && python manage.py runserver 0.0.0.0:$PORT",
            id="python-django-without-gunicorn",
        ),
        pytest.param(
            "python-flask-dev",
            "python",
            [],
            [f"{VENV} && pip install -r requirements.txt"],
            [],
            "flask --app app:server run --host 0.0.0.0 --port $PORT",
            id="python-flask-without-gunicorn",
        ),
        pytest.param(
            "python-main-only",
            "python",
            [],
            ["python3 -m venv --copies /opt/venv"],
            [],
            "python main.py",
            id="python-main-py-only",
        ),
        pytest.param("go-mod", "go", [], ["go mod download"], ["go build -o out"], "./out", id="go-module"),
        pytest.param(
            "go-cmd",
            "go",
            [],
            ["go mod download"],
            ["go build -o out ./cmd/server"],
            "./out",
            id="go-cmd-dir",
        ),
        pytest.param(
            "go-main-only", "go", [], [], ["go build -o out main.go"], "./out", id="go-main-without-mod"
        ),
        pytest.param(
            "rust-bin",
            "rust",
            [],
            [],
            ["mkdir -p bin", "cargo build --release", "cp target/release/hello bin"],
            "./bin/hello",
            id="rust-main-bin",
        ),
        pytest.param(
            "rust-multi-bin",
            "rust",
            [],
            [],
            [
                "mkdir -p bin",
                "cargo build --release",
                "cp target/release/migrate bin",
                "cp target/release/server bin",
            ],
            "./bin/server",
            id="rust-bins-default-run",
        ),
        pytest.param(
            "rust-workspace",
            "rust",
            [],
            [],
            ["mkdir -p bin", "cargo build --release --package web", "cp target/release/web bin"],
            "./bin/web",
            id="rust-workspace-member",
        ),
        pytest.param(
            "ruby-rack",
            "ruby",
            [],
            ["bundle install"],
            [],
            "bundle exec rackup config.ru -o 0.0.0.0 -p ${PORT:-3000}",
            id="ruby-rack",
        ),
        pytest.param(
            "ruby-rails",
            "ruby",
            [],
            ["bundle install", "bundle exec bootsnap precompile --gemfile"],
            ["bundle exec rake assets:precompile", "bundle exec bootsnap precompile app/ lib/"],
            "bundle exec bin/rails server -b 0.0.0.0 -p ${PORT:-3000}",
            id="ruby-rails",
        ),
        pytest.param(
            "php-composer",
            "php",
            [],
            [
                "composer install --no-dev --no-interaction --prefer-dist --ignore-platform-reqs"
                " --no-scripts --no-autoloader"
            ],
            ["composer dump-autoload --optimize --no-dev"],
            "php -S 0.0.0.0:$PORT -t public",
            id="php-composer",
        ),
        pytest.param("php-index", "php", [], [], [], "php -S 0.0.0.0:$PORT -t .", id="php-index-only"),
    ],
)
def test_provider_plan(
    repo: str, provider: str, setup: list[str], install: list[str], build: list[str], start: str
) -> None:
    plan = plan_of(repo)
    assert plan.providers == [provider]
    assert cmds(plan, "setup") == setup
    assert cmds(plan, "install") == install
    assert cmds(plan, "build") == build
    assert plan.start.cmd == start


@pytest.mark.parametrize(
    ("repo", "apt"),
    [
        pytest.param("node-npm", ["nodejs", "npm"], id="node"),
        pytest.param("node-vite-spa", ["nodejs", "npm", "caddy"], id="node-spa"),
        pytest.param("python-pip", ["python3", "python3-venv"], id="python"),
        pytest.param(
            "python-django",
            ["python3", "python3-venv", "libpq-dev", "gcc", "python3-dev"],
            id="python-psycopg2",
        ),
        pytest.param("go-mod", ["golang-go", "ca-certificates"], id="go"),
        pytest.param("rust-bin", ["rustc", "cargo", "gcc", "libc6-dev", "ca-certificates"], id="rust"),
        pytest.param(
            "ruby-rack", ["ruby", "ruby-dev", "ruby-bundler", "build-essential", "libpq-dev"], id="ruby-pg"
        ),
        pytest.param(
            "php-composer", ["php-cli", "php-mbstring", "php-pgsql", "composer", "unzip"], id="php-ext"
        ),
        pytest.param("static-index", ["caddy"], id="static"),
    ],
)
def test_setup_installs_debian_packages(repo: str, apt: list[str]) -> None:
    setup = plan_of(repo).phases["setup"]
    assert setup.apt_pkgs == apt
    assert setup.nix_pkgs == []
    assert setup.only_include_files == []


@pytest.mark.parametrize(
    ("repo", "files"),
    [
        pytest.param("node-npm", ["package.json", "package-lock.json"], id="npm"),
        pytest.param("node-yarn-berry", ["package.json", "yarn.lock", ".yarnrc.yml"], id="yarn-berry"),
        pytest.param(
            "node-workspaces",
            ["package.json", "package-lock.json", "packages/api/package.json", "packages/web/package.json"],
            id="npm-workspaces",
        ),
        pytest.param("node-postinstall", None, id="npm-postinstall-needs-the-tree"),
        pytest.param("python-pip", ["requirements.txt", "requirements/base.txt"], id="pip-with-includes"),
        pytest.param("python-uv", ["pyproject.toml", "uv.lock"], id="uv"),
        pytest.param("python-poetry", ["pyproject.toml", "poetry.lock"], id="poetry"),
        pytest.param("python-pipenv", ["Pipfile", "Pipfile.lock"], id="pipenv"),
        pytest.param("python-setup-py", None, id="setup-py-needs-the-tree"),
        pytest.param("go-cmd", ["go.mod", "go.sum"], id="go"),
        pytest.param("ruby-rack", ["Gemfile", "Gemfile.lock"], id="bundler"),
        pytest.param("php-composer", ["composer.json", "composer.lock"], id="composer"),
    ],
)
def test_install_copies_only_dependency_manifests(repo: str, files: list[str] | None) -> None:
    assert plan_of(repo).phases["install"].only_include_files == files


@pytest.mark.parametrize(
    ("repo", "phase", "caches"),
    [
        pytest.param("node-npm", "install", ["/root/.npm"], id="npm"),
        pytest.param("node-yarn", "install", ["/usr/local/share/.cache/yarn/v6"], id="yarn"),
        pytest.param("node-pnpm", "install", ["/root/.local/share/pnpm/store/v3"], id="pnpm"),
        pytest.param("bun-app", "install", ["/root/.bun/install/cache"], id="bun"),
        pytest.param("node-pnpm", "build", ["node_modules/.cache", ".next/cache"], id="next-build"),
        pytest.param("python-pip", "install", ["/root/.cache/pip"], id="pip"),
        pytest.param("python-uv", "install", ["/root/.cache/pip", "/root/.cache/uv"], id="uv"),
        pytest.param("go-mod", "build", ["/root/.cache/go-build"], id="go"),
        pytest.param(
            "rust-bin", "build", ["/root/.cargo/git", "/root/.cargo/registry", "target"], id="cargo"
        ),
        pytest.param("ruby-rack", "install", ["/root/.bundle/cache"], id="bundler"),
        pytest.param("php-composer", "install", ["/root/.cache/composer"], id="composer"),
    ],
)
def test_cache_directories(repo: str, phase: str, caches: list[str]) -> None:
    assert plan_of(repo).phases[phase].cache_directories == caches
