"""Tiny test images built with no network: a static-busybox base imported from the host, and HTTP apps on it.

base = ensure_busybox_base(client)                         # "dockyard/busybox:local"
image_id = build_http_image(client, "dockyard-test/web:1", "hello")
"""

from __future__ import annotations

import io
import tarfile
from pathlib import PurePosixPath

import docker
import docker.errors

from cli.baseimage import BaseImageError, add_entry, add_text, ensure_busybox_base

TEST_LABEL = "dockyard-test"  # every image built here carries it, so a sweep can find them
ImageBuildError = BaseImageError


def build_http_image(
    client: docker.DockerClient,
    tag: str,
    body: str,
    health_path: str | None = "/healthz",
    start_delay: float = 0,
) -> str:
    """Build `tag` FROM the busybox base: `busybox httpd` on $PORT (default 8080) serving `body` at `/`
    and "ok" at `health_path`, after `start_delay` seconds. Classic builder, in-memory context, no network.
    Returns the image id."""
    base = ensure_busybox_base(client)
    files = {"www/index.html": body}
    if health_path is not None:
        files["www/" + health_path.lstrip("/")] = "ok"
    # Shell form so $PORT expands; the trap makes SIGTERM stop the container at once (a shell as PID 1
    # otherwise ignores it, and every stop would wait for the full grace).
    dockerfile = (
        f"FROM {base}\n"
        "COPY www /www\n"
        "ENV PORT=8080\n"
        "EXPOSE 8080\n"
        f"CMD trap 'exit 0' TERM; sleep {start_delay:g} & wait; busybox httpd -f -p $PORT -h /www & wait\n"
    )
    context = _tar({"Dockerfile": dockerfile, **files})
    try:
        image, _ = client.images.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            labels={TEST_LABEL: "true"},
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(line.get("stream", line.get("error", ""))) for line in exc.build_log)
        raise ImageBuildError(f"build of {tag} failed: {exc.msg}\n{log}") from None
    return str(image.id)


def _tar(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directories = {
            str(parent) for name in files for parent in PurePosixPath(name).parents if str(parent) != "."
        }
        for directory in sorted(directories):
            add_entry(tar, directory, tarfile.DIRTYPE, mode=0o755)
        for name, text in files.items():
            add_text(tar, name, text)
    buffer.seek(0)
    return buffer


# Registries this test run started (127.0.0.1:<port>): what was tagged for them in the machine's engine
# is removed at the end of the run, so runs do not pile images up on the machine.
SESSION_REGISTRIES: set[str] = set()


def forget_session_images(client: docker.DockerClient) -> int:
    """Remove every tag in the engine that names one of this run's registries; answer how many."""
    prefixes = tuple(f"{host}/" for host in SESSION_REGISTRIES)
    removed = 0
    for image in client.images.list():
        for tag in image.tags:
            if prefixes and tag.startswith(prefixes):
                try:
                    client.images.remove(tag, force=True, noprune=False)
                    removed += 1
                except docker.errors.APIError:
                    pass  # already gone with another of its tags, or still used: the next run's to clear
    return removed
