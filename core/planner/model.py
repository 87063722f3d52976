"""The planner's typed contracts: the build plan (`nixpacks plan` JSON), base images, deploy keys."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DEFAULT_BASE_IMAGE = "dockyard/debian:bookworm"


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Phase(_Camel):
    """One step of the build. Lists run in order; `only_include_files=None` means "the whole source tree"."""

    name: str
    depends_on: list[str] = Field(default_factory=list)
    cmds: list[str] = Field(default_factory=list)
    apt_pkgs: list[str] = Field(default_factory=list)
    nix_pkgs: list[str] = Field(default_factory=list)  # always empty: Dockyard builds without Nix
    cache_directories: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    only_include_files: list[str] | None = None


class StartPhase(_Camel):
    cmd: str | None = None
    run_image: str | None = None
    only_include_files: list[str] | None = None


class BuildPlan(_Camel):
    """What `nixpacks plan` prints, with Debian packages (`aptPkgs`) in place of Nix packages.

    `providers` lists the detected (or configured) providers; the first one decides the base image.
    """

    providers: list[str] = Field(default_factory=list)
    build_image: str = DEFAULT_BASE_IMAGE
    variables: dict[str, str] = Field(default_factory=dict)
    static_assets: dict[str, str] | None = None
    phases: dict[str, Phase] = Field(default_factory=dict)
    start: StartPhase = Field(default_factory=StartPhase)

    def to_json(self) -> dict[str, Any]:
        """The plan as `nixpacks plan` prints it: camelCase keys, unset values left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildPlan:
        return cls.model_validate(data)


ProviderImage = Literal["node", "python", "go", "rust", "ruby", "php", "deno", "bun", "static"]


class BaseImages(BaseModel):
    """One Debian-based base image per provider/runtime; `default` serves plans with no provider."""

    model_config = ConfigDict(extra="forbid")

    default: str = DEFAULT_BASE_IMAGE
    node: str = DEFAULT_BASE_IMAGE
    python: str = DEFAULT_BASE_IMAGE
    go: str = DEFAULT_BASE_IMAGE
    rust: str = DEFAULT_BASE_IMAGE
    ruby: str = DEFAULT_BASE_IMAGE
    php: str = DEFAULT_BASE_IMAGE
    deno: str = DEFAULT_BASE_IMAGE
    bun: str = DEFAULT_BASE_IMAGE
    static: str = DEFAULT_BASE_IMAGE

    @classmethod
    def uniform(cls, image: str) -> BaseImages:
        """The same image for every provider (an air-gapped registry's copy, say)."""
        return cls(**dict.fromkeys(cls.model_fields, image))

    def for_provider(self, provider: str | None) -> str:
        field = "static" if provider == "staticfile" else provider
        if field and field != "default" and field in type(self).model_fields:
            image: str = getattr(self, field)
            return image
        return self.default


RestartPolicy = Literal["ON_FAILURE", "ALWAYS", "NEVER"]


class DeployConfig(BaseModel):
    """The deploy-time keys of railway.toml / railway.json and dockyard.toml (all optional)."""

    model_config = ConfigDict(extra="forbid")

    start_command: str | None = None
    pre_deploy_command: str | None = None
    healthcheck_path: str | None = None
    healthcheck_timeout: int | None = None
    restart_policy_type: RestartPolicy | None = None
    restart_policy_max_retries: int | None = None
    num_replicas: int | None = None
    cron_schedule: str | None = None
    overlap_seconds: int | None = None
    draining_seconds: int | None = None
