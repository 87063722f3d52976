"""Crash loops never replace a working version, end to end on a platform of the module's own: v2 passes
its health check, takes the traffic, then starts crash-looping inside the stability window. Dockyard
rolls back on its own: the previous route is served again, v1 is ACTIVE with the replicas it kept
running, v2 is FAILED at `stability` with the reason and its log tail, and nothing of v2 is left.

v2 crash-loops on demand: a request to one replica's `/cgi-bin/crash` (sent by the test straight to that
replica's published port, on loopback) marks the container's own filesystem and kills it; from then on
the container exits at every start, as an app with corrupt local state does.

The request loop runs throughout. Whether one v2 replica crash-loops or every one, only the requests in
flight on a replica at the instant it dies fail (Traefik's retry middleware resends a request only when
it could not connect): through the stability window the route falls back on v1's replicas as soon as no
v2 replica can answer, until the rollback serves v1 alone. Both are measured and printed."""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from cli.baseimage import ensure_busybox_base
from tests.support.images import TEST_LABEL
from tests.support.platform import AppImages, Platform, platform_with
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(600)

WINDOW_SECONDS = 15
CRASH_INSTANT_SECONDS = 0.5  # what "the instant a replica dies" spans, from the request that kills it
DEPLOY_TIMEOUT_SECONDS = 120
CRASH_LOG = "fatal: cannot start: local state is corrupt"
# Shell form for $PORT. SIGTERM from the crash endpoint ends the container with code 1; once marked, the
# container exits at every start.
CRASHING_CMD = (
    "trap 'echo \"fatal: worker crashed\"; exit 1' TERM; "
    f"if [ -f /tmp/crashing ]; then echo '{CRASH_LOG}' >&2; exit 1; fi; "
    "busybox httpd -f -p $PORT -h /www & wait"
)
CRASH_CGI = (
    "#!/bin/sh\ntouch /tmp/crashing\nkill -TERM 1\nprintf 'Content-Type: text/plain\\r\\n\\r\\nbye\\n'\n"
)


@pytest.fixture(scope="module")
def own_platform(docker_client: docker.DockerClient, workdir: Path) -> Iterator[Platform]:
    extra = {"DOCKYARD_STABILITY_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    with platform_with(docker_client, workdir / "crash-loops", extra) as platform:
        yield platform


def push_crashable(
    client: docker.DockerClient, platform: Platform, repository: str, tag: str, body: str
) -> str:
    """An HTTP app answering `body` at `/` and "ok" at `/healthz`, that crash-loops once asked to."""
    files: dict[str, tuple[str, int]] = {
        "Dockerfile": (
            f"FROM {ensure_busybox_base(client)}\nCOPY www /www\nENV PORT=8080\nEXPOSE 8080\n"
            f"CMD {CRASHING_CMD}\n",
            0o644,
        ),
        "www/index.html": (body, 0o644),
        "www/healthz": ("ok", 0o644),
        "www/cgi-bin/crash": (CRASH_CGI, 0o755),
    }
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for directory in ("www", "www/cgi-bin"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
        for name, (text, mode) in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode = len(data), mode
            tar.addfile(entry, io.BytesIO(data))
    context.seek(0)
    target = f"{platform.registry_host}/{repository}"
    client.images.build(
        fileobj=context,
        custom_context=True,
        tag=f"{target}:{tag}",
        rm=True,
        pull=False,
        network_mode="none",
        labels={TEST_LABEL: "true"},
    )
    for line in client.images.push(
        target, tag=tag, auth_config=platform.registry_auth, stream=True, decode=True
    ):
        assert "error" not in line, line
    return f"{target}:{tag}"


def containers_of(client: docker.DockerClient, service_id: str) -> dict[str, tuple[str, str, int]]:
    """container id → (deployment, state, restart count), every state included."""
    found = client.containers.list(all=True, filters={"label": f"dockyard.service={service_id}"})
    return {
        c.id or "": (c.labels["dockyard.deployment"], c.attrs["State"]["Status"], c.attrs["RestartCount"])
        for c in found
    }


def published(client: docker.DockerClient, deployment_id: str) -> list[str]:
    """127.0.0.1:<port> of each running replica of the deployment."""
    addresses = []
    for container in client.containers.list(filters={"label": f"dockyard.deployment={deployment_id}"}):
        for binding in container.attrs["NetworkSettings"]["Ports"].get("8080/tcp") or []:
            addresses.append(f"{binding['HostIp']}:{binding['HostPort']}")
    return sorted(addresses)


def crash(address: str) -> None:
    """Ask one replica, on its own published port (loopback), to start crash-looping."""
    try:
        httpx.get(f"http://{address}/cgi-bin/crash", timeout=5)
    except httpx.HTTPError:
        pass  # it died answering: that is the point


def wait_status(platform: Platform, deployment_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        deployment = platform.api.get(f"/v1/deployments/{deployment_id}").json()
        if deployment["status"] == status or time.monotonic() > deadline:
            return deployment  # type: ignore[no-any-return]
        time.sleep(0.05)


class FailureClock:
    """When each failure of a request loop happened (perf_counter), sampled beside it."""

    def __init__(self, loop: RequestLoop) -> None:
        self.loop = loop
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FailureClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            while len(self.times) < len(self.loop.failures):
                self.times.append(time.perf_counter())
            time.sleep(0.002)

    def since(self, start: float) -> str:
        return ", ".join(f"+{at - start:.2f}s" for at in self.times) or "none"


def restored_at(loop: RequestLoop, body: str, since: float) -> float | None:
    """When traffic went back to `body` for good after `since` (perf_counter), or None."""
    after = [(at, answer) for at, answer in loop.timeline if at > since]
    last_other = max((at for at, answer in after if answer != body), default=since)
    back = [at for at, answer in after if answer == body and at > last_other]
    return back[0] if back else None


def released(
    platform: Platform, client: docker.DockerClient, slug: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, tuple[str, str, int]]]:
    """A service of two replicas with v1 ACTIVE, then v2 (crashable) deployed: (service, v1, v2, v1's
    containers). Returns once v2 is ACTIVE, inside its stability window."""
    v1 = AppImages(client, platform).push(f"e2e/{slug}", "v1", f"{slug} v1")
    service = platform.create_service(f"e2e-{slug}", slug, v1, replicas=2, health_check_path="/healthz")
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=DEPLOY_TIMEOUT_SECONDS)
    assert first["status"] == "ACTIVE", (first["failed_step"], first["message"])
    time.sleep(WINDOW_SECONDS + 2)  # v1's own window has passed: the platform is at rest
    kept = containers_of(client, service["id"])
    v1_now = platform.api.get(f"/v1/deployments/{first['id']}").json()
    assert sorted(d for d, _, _ in kept.values()) == [first["id"], first["id"]], (
        kept,
        v1_now["status"],
        v1_now["failed_step"],
        v1_now["message"],
    )
    v2 = push_crashable(client, platform, f"e2e/{slug}", "v2", f"{slug} v2")
    return service, first, {"image": v2}, kept


def test_a_release_crash_looping_in_its_window_is_rolled_back_with_no_failure_but_at_the_crash(
    own_platform: Platform, docker_client: docker.DockerClient
) -> None:
    platform, client = own_platform, docker_client
    service, first, v2, kept = released(platform, client, "crashloop")

    with RequestLoop(platform.edge_url, hostname(service)) as loop, FailureClock(loop) as clock:
        time.sleep(0.5)
        second = platform.deploy(service["id"], image=v2["image"])
        active = wait_status(platform, second["id"], "ACTIVE", timeout=DEPLOY_TIMEOUT_SECONDS)
        assert active["status"] == "ACTIVE", active
        loop.first("crashloop v2")
        victim = published(client, second["id"])[0]
        triggered = time.perf_counter()
        crash(victim)
        failed = wait_status(platform, second["id"], "FAILED", timeout=DEPLOY_TIMEOUT_SECONDS)
        failed_after = time.perf_counter() - triggered
        time.sleep(2)
    cut_over = loop.first("crashloop v2") - triggered

    back = restored_at(loop, "crashloop v1", triggered)
    print(
        f"\n[crash loops] one v2 replica crash-looping ({WINDOW_SECONDS} s window): "
        f"FAILED {failed_after:.1f} s after the crash, v1 serving alone again "
        f"{(back - triggered) if back else float('nan'):.2f} s after it; {loop.summary()}; "
        f"reason {failed['message']!r}; v2 first answered {cut_over:.2f}s; "
        f"failures at {clock.since(triggered)}"
    )
    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "stability", failed
    message = failed["message"] or ""
    assert "was not stable" in message and "restarted" in message, message
    assert CRASH_LOG in message, message  # the log tail says why
    assert back is not None, "v1 never answered alone again"
    # Requests in flight on the replica at the instant it died fail: Traefik's retry does not resend a
    # request once connected. Nothing fails after that instant: not while v2 crash-loops beside a live
    # replica, not through the rollback, not after it.
    assert all(at - triggered < CRASH_INSTANT_SECONDS for at in clock.times), clock.since(triggered)
    assert loop.slowest < 2.0
    statuses = {
        d["id"]: d["status"] for d in platform.api.get(f"/v1/services/{service['id']}/deployments").json()
    }
    assert statuses == {first["id"]: "ACTIVE", second["id"]: "FAILED"}
    # v1's replicas served throughout: the same containers, never restarted; nothing of v2 is left
    assert containers_of(client, service["id"]) == kept
    assert platform.get(service).text.strip() == "crashloop v1"


def test_every_new_replica_crash_looping_is_rolled_back_too(
    own_platform: Platform, docker_client: docker.DockerClient
) -> None:
    """With every v2 replica dead at once, v1's replicas (kept through the window) answer from the crash
    on: the route falls back on them while the rollback restores v1's route alone."""
    platform, client = own_platform, docker_client
    service, first, v2, kept = released(platform, client, "allcrash")

    with RequestLoop(platform.edge_url, hostname(service)) as loop, FailureClock(loop) as clock:
        time.sleep(0.5)
        second = platform.deploy(service["id"], image=v2["image"])
        assert (
            wait_status(platform, second["id"], "ACTIVE", timeout=DEPLOY_TIMEOUT_SECONDS)["status"]
            == "ACTIVE"
        )
        loop.first("allcrash v2")
        time.sleep(0.5)  # v2 alone answers meanwhile
        addresses = published(client, second["id"])
        triggered = time.perf_counter()
        with ThreadPoolExecutor(len(addresses)) as crashing:  # every v2 replica at once
            list(crashing.map(crash, addresses))
        crashed = time.perf_counter()  # every v2 replica has died
        failed = wait_status(platform, second["id"], "FAILED", timeout=DEPLOY_TIMEOUT_SECONDS)
        failed_after = time.perf_counter() - triggered
        time.sleep(2)
    cut_over = loop.first("allcrash v2")

    back = restored_at(loop, "allcrash v1", triggered)
    print(
        f"\n[crash loops] every v2 replica crash-looping ({WINDOW_SECONDS} s window): v1 answering "
        f"{(back - triggered) if back else float('nan'):.2f} s after the crash (its requests returned "
        f"after {crashed - triggered:.2f} s), FAILED (rolled back) {failed_after:.1f} s after it; "
        f"{loop.summary()}; failures at {clock.since(triggered)}: {loop.failures}"
    )
    assert (failed["status"], failed["failed_step"]) == ("FAILED", "stability"), failed
    message = failed["message"] or ""
    assert "was not stable" in message and CRASH_LOG in message, message
    # Only requests in flight inside a v2 replica at the instant it died fail; v2 answers every request
    # from the cut-over to the crash, v1 every one after it: nothing in between, none after.
    dead = crashed + CRASH_INSTANT_SECONDS
    assert all(triggered <= at < dead for at in clock.times), clock.since(triggered)
    before = {body for at, body in loop.timeline if cut_over <= at < triggered}
    after = {body for at, body in loop.timeline if at >= dead}
    assert before == {"allcrash v2"}, before
    assert after == {"allcrash v1"}, after
    assert back is not None and back < dead, clock.since(triggered)
    assert loop.slowest < 2.0
    statuses = {
        d["id"]: d["status"] for d in platform.api.get(f"/v1/services/{service['id']}/deployments").json()
    }
    assert statuses == {first["id"]: "ACTIVE", second["id"]: "FAILED"}
    assert containers_of(client, service["id"]) == kept
    assert platform.get(service).text.strip() == "allcrash v1"


def test_a_limit_docker_refuses_ends_the_deploy_failed_with_dockers_words(
    own_platform: Platform, docker_client: docker.DockerClient
) -> None:
    """cpu_millis beyond the host's CPUs: Docker answers 400; the deploy ends FAILED at `start` with
    Docker's own message, at once, instead of retrying forever."""
    platform, client = own_platform, docker_client
    image = AppImages(client, platform).push("e2e/toobig", "v1", "toobig v1")
    cpus = os.cpu_count() or 1
    service = platform.create_service(
        "e2e-toobig", "toobig", image, replicas=1, health_check_path="/healthz", cpu_millis=(cpus + 6) * 1000
    )
    started = time.monotonic()

    failed = platform.wait_final(platform.deploy(service["id"])["id"], timeout=DEPLOY_TIMEOUT_SECONDS)

    took = time.monotonic() - started
    print(
        f"\n[crash loops] cpu_millis beyond the host: {failed['status']} after {took:.1f} s: "
        f"{failed['message']!r}"
    )
    assert (failed["status"], failed["failed_step"]) == ("FAILED", "start"), failed
    assert "Range of CPUs is from 0.01 to" in (failed["message"] or ""), failed["message"]
    assert took < 30
    assert containers_of(client, service["id"]) == {}


@pytest.mark.parametrize(
    ("slug", "start_command", "health_check_path", "exit_code", "said"),
    [
        (
            "exitnow",
            "echo 'Traceback (most recent call last):'; echo \"KeyError: 'DATABASE_URL'\" >&2; exit 1",
            "/healthz",
            1,
            "KeyError: 'DATABASE_URL'",
        ),
        (
            "acceptdie",
            "busybox httpd -f -p $PORT -h /www & sleep 1; echo '[ERROR] Worker failed to boot.'; exit 3",
            None,
            3,
            "Worker failed to boot.",
        ),
    ],
    ids=["exits-at-once", "accepts-then-dies-tcp-check"],
)
def test_a_new_version_that_keeps_exiting_fails_health_after_a_few_restarts(
    own_platform: Platform,
    docker_client: docker.DockerClient,
    slug: str,
    start_command: str,
    health_check_path: str | None,
    exit_code: int,
    said: str,
) -> None:
    """Not the whole health timeout (30 s here): FAILED at `health` once Docker has restarted it 3 times,
    with its exit code and the last lines of its log. A TCP-only check does not pass a process that
    accepts connections and then dies (a gunicorn master whose workers fail to boot)."""
    platform, client = own_platform, docker_client
    image = AppImages(client, platform).push(f"e2e/{slug}", "v1", f"{slug} v1")
    service = platform.create_service(
        f"e2e-{slug}",
        slug,
        image,
        replicas=1,
        health_check_path=health_check_path,
        start_command=start_command,
    )
    started = time.monotonic()

    failed = platform.wait_final(platform.deploy(service["id"])["id"], timeout=DEPLOY_TIMEOUT_SECONDS)

    took = time.monotonic() - started
    message = failed["message"] or ""
    print(
        f"\n[crash loops] {slug}: {failed['status']} at {failed['failed_step']} after {took:.1f} s: "
        f"{message!r}"
    )
    assert (failed["status"], failed["failed_step"]) == ("FAILED", "health"), failed
    assert f"exit code {exit_code}" in message and "restarted" in message, message
    assert said in message, message
    assert took < 20, f"{took:.1f} s: the crash loop was not seen before the health timeout"
    assert containers_of(client, service["id"]) == {}
