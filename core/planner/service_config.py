"""railway.toml / railway.json and dockyard.toml: a service's [build] and [deploy] settings as code.

railway.* use Railway's camelCase keys; keys Railway knows and Dockyard does not use are ignored there.
dockyard.toml takes the same keys in camelCase or snake_case and refuses unknown keys (it is our format).
When both railway.toml and railway.json exist, railway.toml is read (as nixpacks.toml wins over .json).
Values are held to the API's limits (core.limits): a file cannot ask for what the API would refuse.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from core import limits
from core.planner.checks import Checker
from core.planner.layers import PlanLayer
from core.planner.model import DeployConfig
from core.planner.nixpacks_config import parse_nixpacks_plan
from core.planner.source import SourceTree

RAILWAY_FILES = ("railway.toml", "railway.json")
DOCKYARD_FILE = "dockyard.toml"
BUILDERS = {"NIXPACKS": "planner", "RAILPACK": "planner", "PLANNER": "planner", "DOCKERFILE": "dockerfile"}
BUILD_KEYS = ("builder", "buildCommand", "dockerfilePath", "watchPatterns", "nixpacksConfigPath")
DEPLOY_KEYS = (  # file key (camelCase) -> DeployConfig field
    "startCommand",
    "preDeployCommand",
    "healthcheckPath",
    "healthcheckTimeout",
    "restartPolicyType",
    "restartPolicyMaxRetries",
    "numReplicas",
    "cronSchedule",
    "overlapSeconds",
    "drainingSeconds",
)
NUMBERS = {
    "healthcheckTimeout": limits.HEALTHCHECK_TIMEOUT_SECONDS,
    "restartPolicyMaxRetries": limits.RESTART_MAX_RETRIES,
    "numReplicas": limits.REPLICAS,
    "overlapSeconds": limits.OVERLAP_SECONDS,
    "drainingSeconds": limits.DRAINING_SECONDS,
}
MAX_LENGTHS = {
    "buildCommand": limits.COMMAND_MAX_LENGTH,
    "dockerfilePath": limits.PATH_MAX_LENGTH,
    "nixpacksConfigPath": limits.PATH_MAX_LENGTH,
    "startCommand": limits.COMMAND_MAX_LENGTH,
    "preDeployCommand": limits.COMMAND_MAX_LENGTH,
    "healthcheckPath": limits.PATH_MAX_LENGTH,
    "cronSchedule": limits.CRON_SCHEDULE_MAX_LENGTH,
}


@dataclass(frozen=True)
class BuildSettings:
    builder: str | None = None  # "planner" or "dockerfile" (Railway's NIXPACKS/RAILPACK or DOCKERFILE)
    build_command: str | None = None
    dockerfile_path: str | None = None
    watch_patterns: list[str] | None = None
    nixpacks_config_path: str | None = None
    nixpacks_plan: PlanLayer | None = None


@dataclass(frozen=True)
class ServiceConfig:
    file: str
    build: BuildSettings = field(default_factory=BuildSettings)
    deploy: DeployConfig = field(default_factory=DeployConfig)

    def layer(self) -> PlanLayer:
        """What this file contributes to the build plan: build command, start command, embedded plan."""
        layer = copy.deepcopy(self.build.nixpacks_plan) if self.build.nixpacks_plan else PlanLayer()
        if self.build.build_command:
            layer.phase("build").cmds = [self.build.build_command]
        if self.deploy.start_command:
            layer.start.cmd = self.deploy.start_command
        return layer


def read_railway(app: SourceTree) -> ServiceConfig | None:
    name = next((name for name in RAILWAY_FILES if app.has_file(name)), None)
    if name is None:
        return None
    data = app.read_toml(name) if name.endswith(".toml") else app.read_json(name)
    return _parse(Checker(name), data, strict=False)


def read_dockyard(app: SourceTree) -> ServiceConfig | None:
    if not app.has_file(DOCKYARD_FILE):
        return None
    check = Checker(DOCKYARD_FILE)
    data = check.table("", app.read_toml(DOCKYARD_FILE))
    check.known_keys("", data, ("build", "deploy"))
    return _parse(check, {name: _camel_keys(check, name, table) for name, table in data.items()}, strict=True)


def _camel_keys(check: Checker, prefix: str, table: Any) -> dict[str, Any]:
    camel: dict[str, Any] = {}
    for key, value in check.table(prefix, table).items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if name in camel:
            raise check.fail(f"{prefix}.{key}", f"given twice (as {name} and {key}); keep one")
        camel[name] = value
    return camel


def _parse(check: Checker, data: Any, strict: bool) -> ServiceConfig:
    data = check.table("", data)
    # railway.json written by tools may spell "unset" as null
    build = {k: v for k, v in check.table("build", data.get("build") or {}).items() if v is not None}
    deploy = {k: v for k, v in check.table("deploy", data.get("deploy") or {}).items() if v is not None}
    if strict:
        check.known_keys("build", build, BUILD_KEYS)
        check.known_keys("deploy", deploy, DEPLOY_KEYS)
    return ServiceConfig(file=check.file, build=_build(check, build), deploy=_deploy(check, deploy))


def _build(check: Checker, table: dict[str, Any]) -> BuildSettings:
    builder = None
    if "builder" in table:
        name = check.string("build.builder", table["builder"]).upper()
        if name not in BUILDERS:
            raise check.fail("build.builder", f"unsupported builder {name!r}; use NIXPACKS or DOCKERFILE")
        builder = BUILDERS[name]
    plan = None
    if "nixpacksPlan" in table:
        plan = parse_nixpacks_plan(
            check, check.table("build.nixpacksPlan", table["nixpacksPlan"]), "build.nixpacksPlan"
        )

    def optional(key: str) -> str | None:
        return check.bounded_string(f"build.{key}", table[key], MAX_LENGTHS[key]) if key in table else None

    return BuildSettings(
        builder=builder,
        build_command=optional("buildCommand"),
        dockerfile_path=optional("dockerfilePath"),
        watch_patterns=_watch_patterns(check, table["watchPatterns"]) if "watchPatterns" in table else None,
        nixpacks_config_path=optional("nixpacksConfigPath"),
        nixpacks_plan=plan,
    )


def _watch_patterns(check: Checker, value: Any) -> list[str]:
    patterns = check.strings("build.watchPatterns", value)
    if len(patterns) > limits.WATCH_PATTERNS_MAX:
        raise check.fail(
            "build.watchPatterns",
            f"{len(patterns)} patterns is above the limit of {limits.WATCH_PATTERNS_MAX}",
        )
    for index, pattern in enumerate(patterns):
        check.bounded_string(f"build.watchPatterns[{index}]", pattern, limits.WATCH_PATTERN_MAX_LENGTH)
    return patterns


def _deploy(check: Checker, table: dict[str, Any]) -> DeployConfig:
    values: dict[str, Any] = {}
    for key in DEPLOY_KEYS:
        if key not in table:
            continue
        value, where = table[key], f"deploy.{key}"
        if key in NUMBERS:
            values[key] = check.integer(where, value, NUMBERS[key])
            continue
        if key == "preDeployCommand" and isinstance(value, list):
            value = " && ".join(check.strings(where, value))
        values[key] = check.bounded_string(where, value, MAX_LENGTHS.get(key, limits.COMMAND_MAX_LENGTH))
    if "restartPolicyType" in values:
        policy = values["restartPolicyType"].upper()
        if policy not in ("ON_FAILURE", "ALWAYS", "NEVER"):
            raise check.fail(
                "deploy.restartPolicyType", f"expected ON_FAILURE, ALWAYS or NEVER, got {policy!r}"
            )
        values["restartPolicyType"] = policy
    if "healthcheckPath" in values and not re.match(limits.HEALTH_PATH_PATTERN, values["healthcheckPath"]):
        raise check.fail("deploy.healthcheckPath", "expected a path starting with /, without spaces")
    if "cronSchedule" in values and len(values["cronSchedule"].split()) != 5:
        raise check.fail("deploy.cronSchedule", "expected a cron expression of five fields (m h dom mon dow)")
    return DeployConfig(**{_snake(key): value for key, value in values.items()})


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def merged_deploy(*configs: ServiceConfig | None) -> DeployConfig:
    """Later files win key by key (dockyard.toml over railway.*)."""
    values: dict[str, Any] = {}
    for config in configs:
        if config is not None:
            values.update(config.deploy.model_dump(exclude_none=True))
    return DeployConfig(**values)
