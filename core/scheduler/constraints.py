"""Placement constraints on node labels.

"key=value": the node has the label with that value. "key!=value": the node does not have that value; a node
without the label satisfies it, as in Nomad and Kubernetes' NotIn."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SYNTAX = re.compile(r"(?P<key>[^=!\s]+)(?P<op>!?=)(?P<value>(?!=).*)")  # "zone==eu" is a typo


@dataclass(frozen=True)
class Constraint:
    key: str
    equal: bool
    value: str

    def __str__(self) -> str:
        return f"{self.key}{'=' if self.equal else '!='}{self.value}"

    def violation(self, labels: dict[str, str]) -> str | None:
        """Why a node with these labels fails the constraint, or None when it satisfies it."""
        actual = labels.get(self.key)
        if self.equal and actual is None:
            return f"constraint {self}: node has no label {self.key}"
        if (actual == self.value) != self.equal:
            return f"constraint {self}: node has {self.key}={actual}"
        return None


def parse_constraint(text: str) -> Constraint:
    match = _SYNTAX.fullmatch(text)
    if match is None:
        raise ValueError(f'constraint {text!r}: expected "key=value" or "key!=value"')
    return Constraint(key=match["key"], equal=match["op"] == "=", value=match["value"])
