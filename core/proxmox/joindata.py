"""How a new guest learns to enroll: the join variables `dockyard agent` reads, and how they reach the guest.

The variables (agent/settings.py reads them): `DOCKYARD_AGENT_JOIN_URL`, `DOCKYARD_AGENT_JOIN_TOKEN`,
`DOCKYARD_AGENT_JOIN_CA_FINGERPRINT` (when known), `DOCKYARD_AGENT_LABELS` (a JSON object) and
`DOCKYARD_AGENT_NODE_NAME`.

- LXC: the container's `env` setting (PVE 9.1+), `KEY=VALUE` entries separated by NUL, which PVE hands to the
  container's init; the agent's unit takes them with `PassEnvironment=` (infra/proxmox/README.md).
- QEMU: once the VM's guest agent answers, `agent/file-write` of `/etc/dockyard/join.env`, one `KEY=VALUE` per
  line (sent as text: the API's default `encode=1` base64-encodes it for the guest agent); a path unit starts
  the agent when the file appears. Cloud-init (`ciuser`, `sshkeys`, `ipconfig0`) comes from the pool's spec.

Values are written as they are, never quoted: JSON is compact (no spaces) and no value may hold a control
character, so each line and each NUL-separated entry is exactly `KEY=VALUE`.
"""

from __future__ import annotations

import json
import re

from pydantic import Field, field_validator

from core.contracts import Contract

JOIN_ENV_PATH = "/etc/dockyard/join.env"
JOIN_URL = "DOCKYARD_AGENT_JOIN_URL"
JOIN_TOKEN = "DOCKYARD_AGENT_JOIN_TOKEN"
JOIN_CA_FINGERPRINT = "DOCKYARD_AGENT_JOIN_CA_FINGERPRINT"
LABELS = "DOCKYARD_AGENT_LABELS"
NODE_NAME = "DOCKYARD_AGENT_NODE_NAME"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY = re.compile(r"^\w+$")


class JoinData(Contract):
    """What one guest needs to enroll. The token is single-use and short-lived: it passes through workflow
    history once, and is worthless after the enrollment (or its expiry)."""

    join_url: str = Field(pattern=r"^https?://\S+$")
    join_token: str = Field(min_length=1)
    ca_fingerprint: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    labels: dict[str, str] = Field(default_factory=dict)
    node_name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

    @field_validator("join_token")
    @classmethod
    def _printable_token(cls, token: str) -> str:
        if _CONTROL.search(token) or token != token.strip():
            raise ValueError("control characters and surrounding spaces are not allowed")
        return token

    @field_validator("labels")
    @classmethod
    def _printable_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if _CONTROL.search(key) or _CONTROL.search(value):
                raise ValueError(f"label {key!r}: control characters are not allowed")
        return labels


def join_variables(join: JoinData) -> dict[str, str]:
    """The variables, in a fixed order (URL, token, CA fingerprint when set, labels, node name)."""
    variables = {JOIN_URL: join.join_url, JOIN_TOKEN: join.join_token}
    if join.ca_fingerprint is not None:
        variables[JOIN_CA_FINGERPRINT] = join.ca_fingerprint
    variables[LABELS] = json.dumps(join.labels, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    variables[NODE_NAME] = join.node_name
    return variables


def lxc_env(join: JoinData) -> str:
    """The LXC `env` setting: `KEY=VALUE` entries separated by NUL."""
    return "\0".join(f"{key}={value}" for key, value in join_variables(join).items())


def join_env_file(join: JoinData) -> str:
    """`/etc/dockyard/join.env` of a VM: one `KEY=VALUE` per line, a newline at the end."""
    return "".join(f"{key}={value}\n" for key, value in join_variables(join).items())


def parse_lxc_env(text: str) -> JoinData:
    return join_data(_pairs(text.split("\0"), "env entry"))


def parse_join_env_file(text: str) -> JoinData:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return join_data(_pairs(lines, "line"))


def join_data(variables: dict[str, str]) -> JoinData:
    """The join data in a set of variables (others are ignored). ValueError naming what is missing."""
    missing = [name for name in (JOIN_URL, JOIN_TOKEN, NODE_NAME) if not variables.get(name)]
    if missing:
        raise ValueError(f"join variables missing: {', '.join(missing)}")
    labels = json.loads(variables.get(LABELS) or "{}")
    if not isinstance(labels, dict):
        raise ValueError(f"{LABELS} must be a JSON object")
    return JoinData(
        join_url=variables[JOIN_URL],
        join_token=variables[JOIN_TOKEN],
        ca_fingerprint=variables.get(JOIN_CA_FINGERPRINT) or None,
        labels={str(k): str(v) for k, v in labels.items()},
        node_name=variables[NODE_NAME],
    )


def _pairs(entries: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for entry in entries:
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        if not sep or not _KEY.match(key):
            raise ValueError(f"{what} is not KEY=VALUE: {entry!r}")
        pairs[key] = value
    return pairs
