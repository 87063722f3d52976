"""Join data: the variables, LXC's NUL-separated `env` and a VM's join.env, both ways."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.proxmox.joindata import (
    JoinData,
    join_env_file,
    join_variables,
    lxc_env,
    parse_join_env_file,
    parse_lxc_env,
)

FINGERPRINT = "sha256:" + "ab" * 32


def join(**fields: Any) -> JoinData:
    return JoinData(
        **{
            "join_url": "https://dockyard.example.com:7800",
            "join_token": "djt_s3cr3t",
            "node_name": "dy-3f2a9c0b7d1e",
            **fields,
        }
    )


FULL = join(ca_fingerprint=FINGERPRINT, labels={"zone": "a", "pool": "workers", "ünï": "cödé"})
MINIMAL = join()


@pytest.mark.parametrize(
    ("data", "variables"),
    [
        pytest.param(
            FULL,
            {
                "DOCKYARD_AGENT_JOIN_URL": "https://dockyard.example.com:7800",
                "DOCKYARD_AGENT_JOIN_TOKEN": "djt_s3cr3t",
                "DOCKYARD_AGENT_JOIN_CA_FINGERPRINT": FINGERPRINT,
                "DOCKYARD_AGENT_LABELS": '{"pool":"workers","zone":"a","ünï":"cödé"}',
                "DOCKYARD_AGENT_NODE_NAME": "dy-3f2a9c0b7d1e",
            },
            id="full",
        ),
        pytest.param(
            MINIMAL,
            {
                "DOCKYARD_AGENT_JOIN_URL": "https://dockyard.example.com:7800",
                "DOCKYARD_AGENT_JOIN_TOKEN": "djt_s3cr3t",
                "DOCKYARD_AGENT_LABELS": "{}",
                "DOCKYARD_AGENT_NODE_NAME": "dy-3f2a9c0b7d1e",
            },
            id="minimal",
        ),
    ],
)
def test_variables(data: JoinData, variables: dict[str, str]) -> None:
    assert join_variables(data) == variables
    assert list(join_variables(data)) == list(variables)


def test_lxc_env_exact() -> None:
    assert lxc_env(MINIMAL) == (
        "DOCKYARD_AGENT_JOIN_URL=https://dockyard.example.com:7800\0"
        "DOCKYARD_AGENT_JOIN_TOKEN=djt_s3cr3t\0"
        "DOCKYARD_AGENT_LABELS={}\0"
        "DOCKYARD_AGENT_NODE_NAME=dy-3f2a9c0b7d1e"
    )


def test_join_env_file_exact() -> None:
    assert join_env_file(FULL) == (
        "DOCKYARD_AGENT_JOIN_URL=https://dockyard.example.com:7800\n"
        "DOCKYARD_AGENT_JOIN_TOKEN=djt_s3cr3t\n"
        f"DOCKYARD_AGENT_JOIN_CA_FINGERPRINT={FINGERPRINT}\n"
        'DOCKYARD_AGENT_LABELS={"pool":"workers","zone":"a","ünï":"cödé"}\n'
        "DOCKYARD_AGENT_NODE_NAME=dy-3f2a9c0b7d1e\n"
    )


@pytest.mark.parametrize("data", [pytest.param(FULL, id="full"), pytest.param(MINIMAL, id="minimal")])
def test_round_trips(data: JoinData) -> None:
    assert parse_lxc_env(lxc_env(data)) == data
    assert parse_join_env_file(join_env_file(data)) == data


def test_parsers_tolerate_what_people_add() -> None:
    text = "# written by Dockyard\n\n" + join_env_file(MINIMAL) + "OTHER=1\n"
    assert parse_join_env_file(text) == MINIMAL
    assert parse_lxc_env("PATH=/usr/bin\0" + lxc_env(MINIMAL) + "\0") == MINIMAL


def test_lxc_env_matches_pves_pattern() -> None:
    # PVE 9.1's `env`: (?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\0\w+=[^\x00-\x08\x10-\x1F\x7F]*)*
    import re

    pattern = re.compile(r"(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\x00\w+=[^\x00-\x08\x10-\x1F\x7F]*)*")
    assert pattern.fullmatch(lxc_env(FULL))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "DOCKYARD_AGENT_JOIN_URL=https://x\n",
            "missing: DOCKYARD_AGENT_JOIN_TOKEN, DOCKYARD_AGENT_NODE_NAME",
            id="missing",
        ),
        pytest.param("not a pair\n", "line is not KEY=VALUE", id="not-a-pair"),
        pytest.param(
            join_env_file(MINIMAL).replace("{}", "[]"), "must be a JSON object", id="labels-not-object"
        ),
    ],
)
def test_parse_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_join_env_file(text)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"join_token": "a\nb"}, "join_token", id="token-newline"),
        pytest.param({"join_token": " t"}, "join_token", id="token-space"),
        pytest.param({"labels": {"zone": "a\x00b"}}, "labels", id="label-nul"),
        pytest.param({"join_url": "ftp://x"}, "join_url", id="url-scheme"),
        pytest.param({"ca_fingerprint": "sha1:ab"}, "ca_fingerprint", id="fingerprint"),
        pytest.param({"node_name": "Dy_1"}, "node_name", id="node-name"),
    ],
)
def test_join_data_refusals(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        join(**fields)
    assert [error["loc"][0] for error in raised.value.errors()] == [field]
