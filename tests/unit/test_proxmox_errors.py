"""PVE failures classified into what Dockyard does next, with messages naming node, vmid and PVE's reason."""

from __future__ import annotations

import pytest

from core.proxmox.errors import PveErrorKind, classify, classify_task_failure

T, U, V, M, AR, NR, P = (
    PveErrorKind.TRANSIENT,
    PveErrorKind.NODE_UNAVAILABLE,
    PveErrorKind.VMID_TAKEN,
    PveErrorKind.GUEST_MISSING,
    PveErrorKind.ALREADY_RUNNING,
    PveErrorKind.NOT_RUNNING,
    PveErrorKind.PERMANENT,
)


@pytest.mark.parametrize(
    ("status", "reason", "errors", "action", "kind"),
    [
        pytest.param(
            500,
            "can't lock file '/var/lock/pve-manager/pve-config-101.lck' - got timeout",
            None,
            "config",
            T,
            id="config-lock-timeout",
        ),
        pytest.param(500, "CT is locked (disk)", None, "clone", T, id="ct-locked"),
        pytest.param(500, "VM is locked (clone)", None, "start", T, id="vm-locked"),
        pytest.param(500, "cluster not ready - no quorum?", None, "clone", T, id="no-quorum"),
        pytest.param(None, "cannot reach pve1: Connection refused", None, "clone", T, id="connection"),
        pytest.param(500, "QEMU guest agent is not running", None, "ping", T, id="guest-agent-booting"),
        pytest.param(500, "something odd happened", None, "start", T, id="unknown-5xx-is-transient"),
        pytest.param(595, "No route to host", None, "clone", U, id="595"),
        pytest.param(595, "Connection timed out", None, "status", U, id="595-timeout"),
        pytest.param(
            400,
            "Parameter verification failed.",
            {"vmid": "VM 101 already exists"},
            "nextid",
            V,
            id="nextid-taken",
        ),
        pytest.param(
            400,
            "Parameter verification failed.",
            {"newid": "unable to create VM 101: config file already exists"},
            "clone",
            V,
            id="clone-newid-taken",
        ),
        pytest.param(
            400,
            "Parameter verification failed.",
            {"vmid": "invalid format"},
            "clone",
            V,
            id="clone-vmid-error",
        ),
        pytest.param(
            500,
            "unable to create CT 101 - container already exists",
            None,
            "clone",
            V,
            id="already-exists-5xx",
        ),
        pytest.param(
            400,
            "Parameter verification failed.",
            {"vmid": "invalid format"},
            "config",
            P,
            id="vmid-error-elsewhere-is-permanent",
        ),
        pytest.param(
            400,
            "Parameter verification failed.",
            {"net0": "invalid format - format error"},
            "config",
            P,
            id="parameter-verification",
        ),
        pytest.param(401, "No ticket", None, "clone", P, id="401"),
        pytest.param(
            401, "authentication failed on pve1: bad credentials", None, "clone", P, id="401-ticket"
        ),
        pytest.param(403, "Permission check failed (/vms/101, VM.Allocate)", None, "clone", P, id="403"),
        pytest.param(501, "Method 'GET /nodes/pve1/foo' not implemented", None, "status", P, id="501"),
        pytest.param(
            500,
            "Configuration file 'nodes/pve1/lxc/101.conf' does not exist",
            None,
            "destroy",
            M,
            id="config-missing",
        ),
        pytest.param(500, "storage 'fast' does not exist", None, "clone", P, id="storage-missing"),
        pytest.param(500, "CT 101 already running", None, "start", AR, id="already-running"),
        pytest.param(500, "VM 101 not running", None, "stop", NR, id="not-running"),
        pytest.param(500, "CT 101 not running", None, "shutdown", NR, id="ct-not-running"),
        pytest.param(
            500, "can't clone VM to node 'pve2' (VM uses local storage)", None, "clone", P, id="local-storage"
        ),
        pytest.param(500, "no space left on device", None, "clone", P, id="disk-full"),
    ],
)
def test_classify(
    status: int | None, reason: str, errors: dict[str, str] | None, action: str, kind: PveErrorKind
) -> None:
    error = classify(status, reason, errors, action=action, node="pve1", vmid=101)
    assert error.kind is kind
    assert error.retryable is (kind in (T, V))


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        pytest.param("CT is locked (disk)", T, id="locked"),
        pytest.param("can't lock file '/var/lock/lxc/lock-101.conf' - got timeout", T, id="lock-timeout"),
        pytest.param("startup for container '101' failed", P, id="unknown-task-error-is-permanent"),
        pytest.param("clone failed: no space left on device", P, id="disk-full"),
        pytest.param("VM 101 already running", AR, id="already-running"),
    ],
)
def test_classify_task_failure(message: str, kind: PveErrorKind) -> None:
    assert classify_task_failure(message).kind is kind


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(
            classify(
                500,
                "CT is locked (disk)",
                action="clone of template 9000 to vmid 105",
                node="pve1",
                vmid=9000,
            ),
            "clone of template 9000 to vmid 105 failed on PVE node pve1, vmid 9000: 500 CT is locked (disk)",
            id="5xx",
        ),
        pytest.param(
            classify(
                400,
                "Parameter verification failed.",
                {"net0": "invalid format - format error\n", "cores": "value must have a minimum value of 1"},
                action="configuring",
                node="pve2",
                vmid=105,
            ),
            "configuring failed on PVE node pve2, vmid 105: 400 Parameter verification failed.; "
            "cores: value must have a minimum value of 1; net0: invalid format - format error",
            id="400-fields-sorted",
        ),
        pytest.param(
            classify(None, "cannot reach pve1: refused"),
            "PVE call failed: cannot reach pve1: refused",
            id="no-context",
        ),
        pytest.param(
            classify_task_failure("TASK failed", action="task qmclone", node="pve3"),
            "task qmclone failed on PVE node pve3: TASK failed",
            id="task",
        ),
    ],
)
def test_message(error: object, message: str) -> None:
    assert str(error) == message
