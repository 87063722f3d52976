"""Business keys and the replica specs of a release: the exact data the node agents receive."""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st

from activities.git import basic_auth_user, git_auth_env, git_error, git_ssh_env
from api.schemas.services import deploy_key_problem
from core.contracts import REPLICA_ID_PATTERN, DeployRequest, HealthCheck, ReplicaSpec
from core.naming import deploy_workflow_id, replica_id, route_name, service_hostname, service_workflow_id
from core.replica_specs import replica_specs
from core.secrets import SecretBox, SecretKeyMissing
from domain.repositories import credential_kind, is_ssh_url

PINNED = "127.0.0.1:5000/acme/web@sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        pytest.param(
            service_workflow_id("svc_1a2b", "env_3c4d"),
            "service/svc_1a2b/env_3c4d",
            id="service-workflow",
        ),
        pytest.param(
            deploy_workflow_id("svc_1a2b", "env_3c4d", "dep_5e6f"),
            "deploy/svc_1a2b/env_3c4d/dep_5e6f",
            id="deploy-workflow",
        ),
        pytest.param(replica_id("dep_5e6f", 0), "dep-5e6f-0", id="replica-first"),
        pytest.param(replica_id("dep_5e6f", 12), "dep-5e6f-12", id="replica-index"),
        pytest.param(replica_id("dep-plain", 1), "dep-plain-1", id="replica-no-underscore"),
        pytest.param(
            service_hostname("web", "production", "apps.example.com"),
            "web-production.apps.example.com",
            id="hostname",
        ),
        pytest.param(service_hostname("api", "pr-7", "localhost"), "api-pr-7.localhost", id="preview"),
        pytest.param(route_name("svc_1a2b", "env_3c4d"), "svc-1a2b-env-3c4d", id="route"),
    ],
)
def test_naming(actual: str, expected: str) -> None:
    assert actual == expected


def request(**changes: Any) -> DeployRequest:
    fields: dict[str, Any] = {
        "deployment_id": "dep_5e6f",
        "service_id": "svc_1a2b",
        "service_name": "web",
        "environment_id": "env_3c4d",
        "environment_name": "production",
        "hostname": "web-production.apps.test",
        "image": "127.0.0.1:5000/acme/web:1",
    }
    return DeployRequest(**(fields | changes))


def spec(index: int, **changes: Any) -> ReplicaSpec:
    fields: dict[str, Any] = {
        "replica_id": f"dep-5e6f-{index}",
        "service_id": "svc_1a2b",
        "environment_id": "env_3c4d",
        "deployment_id": "dep_5e6f",
        "image": PINNED,
        "port": 8080,
        "env": {
            "DOCKYARD_SERVICE_NAME": "web",
            "DOCKYARD_ENVIRONMENT_NAME": "production",
            "DOCKYARD_DEPLOYMENT_ID": "dep_5e6f",
        },
        "command": None,
        "health_check": HealthCheck(path=None, timeout_seconds=2.0),
    }
    return ReplicaSpec(**(fields | changes))


DOCKYARD_ENV = {
    "DOCKYARD_SERVICE_NAME": "web",
    "DOCKYARD_ENVIRONMENT_NAME": "production",
    "DOCKYARD_DEPLOYMENT_ID": "dep_5e6f",
}


@pytest.mark.parametrize(
    ("given_request", "expected"),
    [
        pytest.param(request(), [spec(0)], id="defaults"),
        pytest.param(request(replicas=3), [spec(0), spec(1), spec(2)], id="three-replicas"),
        pytest.param(
            request(port=3000, health_check_path="/healthz"),
            [spec(0, port=3000, health_check=HealthCheck(path="/healthz"))],
            id="port-and-health-path",
        ),
        pytest.param(
            request(env={"DATABASE_URL": "postgres://db/app", "LOG_LEVEL": "debug"}),
            [spec(0, env={"DATABASE_URL": "postgres://db/app", "LOG_LEVEL": "debug", **DOCKYARD_ENV})],
            id="user-variables",
        ),
        pytest.param(
            request(env={"DOCKYARD_DEPLOYMENT_ID": "forged", "DOCKYARD_SERVICE_NAME": "other"}),
            [spec(0)],
            id="platform-variables-win",
        ),
        pytest.param(
            request(environment_name="pr-7", service_name="api"),
            [
                spec(
                    0,
                    env={
                        "DOCKYARD_SERVICE_NAME": "api",
                        "DOCKYARD_ENVIRONMENT_NAME": "pr-7",
                        "DOCKYARD_DEPLOYMENT_ID": "dep_5e6f",
                    },
                )
            ],
            id="names-from-request",
        ),
    ],
)
def test_replica_specs(given_request: DeployRequest, expected: list[ReplicaSpec]) -> None:
    assert replica_specs(given_request, PINNED) == expected


def test_replica_specs_start_from_the_pinned_image_not_the_requested_tag() -> None:
    specs = replica_specs(request(image="127.0.0.1:5000/acme/web:latest", replicas=2), PINNED)
    assert {s.image for s in specs} == {PINNED}


@given(
    deployment_id=st.from_regex(r"\Adep_[a-f0-9]{12}\Z"),
    replicas=st.integers(1, 100),
    env=st.dictionaries(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,15}\Z"), st.text(max_size=20), max_size=5),
)
def test_one_valid_unique_replica_per_requested_replica(
    deployment_id: str, replicas: int, env: dict[str, str]
) -> None:
    specs = replica_specs(request(deployment_id=deployment_id, replicas=replicas, env=env), PINNED)
    assert len(specs) == replicas
    assert len({s.replica_id for s in specs}) == replicas
    assert all(re.match(REPLICA_ID_PATTERN, s.replica_id) for s in specs)
    assert all(s.deployment_id == deployment_id for s in specs)
    assert all(s.env["DOCKYARD_DEPLOYMENT_ID"] == deployment_id for s in specs)
    assert all(s.env[k] == v for s in specs for k, v in env.items() if not k.startswith("DOCKYARD_"))


def test_secrets_round_trip_and_refuse_another_key() -> None:
    box = SecretBox(SecretBox.generate_key())
    sealed = box.encrypt("hunter2")

    assert sealed != "hunter2" and box.decrypt(sealed) == "hunter2"
    with pytest.raises(ValueError, match="not the key it was stored with"):
        SecretBox(SecretBox.generate_key()).decrypt(sealed)
    with pytest.raises(SecretKeyMissing):
        SecretBox(None).encrypt("x")


def test_a_repository_token_travels_as_basic_auth_in_the_environment_only() -> None:
    env = git_auth_env("t0ken")

    assert env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: Basic eC1hY2Nlc3MtdG9rZW46dDBrZW4=",
    }
    assert git_auth_env(None) == {}


@pytest.mark.parametrize(
    ("token", "repo_url", "expected"),
    [
        ("t0ken", "https://github.com/acme/shop.git", ("x-access-token", "t0ken")),
        ("t0ken", "https://gitea.example/acme/shop.git", ("x-access-token", "t0ken")),
        ("t0ken", "https://bitbucket.org/acme/shop.git", ("x-token-auth", "t0ken")),
        ("t0ken", "https://gitlab.com/acme/shop.git", ("oauth2", "t0ken")),
        ("t0ken", "https://gitlab.example.org/acme/shop.git", ("oauth2", "t0ken")),
        ("ada:app-password", "https://bitbucket.org/acme/shop.git", ("ada", "app-password")),
        ("ada:pa:ss", "https://github.com/acme/shop.git", ("ada", "pa:ss")),
    ],
)
def test_the_token_user_name_is_the_one_its_host_expects(
    token: str, repo_url: str, expected: tuple[str, str]
) -> None:
    assert basic_auth_user(token, repo_url) == expected
    header = git_auth_env(token, repo_url)["GIT_CONFIG_VALUE_0"]
    assert base64.b64decode(header.removeprefix("Authorization: Basic ")).decode() == ":".join(expected)


# --- deploy keys ---------------------------------------------------------------------------------


def test_a_deploy_key_runs_ssh_with_that_key_only_and_no_prompt() -> None:
    env = git_ssh_env(Path("/builds/dep_1/deploy_key"), Path("/builds/dep_1/known_hosts"))

    assert env == {
        "GIT_SSH_COMMAND": "ssh -F /dev/null -i /builds/dep_1/deploy_key -o IdentitiesOnly=yes "
        "-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/builds/dep_1/known_hosts"
    }


def test_the_ssh_command_quotes_paths_for_the_shell_git_runs_it_with() -> None:
    env = git_ssh_env(Path("/state dir/dep_1/deploy_key"), Path("/state dir/dep_1/known_hosts"))

    assert shlex.split(env["GIT_SSH_COMMAND"])[3:5] == ["-i", "/state dir/dep_1/deploy_key"]
    assert shlex.split(env["GIT_SSH_COMMAND"])[-1] == "UserKnownHostsFile=/state dir/dep_1/known_hosts"


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        pytest.param(
            "Warning: Permanently added '[git.test]:22' (ED25519) to the list of known hosts.\r\n"
            "git@git.test: Permission denied (publickey).\r\n"
            "fatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "git@git.test: Permission denied (publickey). fatal: Could not read from remote repository.",
            id="ssh-key-refused",
        ),
        pytest.param(
            "Host key verification failed.\nfatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "Host key verification failed. fatal: Could not read from remote repository.",
            id="host-key-changed",
        ),
        pytest.param(
            "remote: Invalid username or password.\n"
            "fatal: Authentication failed for 'https://git.test/acme/shop.git/'\n",
            "remote: Invalid username or password. "
            "fatal: Authentication failed for 'https://git.test/acme/shop.git/'",
            id="token-refused",
        ),
        pytest.param("a\nb\nc\nd\n", "b c d", id="last-three-lines"),
    ],
)
def test_git_errors_keep_the_lines_that_tell_why(stderr: str, message: str) -> None:
    assert git_error(stderr) == message


def _private_key(key: Any, form: PrivateFormat, passphrase: bytes | None = None) -> str:
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    return str(key.private_bytes(Encoding.PEM, form, encryption).decode())


ED25519 = ed25519.Ed25519PrivateKey.generate()
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ECDSA = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        pytest.param(_private_key(ED25519, PrivateFormat.OpenSSH), None, id="openssh-ed25519"),
        pytest.param(_private_key(RSA, PrivateFormat.OpenSSH), None, id="openssh-rsa"),
        pytest.param(_private_key(RSA, PrivateFormat.TraditionalOpenSSL), None, id="pem-rsa"),
        pytest.param(_private_key(ECDSA, PrivateFormat.PKCS8), None, id="pkcs8-ecdsa"),
        pytest.param(
            _private_key(ED25519, PrivateFormat.OpenSSH, b"hunter22"),
            "the key is protected by a passphrase",
            id="openssh-passphrase",
        ),
        pytest.param(
            _private_key(ECDSA, PrivateFormat.PKCS8, b"hunter22"),
            "the key is protected by a passphrase",
            id="pkcs8-passphrase",
        ),
        pytest.param(
            _private_key(RSA, PrivateFormat.TraditionalOpenSSL, b"hunter22"),
            "the key is protected by a passphrase",
            id="pem-passphrase",
        ),
        pytest.param(
            ED25519.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode(),
            "this is a public key",
            id="public-half",
        ),
        pytest.param("ghp_0123456789abcdef", "not a private key", id="token"),
        pytest.param(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nbm9wZQ==\n-----END OPENSSH PRIVATE KEY-----\n",
            "the private key cannot be read",
            id="damaged",
        ),
    ],
)
def test_deploy_keys_are_checked_without_ssh_keygen(key: str, problem: str | None) -> None:
    found = deploy_key_problem(key)

    assert found == problem if problem is None else found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    ("repo_url", "ssh"),
    [
        ("ssh://git@github.com/acme/shop.git", True),
        ("ssh://git@git.example:2222/acme/shop.git", True),
        ("git@github.com:acme/shop.git", True),
        ("https://github.com/acme/shop.git", False),
        ("file:///srv/git/shop.git", False),
        ("git@github.com/acme/shop.git", False),
        (None, False),
    ],
)
def test_deploy_keys_need_an_ssh_url(repo_url: str | None, ssh: bool) -> None:
    assert is_ssh_url(repo_url) is ssh


def test_a_stored_credential_is_told_apart_by_its_shape() -> None:
    assert credential_kind(_private_key(ED25519, PrivateFormat.OpenSSH)) == "deploy_key"
    assert credential_kind("ghp_0123456789abcdef") == "token"
    assert credential_kind("ada:app-password") == "token"
