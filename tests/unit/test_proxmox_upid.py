"""UPIDs: PVE's task ids parse into their fields and format back exactly."""

from __future__ import annotations

import pytest

from core.proxmox.upid import Upid, format_upid, is_upid, parse_upid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "UPID:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:",
            Upid(
                node="pve1",
                pid=0xA1B2C,
                pstart=0xB2C3D4,
                starttime=0x65F0A1B2,
                type="qmclone",
                id="9000",
                user="root@pam",
            ),
            id="qemu-clone",
        ),
        pytest.param(
            "UPID:pve-2:00001234:000000FF:6601ABCD:vzstart:105:dockyard@pve!provision:",
            Upid(
                node="pve-2",
                pid=0x1234,
                pstart=0xFF,
                starttime=0x6601ABCD,
                type="vzstart",
                id="105",
                user="dockyard@pve!provision",
            ),
            id="token-user",
        ),
        pytest.param(
            "UPID:pve1:00001234:1000000FF:6601ABCD:vzdump::root@pam:",
            Upid(
                node="pve1",
                pid=0x1234,
                pstart=0x1000000FF,
                starttime=0x6601ABCD,
                type="vzdump",
                id="",
                user="root@pam",
            ),
            id="empty-id-9-digit-pstart",
        ),
    ],
)
def test_parse(text: str, expected: Upid) -> None:
    assert parse_upid(text) == expected
    assert len(text.split(":")) == 9
    assert is_upid(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("UPID:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:", id="canonical"),
        pytest.param("UPID:pve1:00000001:00000002:00000003:vzcreate:100:root@pam:", id="small-numbers"),
    ],
)
def test_format_round_trips(text: str) -> None:
    assert format_upid(parse_upid(text)) == text
    assert str(parse_upid(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("UPID:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam", id="no-trailing-colon"),
        pytest.param("UPID:pve1:A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:", id="short-pid"),
        pytest.param("UPID:pve_1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:", id="bad-node"),
        pytest.param("UPID:pve1:000A1B2G:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:", id="not-hex"),
        pytest.param("upid:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:root@pam:", id="lower-prefix"),
        pytest.param("UPID:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000::", id="no-user"),
    ],
)
def test_refuses(text: str) -> None:
    assert not is_upid(text)
    with pytest.raises(ValueError, match="not a PVE task id"):
        parse_upid(text)
