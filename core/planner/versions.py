"""Runtime versions: what a repository asks for, and whether Debian bookworm's packages satisfy it.

Plans report the requested version (`NIXPACKS_<LANG>_VERSION`) as Nixpacks does; the rendered Dockerfile
installs Debian's package and says so in a comment when that does not satisfy the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int]


@dataclass(frozen=True)
class Runtime:
    label: str
    variable: str
    debian: Version  # what Debian bookworm packages
    minimum: bool  # True: the request is a minimum (go.mod, rust-version); False: a range to satisfy

    @property
    def debian_text(self) -> str:
        return f"{self.debian[0]}.{self.debian[1]}"

    def honoured(self, requested: str) -> bool:
        if self.minimum:
            wanted = leading_version(requested)
            return wanted is not None and wanted <= self.debian
        return satisfies(self.debian, requested, composer=self.label == "PHP") is True


RUNTIMES = {
    "node": Runtime("Node.js", "NIXPACKS_NODE_VERSION", (18, 19), minimum=False),
    "python": Runtime("Python", "NIXPACKS_PYTHON_VERSION", (3, 11), minimum=False),
    "go": Runtime("Go", "NIXPACKS_GO_VERSION", (1, 19), minimum=True),
    "rust": Runtime("Rust", "NIXPACKS_RUST_VERSION", (1, 63), minimum=True),
    "ruby": Runtime("Ruby", "NIXPACKS_RUBY_VERSION", (3, 1), minimum=False),
    "php": Runtime("PHP", "NIXPACKS_PHP_VERSION", (8, 2), minimum=False),
}

_NUMBER = r"(\d+|[xX*])"
_COMPARATOR = re.compile(rf"^(\^|~>?|>=|<=|>|<|==?)?v?{_NUMBER}(?:\.{_NUMBER})?(?:\.{_NUMBER})?(?:[-+].*)?$")


def leading_version(text: str) -> Version | None:
    match = re.search(r"(\d+)(?:\.(\d+))?", text)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def satisfies(version: Version, spec: str, *, composer: bool = False) -> bool | None:
    """Whether `version` (major, minor) meets an npm/composer-style range; None if it cannot be read."""
    spec = spec.strip()
    if spec in ("", "*", "x", "latest"):
        return True
    alternatives = re.split(r"\s*\|\|?\s*", spec)
    results = [_all_hold(version, alternative, composer) for alternative in alternatives]
    if any(result is True for result in results):
        return True
    return None if any(result is None for result in results) else False


def _all_hold(version: Version, alternative: str, composer: bool) -> bool | None:
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alternative)
    text = f">={hyphen.group(1)} <={hyphen.group(2)}" if hyphen else alternative
    text = re.sub(r"(\^|~>?|>=|<=|>|<|==?)\s+", r"\1", text)
    tokens = [token for token in re.split(r"[\s,]+", text) if token]
    holds = [_holds(version, token, composer) for token in tokens]
    if any(hold is None for hold in holds):
        return None
    return all(holds)


def _holds(version: Version, token: str, composer: bool) -> bool | None:
    match = _COMPARATOR.match(token)
    if not match:
        return None
    op, major_text, minor_text, patch_text = match.groups()
    if not major_text.isdigit():
        return True
    major = int(major_text)
    minor = int(minor_text) if minor_text and minor_text.isdigit() else None
    patch_given = bool(patch_text and patch_text.isdigit())
    bound = (major, minor or 0)
    if op in (None, "=", "=="):
        return version[0] == major if minor is None else version == bound
    if op == "^":
        return version[0] == major and version >= bound
    if op in ("~", "~>"):
        if minor is None:
            return version[0] == major
        if composer and not patch_given:
            return version[0] == major and version >= bound
        return version == bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version[0] > major if minor is None else version > bound or (version == bound and patch_given)
    if op == "<":
        return version[0] < major if minor is None else version < bound
    return version[0] <= major if minor is None else version <= bound  # "<="


NODE_MAJORS = (24, 22, 20, 18, 16, 14)  # newest first, as Nixpacks picks the newest LTS a range allows


def node_major(spec: str) -> str:
    """The Node.js major a range asks for: Debian's 18 when it fits, else the newest LTS the range allows."""
    if satisfies(RUNTIMES["node"].debian, spec) is True:
        return "18"
    for major in NODE_MAJORS:
        if satisfies((major, 0), spec) or satisfies((major, 99), spec):
            return str(major)
    wanted = leading_version(spec)
    return str(wanted[0]) if wanted else "18"


def major_minor(text: str) -> str | None:
    wanted = leading_version(text)
    return f"{wanted[0]}.{wanted[1]}" if wanted else None
