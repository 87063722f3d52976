"""Ruby: Bundler apps (Rails, Rack, a Rakefile) on Debian's ruby and bundler."""

from __future__ import annotations

import re

from core.planner.environment import PlanEnv
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.source import SourceTree

BUNDLE_CACHE = "/root/.bundle/cache"
# Gems with native extensions and the Debian headers they build against (as Nixpacks adds them).
NATIVE_GEMS = {
    "pg": ["libpq-dev"],
    "mysql2": ["default-libmysqlclient-dev"],
    "rmagick": ["libmagickwand-dev"],
    "ruby-vips": ["libvips-dev"],
    "charlock_holmes": ["libicu-dev"],
}


def gems(app: SourceTree) -> set[str]:
    text = app.read_text("Gemfile") + "\n" + app.read_text("Gemfile.lock")
    declared = re.findall(r"""^\s*gem\s+['"]([\w.-]+)['"]""", text, re.M)
    locked = re.findall(r"^    ([\w.-]+) \(", text, re.M)
    return set(declared) | set(locked)


def ruby_version(app: SourceTree, env: PlanEnv) -> str:
    """NIXPACKS_RUBY_VERSION > .ruby-version > Gemfile `ruby "x"` > Gemfile.lock > Debian's 3.1."""
    if configured := env.config("RUBY_VERSION"):
        return configured
    if app.has_file(".ruby-version"):
        return app.read_text(".ruby-version").strip().removeprefix("ruby-")
    if match := re.search(r"""^\s*ruby\s+['"]([^'"]+)['"]""", app.read_text("Gemfile"), re.M):
        return match.group(1).lstrip("~>= ")
    if match := re.search(r"RUBY VERSION\s+ruby (\d+\.\d+\.\d+)", app.read_text("Gemfile.lock")):
        return match.group(1)
    return "3.1"


def is_rails(app: SourceTree) -> bool:
    return "Rails::Application" in app.read_text("config/application.rb")


def start_cmd(app: SourceTree) -> str | None:
    if is_rails(app):
        if app.has_file("bin/rails"):
            return "bundle exec bin/rails server -b 0.0.0.0 -p ${PORT:-3000}"
        return "bundle exec rails server -b 0.0.0.0 -p ${PORT:-3000}"
    if app.has_file("config/environment.rb") and app.has_dir("script"):
        return "bundle exec ruby script/server -p ${PORT:-3000}"
    if app.has_file("config.ru"):
        return "bundle exec rackup config.ru -o 0.0.0.0 -p ${PORT:-3000}"
    if app.has_file("Rakefile"):
        return "bundle exec rake"
    return None


class RubyProvider:
    name = "ruby"
    detects = "Gemfile (Ruby)"
    starts = "config/application.rb (Rails), config.ru (Rack) or a Rakefile"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("Gemfile")

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        used = gems(app)
        variables = {
            "BUNDLE_GEMFILE": "/app/Gemfile",
            "BUNDLE_WITHOUT": "development:test",
            "MALLOC_ARENA_MAX": "2",
            "NIXPACKS_RUBY_VERSION": ruby_version(app, env),
        }
        if is_rails(app):
            variables.update(
                RAILS_ENV="production", RAILS_LOG_TO_STDOUT="enabled", RAILS_SERVE_STATIC_FILES="1"
            )
        layer = PlanLayer(variables=variables)
        apt = ["ruby", "ruby-dev", "ruby-bundler", "build-essential"]
        for gem, packages in sorted(NATIVE_GEMS.items()):
            if gem in used:
                apt += packages
        layer.phases["setup"] = base.setup(apt)
        install_cmds = ["bundle install"]
        if "bootsnap" in used:
            install_cmds.append("bundle exec bootsnap precompile --gemfile")
        # A gem from a local path needs the whole tree (as Nixpacks decides it).
        files = (
            None
            if re.search(r"path:|:path\s*=>", app.read_text("Gemfile"))
            else app.existing("Gemfile", "Gemfile.lock")
        )
        layer.phases["install"] = base.install(install_cmds, files, [BUNDLE_CACHE])
        build_cmds = []
        if is_rails(app) and any("sprockets" in gem or "propshaft" in gem for gem in used):
            build_cmds.append("bundle exec rake assets:precompile")
        if is_rails(app) and "bootsnap" in used:
            build_cmds.append("bundle exec bootsnap precompile app/ lib/")
        layer.phases["build"] = base.build(build_cmds)
        layer.start = StartLayer(cmd=start_cmd(app))
        return layer
