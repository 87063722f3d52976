"""Partial plans ("layers") and how they stack: provider defaults, Procfile, config files, environment.

A layer leaves a value `None` when it has nothing to say. A list that contains "..." (or "@auto") extends
the layer below at that position instead of replacing it, as in Nixpacks; the markers are dropped at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from core.planner.model import BuildPlan, Phase, StartPhase

AUTO_MARKERS = ("...", "@auto")
PHASE_LISTS = ("depends_on", "cmds", "apt_pkgs", "cache_directories", "paths", "only_include_files")


@dataclass
class PhaseLayer:
    depends_on: list[str] | None = None
    cmds: list[str] | None = None
    apt_pkgs: list[str] | None = None
    cache_directories: list[str] | None = None
    paths: list[str] | None = None
    only_include_files: list[str] | None = None


@dataclass
class StartLayer:
    cmd: str | None = None
    run_image: str | None = None
    only_include_files: list[str] | None = None


@dataclass
class PlanLayer:
    providers: list[str] | None = None
    build_image: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    static_assets: dict[str, str] = field(default_factory=dict)
    phases: dict[str, PhaseLayer] = field(default_factory=dict)
    start: StartLayer = field(default_factory=StartLayer)

    def phase(self, name: str) -> PhaseLayer:
        """The named phase, created with Nixpacks' default dependencies (install → setup, build → install)."""
        if name not in self.phases:
            self.phases[name] = PhaseLayer(depends_on=default_depends_on(name))
        return self.phases[name]


DEFAULT_DEPENDS_ON = {"install": ["setup"], "build": ["install"]}  # Nixpacks' Phase::install / Phase::build


def default_depends_on(name: str) -> list[str] | None:
    """What a conventional phase depends on, also under a provider prefix (`node:build` → `node:install`)."""
    prefix, _, base = name.rpartition(":")
    defaults = DEFAULT_DEPENDS_ON.get(base)
    if defaults is None:
        return None
    return [f"{prefix}:{dep}" if prefix else dep for dep in defaults]


def fill_auto(original: list[str] | None, replacer: list[str] | None) -> list[str] | None:
    """`replacer` wins; each "..." in it is followed by `original`'s items (the marker stays until `pin`)."""
    if replacer is None:
        return original
    filled: list[str] = []
    for item in replacer:
        filled.append(item)
        if item in AUTO_MARKERS:
            filled.extend(original or [])
    return filled


def merge(lower: PlanLayer, upper: PlanLayer) -> PlanLayer:
    phases = dict(lower.phases)
    for name, upper_phase in upper.phases.items():
        base = phases.get(name) or PhaseLayer(depends_on=default_depends_on(name))
        phases[name] = PhaseLayer(
            **{
                f.name: fill_auto(getattr(base, f.name), getattr(upper_phase, f.name))
                for f in fields(PhaseLayer)
            }
        )
    return PlanLayer(
        providers=fill_auto(lower.providers, upper.providers),
        build_image=upper.build_image or lower.build_image,
        variables={**lower.variables, **upper.variables},
        static_assets={**lower.static_assets, **upper.static_assets},
        phases=phases,
        start=StartLayer(
            cmd=upper.start.cmd or lower.start.cmd,
            run_image=upper.start.run_image or lower.start.run_image,
            only_include_files=fill_auto(lower.start.only_include_files, upper.start.only_include_files),
        ),
    )


def merge_all(layers: list[PlanLayer]) -> PlanLayer:
    merged = PlanLayer()
    for layer in layers:
        merged = merge(merged, layer)
    return merged


def prefix_phases(layer: PlanLayer, prefix: str) -> PlanLayer:
    """A second provider's phases become `<provider>:<phase>` so they sit beside the first provider's."""
    phases = {}
    for name, phase in layer.phases.items():
        depends = [f"{prefix}:{dep}" for dep in phase.depends_on] if phase.depends_on is not None else None
        phases[f"{prefix}:{name}"] = PhaseLayer(**{**vars(phase), "depends_on": depends})
    return PlanLayer(
        providers=layer.providers,
        build_image=layer.build_image,
        variables=layer.variables,
        static_assets=layer.static_assets,
        phases=phases,
        start=layer.start,
    )


def _pin(items: list[str] | None) -> list[str]:
    return [item for item in items or [] if item not in AUTO_MARKERS]


def _pin_phase(name: str, phase: PhaseLayer) -> Phase:
    return Phase(
        name=name,
        depends_on=_pin(phase.depends_on),
        cmds=_pin(phase.cmds),
        apt_pkgs=list(dict.fromkeys(_pin(phase.apt_pkgs))),
        cache_directories=list(dict.fromkeys(_pin(phase.cache_directories))),
        paths=_pin(phase.paths),
        only_include_files=None if phase.only_include_files is None else _pin(phase.only_include_files),
    )


def pin(layer: PlanLayer, providers: list[str], build_image: str) -> BuildPlan:
    """The final plan: markers removed, phases and variables sorted as Nixpacks prints them."""
    start = layer.start
    return BuildPlan(
        providers=providers,
        build_image=layer.build_image or build_image,
        variables=dict(sorted(layer.variables.items())),
        static_assets=dict(sorted(layer.static_assets.items())) or None,
        phases={name: _pin_phase(name, layer.phases[name]) for name in sorted(layer.phases)},
        start=StartPhase(
            cmd=start.cmd,
            run_image=start.run_image,
            only_include_files=None if start.only_include_files is None else _pin(start.only_include_files),
        ),
    )
