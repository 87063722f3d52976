"""Certificate renewal on the agent: when it is due, and a swap of key and certificate that a crash cut
short is completed when the identity is loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.enrollment import NodeIdentity, finish_renewal
from agent.renewal import needs_renewal
from core import pki

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age_days", "fraction", "due"),
    [
        (0, 1 / 3, False),
        (19, 1 / 3, False),
        (21, 1 / 3, True),
        (31, 1 / 3, True),
        (1, 0.5, False),
        (16, 0.5, True),
    ],
)
def test_renewal_is_due_once_less_than_the_fraction_is_left(
    age_days: int, fraction: float, due: bool
) -> None:
    authority = pki.create_authority(NOW)
    key = pki.generate_key()
    issued_at = NOW - timedelta(days=age_days)
    certificate = pki.issue_node_certificate(
        authority, pki.make_csr(key, "n"), "node_a", now=issued_at, days=30
    )
    assert needs_renewal(certificate, NOW, fraction) is due


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        pytest.param({"node.next.key", "node.next.pem"}, ("new key", "new pem"), id="both-written"),
        pytest.param({"node.next.pem"}, ("new key", "new pem"), id="key-moved-then-crash"),
        pytest.param({"node.next.key"}, ("old key", "old pem"), id="certificate-never-came"),
        pytest.param(set(), ("old key", "old pem"), id="nothing-pending"),
    ],
)
def test_an_interrupted_swap_is_completed(
    tmp_path: Path, present: set[str], expected: tuple[str, str]
) -> None:
    identity = NodeIdentity("node_a", tmp_path)
    old_key = "new key" if present == {"node.next.pem"} else "old key"  # the key had been moved already
    identity.key_file.write_text(old_key)
    identity.certificate_file.write_text("old pem")
    for name in present:
        (tmp_path / name).write_text("new key" if name.endswith(".key") else "new pem")

    finish_renewal(tmp_path)

    assert (identity.key_file.read_text(), identity.certificate_file.read_text()) == expected
    assert not identity.next_key_file.exists() and not identity.next_certificate_file.exists()
