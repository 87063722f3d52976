"""PHP: Composer apps and plain index.php sites, served by PHP's built-in server with several workers."""

from __future__ import annotations

from typing import Any

from core.planner.environment import PlanEnv
from core.planner.errors import ConfigError
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base, node
from core.planner.source import SourceTree

COMPOSER_CACHE = "/root/.cache/composer"
# Extensions compiled into Debian's php-cli, or pulled in by it: no package to add.
BUILTIN_EXTENSIONS = frozenset(
    "json ctype tokenizer openssl pdo fileinfo iconv session filter hash pcre spl zend-opcache opcache "
    "phar posix sockets exif ffi calendar gettext shmop sysvmsg sysvsem sysvshm".split()
)
EXTENSION_PACKAGES = {
    "pdo_mysql": "php-mysql", "mysqli": "php-mysql", "mysqlnd": "php-mysql",
    "pdo_pgsql": "php-pgsql", "pgsql": "php-pgsql",
    "pdo_sqlite": "php-sqlite3", "sqlite3": "php-sqlite3",
    "dom": "php-xml", "xml": "php-xml", "simplexml": "php-xml",
    "xmlwriter": "php-xml", "xmlreader": "php-xml",
}  # fmt: skip


def composer_json(app: SourceTree) -> dict[str, Any]:
    if not app.has_file("composer.json"):
        return {}
    data = app.read_json("composer.json")
    if not isinstance(data, dict):
        raise ConfigError("composer.json", "", "expected a JSON object")
    return data


def requirements(composer: dict[str, Any]) -> dict[str, str]:
    require = composer.get("require")
    return {k: v for k, v in require.items() if isinstance(v, str)} if isinstance(require, dict) else {}


def php_version(env: PlanEnv, composer: dict[str, Any]) -> str:
    """NIXPACKS_PHP_VERSION > require.php in composer.json (a constraint, e.g. ^8.1) > Debian's 8.2."""
    return env.config("PHP_VERSION") or requirements(composer).get("php") or "8.2"


def extension_packages(composer: dict[str, Any]) -> list[str]:
    packages = []
    for name in sorted(requirements(composer)):
        extension = name.removeprefix("ext-").lower()
        if name.startswith("ext-") and extension not in BUILTIN_EXTENSIONS:
            packages.append(EXTENSION_PACKAGES.get(extension, f"php-{extension}"))
    return list(dict.fromkeys(packages))


def document_root(app: SourceTree, env: PlanEnv) -> str:
    if configured := env.config("PHP_ROOT_DIR"):
        return configured.removeprefix("/app/").strip("/") or "."
    return "public" if app.has_file("artisan") or app.has_file("public/index.php") else "."


class PhpProvider:
    name = "php"
    detects = "composer.json or index.php (PHP)"
    starts = "PHP's built-in server on public/ or the repository root"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("composer.json") or app.has_file("index.php")

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        composer = composer_json(app)
        variables = {"PHP_CLI_SERVER_WORKERS": "4", "NIXPACKS_PHP_VERSION": php_version(env, composer)}
        if app.has_file("artisan"):
            variables.update(IS_LARAVEL="yes", NIXPACKS_PHP_ROOT_DIR="/app/public")
        layer = PlanLayer(variables=variables)
        apt = ["php-cli", *extension_packages(composer)]
        install_cmds: list[str] = []
        build_cmds: list[str] = []
        files: list[str] | None = []
        if app.has_file("composer.json"):
            apt += ["composer", "unzip"]
            layer.variables["COMPOSER_ALLOW_SUPERUSER"] = "1"
            install_cmds.append(
                "composer install --no-dev --no-interaction --prefer-dist --ignore-platform-reqs"
                " --no-scripts --no-autoloader"
            )
            files = app.existing("composer.json", "composer.lock", "auth.json")
            build_cmds.append("composer dump-autoload --optimize --no-dev")
        if app.has_file("package.json"):
            pkg = node.read_package_json(app)
            manager = node.package_manager(app, pkg)
            apt += ["nodejs", "npm"]
            install_cmds.append(node.install_cmd(app, manager))
            node_files = node.install_files(app, pkg)
            files = None if node_files is None or files is None else files + node_files
            script = next((name for name in ("prod", "build") if name in pkg.scripts), None)
            if script:
                build_cmds.append(f"{manager} run {script}")
        layer.phases["setup"] = base.setup(apt)
        caches = [COMPOSER_CACHE] if app.has_file("composer.json") else []
        layer.phases["install"] = base.install(install_cmds, files, caches)
        layer.phases["build"] = base.build(build_cmds)
        root = document_root(app, env)
        layer.start = StartLayer(cmd=f"php -S 0.0.0.0:$PORT -t {base.shell_word(root)}")
        return layer
