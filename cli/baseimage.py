"""A tiny base image made on this machine with no network: static busybox and its applets.

Homelabs without a public registry (and Dockyard's tests) build the example and test apps on it.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import docker
import docker.errors

BASE_IMAGE = "dockyard/busybox:local"
BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh", "ash", "httpd", "echo", "cat", "sleep", "env", "ls", "mkdir", "rm", "cp", "mv", "ln", "touch",
    "chmod", "wget", "nc", "printf", "true", "false", "kill", "ps", "id", "test", "[", "sed", "grep",
    "head", "tail", "wc", "date", "hostname", "uname", "pwd", "which",
)  # fmt: skip


class BaseImageError(RuntimeError):
    pass


def ensure_busybox_base(client: docker.DockerClient, busybox: Path = BUSYBOX) -> str:
    """Import the base image (about 2 MB) once; reuse it when present. Returns its name."""
    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    if not busybox.is_file():
        raise BaseImageError(f"{busybox} not found (apt-get install busybox-static)")
    repository, tag = BASE_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(
        busybox_rootfs(busybox), repository=repository, tag=tag, changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]']
    )
    client.images.get(BASE_IMAGE)  # raises if the import did not produce it
    return BASE_IMAGE


def busybox_rootfs(busybox: Path = BUSYBOX) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "www"):
            add_entry(tar, directory, tarfile.DIRTYPE, mode=0o1777 if directory == "tmp" else 0o755)
        with busybox.open("rb") as binary:
            info = tarfile.TarInfo("bin/busybox")
            info.size = busybox.stat().st_size
            info.mode = 0o755
            tar.addfile(info, binary)
        for applet in sorted(set(APPLETS)):
            add_entry(tar, f"bin/{applet}", tarfile.SYMTYPE, link="busybox")
        add_text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        add_text(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return buffer.getvalue()


def add_entry(tar: tarfile.TarFile, name: str, kind: bytes, mode: int = 0o777, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    tar.addfile(info)


def add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
