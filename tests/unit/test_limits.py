"""The limits on what users give Dockyard (core/limits.py), defined once: the API's schemas, the
workflow contracts and the config files of a repository hold values to the same bounds, and text to
the same rule on control characters; hostnames that collide are found by cutting labels at hyphens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from activities.sources import PreparedSource
from api.schemas.deployments import ScaleCreate
from api.schemas.services import ServiceCreate, ServiceUpdate
from core import limits
from core.contracts import ReplicaSpec
from core.naming import hostname_label, label_owners
from core.planner import ConfigError, read_deploy_config
from core.planner.service_config import NUMBERS
from tests.unit.planner.support import write_repo
from workflows.deploy import DeployParams, apply_deploy_config


@pytest.mark.parametrize(
    ("limit", "value", "problem"),
    [
        pytest.param(limits.REPLICAS, 1, None, id="replicas-minimum"),
        pytest.param(limits.REPLICAS, 100, None, id="replicas-maximum"),
        pytest.param(
            limits.REPLICAS,
            2000,
            "2000 is above the limit of 100 (replicas of a service)",
            id="replicas-above",
        ),
        pytest.param(
            limits.REPLICAS, 0, "0 is below the limit of 1 (replicas of a service)", id="replicas-below"
        ),
        pytest.param(
            limits.OVERLAP_SECONDS, 3600.5, "3600.5 is above the limit of 3600", id="overlap-fraction"
        ),
        pytest.param(limits.DRAINING_SECONDS, 0, None, id="draining-zero"),
    ],
)
def test_a_range_names_the_limit_a_value_crosses(
    limit: limits.Range, value: float, problem: str | None
) -> None:
    found = limit.problem(value)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    ("text", "multiline", "problem"),
    [
        pytest.param("main", False, None, id="plain"),
        pytest.param("héllo wörld ✓", False, None, id="unicode"),
        pytest.param(
            "ma\x00in",
            False,
            "contains the control character U+0000 at position 2; give one line of printable text",
            id="nul",
        ),
        pytest.param(
            "a\tb", False, "contains the control character U+0009 at position 1", id="tab-in-a-line"
        ),
        pytest.param(
            "a\nb", False, "contains the control character U+000A at position 1", id="newline-in-a-line"
        ),
        pytest.param("\x1b[31m", False, "contains the control character U+001B at position 0", id="escape"),
        pytest.param("del\x7f", False, "contains the control character U+007F at position 3", id="del"),
        pytest.param("line 1\r\nline 2\n\tindented", True, None, id="lines-and-tabs"),
        pytest.param(
            "key\n\x00",
            True,
            "contains the control character U+0000 at position 4; of the control characters only tab, "
            "line feed and carriage return are allowed",
            id="nul-in-lines",
        ),
        pytest.param("page\x0cbreak", True, "contains the control character U+000C", id="form-feed-in-lines"),
    ],
)
def test_control_characters(text: str, multiline: bool, problem: str | None) -> None:
    found = limits.control_character(text, multiline=multiline)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


# --- hostnames ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "owners"),
    [
        pytest.param("web-a-b", [("web", "a-b"), ("web-a", "b")], id="two-hyphens"),
        pytest.param("web-production", [("web", "production")], id="one-hyphen"),
        pytest.param("web", [], id="no-hyphen"),
        pytest.param("web-pr-7", [("web", "pr-7"), ("web-pr", "7")], id="preview"),
    ],
)
def test_label_owners_are_every_cut_at_a_hyphen(label: str, owners: list[tuple[str, str]]) -> None:
    assert label_owners(label) == owners


DNS_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(DNS_LABEL, DNS_LABEL, DNS_LABEL, DNS_LABEL)
def test_two_pairs_share_a_hostname_only_if_each_is_an_owner_of_the_other(
    slug: str, environment: str, other_slug: str, other_environment: str
) -> None:
    """The collision check queries `label_owners`: it must find every pair that shares a label."""
    label = hostname_label(slug, environment)
    assert (slug, environment) in label_owners(label)
    shared = label == hostname_label(other_slug, other_environment)
    assert shared == ((other_slug, other_environment) in label_owners(label))


# --- the same limits for the API and the files -------------------------------------------------------------

# (file key, API field of ServiceCreate, limit)
SHARED = [
    pytest.param("numReplicas", "replicas", limits.REPLICAS, id="replicas"),
    pytest.param("overlapSeconds", "overlap_seconds", limits.OVERLAP_SECONDS, id="overlap"),
    pytest.param("drainingSeconds", "draining_seconds", limits.DRAINING_SECONDS, id="draining"),
]


def api_refuses(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return True
    return False


def file_refuses(tmp_path: Path, key: str, value: int) -> bool:
    write_repo(tmp_path, {"railway.toml": f"[deploy]\n{key} = {value}\n"})
    try:
        read_deploy_config(tmp_path)
    except ConfigError:
        return True
    return False


@pytest.mark.parametrize(("key", "field", "limit"), SHARED)
def test_the_api_and_the_files_accept_the_same_values(
    tmp_path: Path, key: str, field: str, limit: limits.Range
) -> None:
    for value in (limit.minimum - 1, limit.minimum, limit.maximum, limit.maximum + 1):
        refused = limit.problem(value) is not None
        assert api_refuses(ServiceCreate, {"name": "web", field: value}) == refused, value
        assert api_refuses(ServiceUpdate, {field: value}) == refused, value
        assert file_refuses(tmp_path, key, value) == refused, value


@pytest.mark.parametrize("bound", ["minimum", "maximum"])
def test_the_contracts_accept_whatever_the_files_accept(tmp_path: Path, bound: str) -> None:
    """apply_deploy_config copies file values into the deploy's params without validating them:
    every value a file may give must be one the contracts take."""
    value = {key: getattr(limit, bound) for key, limit in NUMBERS.items()}
    write_repo(tmp_path, {"railway.toml": "[deploy]\n" + "".join(f"{k} = {v}\n" for k, v in value.items())})
    deploy = read_deploy_config(tmp_path).model_dump(exclude_none=True)
    params = DeployParams(
        deployment_id="d",
        service_id="s",
        service_name="web",
        environment_id="e",
        environment_name="production",
        hostname="web-production.apps.test",
        drain_seconds=1,
    )
    prepared = PreparedSource(host_queue="q", context_dir="/src", builder="planner", deploy=deploy)

    applied = apply_deploy_config(params, prepared)

    assert DeployParams.model_validate(applied.model_dump()) == applied
    assert (applied.replicas, applied.draining_seconds) == (value["numReplicas"], value["drainingSeconds"])
    ReplicaSpec(
        replica_id="r-0",
        service_id="s",
        environment_id="e",
        deployment_id="d",
        image="i",
        stop_grace_seconds=applied.draining_seconds,
    )
    assert ScaleCreate(replicas=applied.replicas).replicas == applied.replicas


# --- config files above the limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {"railway.toml": "[deploy]\nnumReplicas = 2000\n"},
            "railway.toml: deploy.numReplicas: 2000 is above the limit of 100 (replicas of a service)",
            id="replicas",
        ),
        pytest.param(
            {"railway.toml": "[deploy]\ndrainingSeconds = 4000\n"},
            "railway.toml: deploy.drainingSeconds: 4000 is above the limit of 3600 "
            "(seconds between SIGTERM and SIGKILL)",
            id="draining",
        ),
        pytest.param(
            {"railway.json": '{"deploy": {"overlapSeconds": 1000000000000}}'},
            "railway.json: deploy.overlapSeconds: 1000000000000 is above the limit of 3600 "
            "(seconds old replicas serve beside new ones)",
            id="overlap-json",
        ),
        pytest.param(
            {"dockyard.toml": "[deploy]\nnum_replicas = 101\n"},
            "dockyard.toml: deploy.numReplicas: 101 is above the limit of 100 (replicas of a service)",
            id="dockyard-snake-case",
        ),
        pytest.param(
            {"railway.toml": "[deploy]\nhealthcheckTimeout = 86400\n"},
            "railway.toml: deploy.healthcheckTimeout: 86400 is above the limit of 3600 "
            "(seconds a deploy waits for healthy replicas)",
            id="healthcheck-timeout",
        ),
        pytest.param(
            {"railway.toml": "[deploy]\nrestartPolicyMaxRetries = 5000\n"},
            "railway.toml: deploy.restartPolicyMaxRetries: 5000 is above the limit of 1000 "
            "(restarts of a failing replica)",
            id="restart-retries",
        ),
        pytest.param(
            {"railway.toml": f'[deploy]\nstartCommand = "{"x" * 4097}"\n'},
            "railway.toml: deploy.startCommand: 4097 characters is above the limit of 4096",
            id="start-command-length",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\nstartCommand = "gunicorn\\u0000app"\n'},
            "railway.toml: deploy.startCommand: contains the control character U+0000 at position 8; "
            "give one line of printable text",
            id="start-command-nul",
        ),
        pytest.param(
            {"railway.json": '{"deploy": {"preDeployCommand": ["migrate", "seed\\u001b"]}}'},
            "railway.json: deploy.preDeployCommand: contains the control character U+001B at position 4; "
            "give one line of printable text",
            id="pre-deploy-escape",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\nhealthcheckPath = "/health check"\n'},
            "railway.toml: deploy.healthcheckPath: expected a path starting with /, without spaces",
            id="health-path-space",
        ),
        pytest.param(
            {"railway.toml": f'[deploy]\nhealthcheckPath = "/{"h" * 255}"\n'},
            "railway.toml: deploy.healthcheckPath: 256 characters is above the limit of 255",
            id="health-path-length",
        ),
        pytest.param(
            {"railway.toml": "[build]\nwatchPatterns = [" + ", ".join(['"src/**"'] * 101) + "]\n"},
            "railway.toml: build.watchPatterns: 101 patterns is above the limit of 100",
            id="watch-patterns-count",
        ),
        pytest.param(
            {"dockyard.toml": '[build]\nbuild_command = "make\\u007f"\n'},
            "dockyard.toml: build.buildCommand: contains the control character U+007F at position 4; "
            "give one line of printable text",
            id="build-command-del",
        ),
    ],
)
def test_a_config_file_value_outside_the_limits_names_file_key_and_limit(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    write_repo(tmp_path, {"index.html": "", **files})
    with pytest.raises(ConfigError) as caught:
        read_deploy_config(tmp_path)
    assert caught.value.message == message
